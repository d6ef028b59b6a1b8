"""The one way a route or a dependency takes the service's process-wide objects from its request."""

from starlette.requests import Request

from components.runtime import Runtime


def runtime_of(request: Request) -> Runtime:
    """The app's `Runtime` (`main.create_app` sets it). A function rather than a dependency: it is the same
    object for every request, and each dependency costs FastAPI a resolution step per request."""
    return request.app.state.runtime

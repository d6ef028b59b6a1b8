"""CORS per environment: any origin in development, only `CORS_ORIGINS` in staging and production
(where `*` is refused by the settings). With no origin allowed, no CORS headers are sent at all."""

from collections.abc import Callable
from functools import partial

from starlette.middleware.cors import CORSMiddleware
from starlette.types import ASGIApp

from core.settings import Settings

CORSWrapper = Callable[[ASGIApp], ASGIApp]


def cors_for(settings: Settings) -> CORSWrapper:
    """What puts an ASGI app behind the environment's CORS policy (Starlette's, pure ASGI); nothing when
    no origin is allowed."""
    origins = settings.allowed_origins
    if not origins:
        return _no_cors
    return partial(
        CORSMiddleware,
        allow_origins=list(origins),
        allow_methods=["GET", "POST"],
        allow_headers=["*"],
        expose_headers=["X-Request-ID", "ETag"],
    )


def _no_cors(app: ASGIApp) -> ASGIApp:
    return app

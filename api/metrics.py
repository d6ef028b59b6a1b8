"""`GET /metrics` (METRICS_PATH): what Prometheus scrapes, on the service's own port.

A plain Starlette route, outside /api/v1 and the OpenAPI document; the request middleware neither logs
nor counts it (a scrape every few seconds would drown the access log and the request metrics). It needs no
credential unless METRICS_REQUIRE_KEY=true, and then an API key or a JWT bearer token with the `admin` scope,
checked as on any admin route.
"""

from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from api.auth import require_admin
from core.metrics import metrics
from core.metrics.prometheus import Prometheus


def metrics_route(path: str, require_key: bool) -> Route:
    """The scrape of the configured Prometheus exporter."""
    exporter: Prometheus = metrics.exporter(Prometheus)

    async def scrape(request: Request) -> Response:
        if require_key:
            await require_admin(request)
        body, content_type = exporter.exposition(request.headers.get("accept", ""))
        return Response(body, headers={"content-type": content_type})

    return Route(path, scrape, methods=["GET"], include_in_schema=False)

"""One log line and the request's metrics (`metrics.request`) per request, from one clock reading at each end.

Requests are named by their route template (`/api/v1/get/item/{entity_value}/{category}`), which
the router leaves in `scope["route"]`, so ids never become metric names and nothing is matched
twice. Requests no API route answered (unknown paths, bodies refused for size or media type
before routing, CORS preflights, the docs pages) share one `unmatched` bucket.
"""

import logging
from typing import Any

from starlette.types import Scope

from core.http_server import KNOWN_METHODS, UNMATCHED
from core.metrics import metrics

logger = logging.getLogger("feature_store.access")


def record_request(
    scope: Scope, status: int, duration_ms: float, fields: dict[str, Any], slow_request_ms: float
) -> None:
    """The request's metrics and its access-log line; `fields` are what the request added to its line."""
    endpoint = getattr(scope.get("route"), "path_format", UNMATCHED)
    method = scope["method"] if scope["method"] in KNOWN_METHODS else "OTHER"
    slow = duration_ms > slow_request_ms
    if metrics.enabled:
        metrics.request(endpoint, method, status, duration_ms / 1000, slow)
    level = logging.WARNING if slow else logging.INFO
    if logger.isEnabledFor(level):
        line = {"method": method, "route": endpoint, "status": status, "duration_ms": round(duration_ms, 3)}
        if slow:
            line["slow_request_ms"] = slow_request_ms
        logger.log(level, "slow request" if slow else "request", extra=line | fields)

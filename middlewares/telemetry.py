"""One log line and one StatsD datagram per request, from one clock reading at each end.

Requests are named by their route template (`/api/v1/get/item/{entity_value}/{category}`), which
the router leaves in `scope["route"]`, so ids never become metric names and nothing is matched
twice. Requests no API route answered (unknown paths, bodies refused for size or media type
before routing, CORS preflights, the docs pages) share one `unmatched` bucket.
"""

import logging
from time import perf_counter
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.metrics import metrics
from core.request_context import request_log_fields_var

logger = logging.getLogger("feature_store.access")

UNMATCHED = "unmatched"
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})


class RequestTelemetryMiddleware:
    def __init__(self, app: ASGIApp, slow_request_ms: float) -> None:
        self.app = app
        self.slow_request_ms = slow_request_ms

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = perf_counter()
        status = 500
        fields: dict[str, Any] = {}
        token = request_log_fields_var.set(fields)

        async def send_with_status(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
            await send(message)

        try:
            await self.app(scope, receive, send_with_status)
        finally:
            request_log_fields_var.reset(token)
            self._record(scope, status, (perf_counter() - started) * 1000, fields)

    def _record(self, scope: Scope, status: int, duration_ms: float, fields: dict[str, Any]) -> None:
        endpoint = getattr(scope.get("route"), "path_format", UNMATCHED)
        method = scope["method"] if scope["method"] in KNOWN_METHODS else "OTHER"
        slow = duration_ms > self.slow_request_ms
        if metrics.enabled:
            tags = {"endpoint": endpoint, "method": method, "status": status}
            stat = metrics.stat
            lines = [
                stat("http.request.count", "1|c", tags),
                stat("http.request.duration", f"{duration_ms:.3f}|ms", tags),
                stat(f"http.response.{status}", "1|c", tags),
            ]
            if slow:
                lines.append(stat("http.request.slow", "1|c", tags))
            metrics.send(*lines)
        level = logging.WARNING if slow else logging.INFO
        if logger.isEnabledFor(level):
            line = {"method": method, "route": endpoint, "status": status, "duration_ms": round(duration_ms, 3)}
            if slow:
                line["slow_request_ms"] = self.slow_request_ms
            logger.log(level, "slow request" if slow else "request", extra=line | fields)

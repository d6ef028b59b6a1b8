"""The one ASGI middleware every request passes through, in a single pass: request id, body guard,
telemetry, and the last-resort error envelope, with CORS (Starlette's) applied inside it.

Order within the pass, as each concern needs it:
- the request id is bound first, so every log line of the request carries it, and it is added to
  every response, including the refusals and the last-resort 500 below;
- the request's log fields and its clock start before anything can answer, so refusals are logged
  and counted too (route `unmatched`);
- a request beyond `max_concurrent_requests` in flight in this process is answered 503 `overloaded`
  at once (the liveness routes excepted, so an overloaded process is not restarted for it); served by
  `python -m serve`, most such requests were refused before reaching here (`core/http_server.py`);
- a body refused from its headers (`body.refusal`) is answered through CORS, as a route's answer
  would be, without reaching the app; an accepted body is counted as it is read (`body.limited`)
  and must arrive within `body_read_timeout_seconds` (`body.by_deadline`);
- the metrics and the access line are recorded when the app is done, before an unexpected error
  is logged and answered with the bare 500 envelope (which carries no CORS headers); requests to
  `unobserved_paths` (the Prometheus scrape) are neither counted nor logged.
"""

import logging
from collections.abc import Iterable, Mapping
from time import perf_counter
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.error_envelope import exception_response, internal_error_response
from core.exceptions import Overloaded
from core.http_server import LIVENESS_PATHS
from core.request_context import request_id_var, request_log_fields_var
from middlewares.body import METHODS_WITH_BODY, by_deadline, limited, refusal
from middlewares.cors import CORSWrapper
from middlewares.request_context import REQUEST_ID_HEADER, request_id_from
from middlewares.telemetry import record_request

logger = logging.getLogger("feature_store.errors")

UNLIMITED_PATHS = LIVENESS_PATHS


class RequestMiddleware:
    def __init__(
        self,
        app: ASGIApp,
        *,
        max_body_bytes: int,
        body_read_timeout_seconds: float,
        max_concurrent_requests: int,
        slow_request_ms: float,
        cors: CORSWrapper,
        body_limits: Mapping[str, int] | None = None,
        unobserved_paths: Iterable[str] = (),
    ) -> None:
        """`body_limits`: paths whose bodies may be larger (or must be smaller) than `max_body_bytes`."""
        self.app = cors(app)
        self.cors = cors
        self.max_body_bytes = max_body_bytes
        self.body_limits = dict(body_limits or {})
        self.body_read_timeout_seconds = body_read_timeout_seconds
        self.max_concurrent_requests = max_concurrent_requests
        self.slow_request_ms = slow_request_ms
        self.unobserved_paths = frozenset(unobserved_paths)
        self.in_flight = 0

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope)
        id_token = request_id_var.set(request_id)
        header = (REQUEST_ID_HEADER, request_id.encode("ascii"))
        status: int | None = None

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        fields: dict[str, Any] = {}
        fields_token = request_log_fields_var.set(fields)
        started = perf_counter()
        counted = scope["path"] not in UNLIMITED_PATHS
        try:
            try:
                if counted and self.in_flight >= self.max_concurrent_requests:
                    counted = False
                    overloaded = Overloaded(f"more than {self.max_concurrent_requests} requests in flight")
                    await self.cors(exception_response(overloaded))(scope, receive, send_with_id)
                    return
                if counted:
                    self.in_flight += 1
                if scope["method"] in METHODS_WITH_BODY:
                    limit = self.body_limits.get(scope["path"], self.max_body_bytes)
                    refused = refusal(scope, limit)
                    if refused is not None:
                        await self.cors(exception_response(refused))(scope, receive, send_with_id)
                        return
                    receive = by_deadline(limited(receive, limit), self.body_read_timeout_seconds)
                await self.app(scope, receive, send_with_id)
            finally:
                if counted:
                    self.in_flight -= 1
                request_log_fields_var.reset(fields_token)
                if scope["path"] not in self.unobserved_paths:
                    duration_ms = (perf_counter() - started) * 1000
                    record_request(scope, status or 500, duration_ms, fields, self.slow_request_ms)
        except Exception:
            # The route template, not the path: paths carry entity ids.
            logger.exception(
                "unhandled error", extra={"route": getattr(scope.get("route"), "path_format", "unmatched")}
            )
            if status is not None:
                raise
            await internal_error_response()(scope, receive, send_with_id)
        finally:
            request_id_var.reset(id_token)

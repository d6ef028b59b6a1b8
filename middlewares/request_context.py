"""Request id on every response and in every log line; the envelope for exceptions nobody expected."""

import logging
import re
import uuid

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.error_envelope import internal_error_response
from core.request_context import request_id_var

logger = logging.getLogger("feature_store.errors")

REQUEST_ID_HEADER = b"x-request-id"
_SANE_REQUEST_ID = re.compile(rb"^[A-Za-z0-9._:/+=-]{1,128}$")


def request_id_from(scope: Scope) -> str:
    """The caller's id when it is short and printable; a fresh one otherwise."""
    for name, value in scope["headers"]:
        if name == REQUEST_ID_HEADER and _SANE_REQUEST_ID.match(value):
            return value.decode("ascii")
    return uuid.uuid4().hex


class RequestContextMiddleware:
    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        request_id = request_id_from(scope)
        token = request_id_var.set(request_id)
        header = (REQUEST_ID_HEADER, request_id.encode("ascii"))
        started = False

        async def send_with_id(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                message["headers"] = [*message.get("headers", ()), header]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # The route template, not the path: paths carry entity ids.
            logger.exception(
                "unhandled error", extra={"route": getattr(scope.get("route"), "path_format", "unmatched")}
            )
            if started:
                raise
            await internal_error_response()(scope, receive, send_with_id)
        finally:
            request_id_var.reset(token)

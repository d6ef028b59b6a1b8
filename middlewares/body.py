"""Request bodies: JSON only (415), at most `max_body_bytes` (413) - refused from Content-Length,
or as soon as a streamed body crosses the limit, never buffered whole first."""

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core.error_envelope import exception_response
from core.exceptions import BadRequest, PayloadTooLarge, UnsupportedMediaType

METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


class BodyTooLarge(HTTPException):
    """An HTTPException so FastAPI's body reader lets it through to the error handlers."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than {limit} bytes")


def is_json(content_type: bytes) -> bool:
    media_type = content_type.split(b";", 1)[0].strip().lower()
    return media_type == b"application/json" or (
        media_type.startswith(b"application/") and media_type.endswith(b"+json")
    )


class BodyGuardMiddleware:
    def __init__(self, app: ASGIApp, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] not in METHODS_WITH_BODY:
            await self.app(scope, receive, send)
            return
        headers = dict(scope["headers"])
        length_header = headers.get(b"content-length")
        chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
        limit = self.max_body_bytes
        if length_header is not None:
            if not length_header.isdigit():
                await exception_response(BadRequest("invalid Content-Length header"))(scope, receive, send)
                return
            if int(length_header) > limit:
                await exception_response(PayloadTooLarge(BodyTooLarge(limit).detail))(scope, receive, send)
                return
        has_body = chunked or (length_header is not None and int(length_header) > 0)
        if has_body and not is_json(headers.get(b"content-type", b"")):
            message = "request body must be JSON (Content-Type: application/json)"
            await exception_response(UnsupportedMediaType(message))(scope, receive, send)
            return
        received = 0

        async def counting_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise BodyTooLarge(limit)
            return message

        await self.app(scope, counting_receive, send)

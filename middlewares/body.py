"""Request bodies: JSON only (415), at most `max_body_bytes` (413) - refused from Content-Length,
or as soon as a streamed body crosses the limit, never buffered whole first - and in full within
`body_read_timeout_seconds` of the request's head (408, and the connection closed)."""

import asyncio

from starlette.exceptions import HTTPException
from starlette.types import Message, Receive, Scope

from core.exceptions import BadRequest, FeatureStoreError, PayloadTooLarge, UnsupportedMediaType

METHODS_WITH_BODY = frozenset({"POST", "PUT", "PATCH"})


class BodyTooLarge(HTTPException):
    """An HTTPException so FastAPI's body reader lets it through to the error handlers."""

    def __init__(self, limit: int) -> None:
        super().__init__(413, f"request body is larger than {limit} bytes")


class BodyReadTimeout(HTTPException):
    """An HTTPException for the same reason as `BodyTooLarge`. The client stalled mid-body, so the
    connection is closed after the answer: what it sends next would be read as a new request."""

    def __init__(self, seconds: float) -> None:
        super().__init__(408, f"request body not received within {seconds:g} s", headers={"Connection": "close"})


def is_json(content_type: bytes) -> bool:
    media_type = content_type.split(b";", 1)[0].strip().lower()
    return media_type == b"application/json" or (
        media_type.startswith(b"application/") and media_type.endswith(b"+json")
    )


def refusal(scope: Scope, limit: int) -> FeatureStoreError | None:
    """Why the body of a POST, PUT or PATCH is refused from its headers alone; None when it may be read."""
    headers = dict(scope["headers"])
    length_header = headers.get(b"content-length")
    chunked = b"chunked" in headers.get(b"transfer-encoding", b"").lower()
    if length_header is not None:
        if not length_header.isdigit():
            return BadRequest("invalid Content-Length header")
        if int(length_header) > limit:
            return PayloadTooLarge(BodyTooLarge(limit).detail)
    has_body = chunked or (length_header is not None and int(length_header) > 0)
    if has_body and not is_json(headers.get(b"content-type", b"")):
        return UnsupportedMediaType("request body must be JSON (Content-Type: application/json)")
    return None


def limited(receive: Receive, limit: int) -> Receive:
    """`receive` that raises `BodyTooLarge` as soon as the body read so far crosses `limit`."""
    received = 0

    async def counting_receive() -> Message:
        nonlocal received
        message = await receive()
        if message["type"] == "http.request":
            received += len(message.get("body", b""))
            if received > limit:
                raise BodyTooLarge(limit)
        return message

    return counting_receive


def by_deadline(receive: Receive, seconds: float) -> Receive:
    """`receive` that raises `BodyReadTimeout` when the body is not complete `seconds` after this call
    (made when the request's head has arrived). Once the body is complete, `receive` is passed through
    untimed: what follows is the wait for a disconnect, which may last as long as the response."""
    deadline = asyncio.get_running_loop().time() + seconds
    complete = False

    async def receive_by_deadline() -> Message:
        nonlocal complete
        if complete:
            return await receive()
        try:
            async with asyncio.timeout_at(deadline):
                message = await receive()
        except TimeoutError:
            raise BodyReadTimeout(seconds) from None
        if message["type"] != "http.request" or not message.get("more_body", False):
            complete = True
        return message

    return receive_by_deadline

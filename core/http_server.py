"""How the server process treats connections: uvicorn's httptools protocol, with limits it lacks.

uvicorn closes a connection idle after a response (`timeout_keep_alive`), but not one that opens and
never sends a request, nor one that sends its request head a byte at a time; httptools reads header
fields of any size; and uvicorn answers what it cannot parse with a plain-text 400. This protocol adds,
before any of the app's code runs:
- a deadline for the request head: from the moment the connection opens, and from the first byte of
  each later request; an idle connection is closed silently, a head begun and not finished gets 408;
- a limit on the request target (414) and on the header fields (431), checked as httptools hands
  them over, and on the raw bytes of an unfinished head, so nothing unbounded is buffered;
- every refusal, and the 400 for a request httptools cannot parse, in the service's JSON error
  envelope with an `X-Request-ID`, the connection then closed cleanly: the answer is followed by a
  FIN and what the client still sends is read and dropped for a while (a lingering close). Closing a
  socket with unread bytes makes the kernel send a reset, which destroys the answer before a client
  still sending its 200 KB head can read it.

The body's deadline and the concurrency limit live in the app's own pass (`middlewares/request.py`),
where they can answer through the app's error handlers. `server_options` turns the settings into
uvicorn's options, so `python -m serve` (make run, the image, Kubernetes) is the one way to start it.
"""

import asyncio
import functools
import logging
import uuid
from dataclasses import dataclass
from http import HTTPStatus
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from core.exceptions import BadRequest, FeatureStoreError, HeadersTooLarge, RequestTimeout, UriTooLong
from core.metrics import metrics
from core.serialization import dumps
from core.settings import Settings

logger = logging.getLogger("feature_store.http")

HEAD_SLACK_BYTES = 8192
"""Raw bytes an unfinished head may hold beyond its target and header limits: the method, the version,
separators and line ends."""


LINGER_SECONDS = 2.0
"""After a refusal, how long what the client still sends is read and dropped before the connection is closed."""
LINGER_MAX_BYTES = 4 * 1024 * 1024
"""Bytes dropped after a refusal beyond which the connection is closed at once."""


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_seconds: float
    max_url_bytes: int
    max_header_bytes: int

    @property
    def max_head_bytes(self) -> int:
        return self.max_url_bytes + self.max_header_bytes + HEAD_SLACK_BYTES


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; httptools reports it as a parse error."""


def refusal_bytes(exc: FeatureStoreError, default_headers: list[tuple[bytes, bytes]]) -> bytes:
    """A complete HTTP/1.1 response carrying `exc` in the JSON error envelope, announcing the close."""
    request_id = uuid.uuid4().hex
    body = dumps({"detail": exc.detail, "error": exc.error, "request_id": request_id})
    status = HTTPStatus(exc.status_code)
    lines = [f"HTTP/1.1 {status.value} {status.phrase}".encode("ascii")]
    lines += [name + b": " + value for name, value in default_headers]
    lines += [
        b"content-type: application/json",
        b"content-length: " + str(len(body)).encode("ascii"),
        b"connection: close",
        b"x-request-id: " + request_id.encode("ascii"),
    ]
    return b"\r\n".join(lines) + b"\r\n\r\n" + body


class ServiceHttpProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with the head deadline, the head limits and enveloped refusals."""

    def __init__(self, *args: Any, limits: ConnectionLimits, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.limits = limits
        self.head_timer: asyncio.TimerHandle | None = None
        self.in_head = False
        self.head_bytes = 0
        self.url_bytes = 0
        self.header_bytes = 0
        self.refusal: FeatureStoreError | None = None
        self.linger_timer: asyncio.TimerHandle | None = None
        self.lingered_bytes = 0

    # The head's deadline.
    def _arm_head_timer(self) -> None:
        if self.head_timer is None:
            self.head_timer = self.loop.call_later(self.limits.header_timeout_seconds, self._head_timed_out)

    def _cancel_head_timer(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _head_timed_out(self) -> None:
        self.head_timer = None
        if self.transport.is_closing():
            return
        responding = self.cycle is not None and not self.cycle.response_complete
        if responding:
            # A pipelined head is late while an earlier response is being sent: no answer may be written
            # into that response; the connection closes once it is complete.
            self.cycle.keep_alive = False
        elif self.in_head:
            self.refuse(RequestTimeout(f"request head not received within {self.limits.header_timeout_seconds:g} s"))
        else:
            metrics.incr("http.connection.idle_closed")
            self.transport.close()

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        self._arm_head_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_head_timer()
        if self.linger_timer is not None:
            self.linger_timer.cancel()
        super().connection_lost(exc)

    # The head's size, counted as httptools hands it over and as it arrives.
    def data_received(self, data: bytes) -> None:
        if self.linger_timer is not None:
            self._drop(data)
            return
        super().data_received(data)
        if self.in_head and not self.transport.is_closing():
            self.head_bytes += len(data)
            if self.head_bytes > self.limits.max_head_bytes:
                self.refuse(HeadersTooLarge(f"request head is larger than {self.limits.max_head_bytes} bytes"))

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self.in_head = True
        self.head_bytes = self.url_bytes = self.header_bytes = 0
        self._arm_head_timer()

    def on_url(self, url: bytes) -> None:
        self.url_bytes += len(url)
        if self.url_bytes > self.limits.max_url_bytes:
            self.refusal = UriTooLong(f"request target is longer than {self.limits.max_url_bytes} bytes")
            raise _Refused
        super().on_url(url)

    def on_header(self, name: bytes, value: bytes) -> None:
        self.header_bytes += len(name) + len(value)
        if self.header_bytes > self.limits.max_header_bytes:
            self.refusal = HeadersTooLarge(
                f"request header fields are larger than {self.limits.max_header_bytes} bytes"
            )
            raise _Refused
        super().on_header(name, value)

    def on_headers_complete(self) -> None:
        self.in_head = False
        self._cancel_head_timer()
        super().on_headers_complete()

    # Refusals, in the envelope.
    def send_400_response(self, msg: str) -> None:
        """What uvicorn sends for a request httptools cannot parse, and for our own refusals above."""
        self.refuse(self.refusal or BadRequest("malformed HTTP request"))

    def refuse(self, exc: FeatureStoreError) -> None:
        metrics.incr("http.connection.refused", error=exc.error)
        logger.info("connection refused", extra={"status": exc.status_code, "error": exc.error})
        self.in_head = False
        self._cancel_head_timer()
        self.transport.write(refusal_bytes(exc, self.server_state.default_headers))
        self._linger()

    # The lingering close after a refusal.
    def _linger(self) -> None:
        """Send the FIN after the answer, keep reading until the client closes its side too (its EOF closes
        the transport), for at most `LINGER_SECONDS`."""
        if self.transport.can_write_eof():
            self.transport.write_eof()
        self.linger_timer = self.loop.call_later(LINGER_SECONDS, self.transport.close)

    def _drop(self, data: bytes) -> None:
        self.lingered_bytes += len(data)
        if self.lingered_bytes > LINGER_MAX_BYTES:
            self.transport.close()


def connection_limits(settings: Settings) -> ConnectionLimits:
    return ConnectionLimits(
        header_timeout_seconds=settings.http_header_timeout_seconds,
        max_url_bytes=settings.max_url_bytes,
        max_header_bytes=settings.max_header_bytes,
    )


def server_options(settings: Settings) -> dict[str, Any]:
    """uvicorn's options for serving `main:app` with these settings."""
    return {
        "app": "main:app",
        "host": settings.host,
        "port": settings.port,
        "workers": settings.web_concurrency,
        "http": functools.partial(ServiceHttpProtocol, limits=connection_limits(settings)),
        "timeout_keep_alive": settings.http_keep_alive_seconds,
        "timeout_graceful_shutdown": settings.graceful_shutdown_seconds,
    }

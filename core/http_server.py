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

import httptools
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from core.exceptions import BadRequest, FeatureStoreError, HeadersTooLarge, Overloaded, RequestTimeout, UriTooLong
from core.metrics import metrics
from core.pauses import EventLoopLag
from core.serialization import dumps
from core.settings import Settings

logger = logging.getLogger("feature_store.http")

HEAD_SLACK_BYTES = 8192
"""Raw bytes an unfinished head may hold beyond its target and header limits: the method, the version,
separators and line ends."""


UNMATCHED = "unmatched"
"""The endpoint of a request no route answered, in the request metrics."""
KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"})
"""Methods named in the request metrics; any other is counted as `OTHER`."""
LIVENESS_PATHS = frozenset({"/api/v1/health", "/api/v1/live"})
"""Answered whatever the load: they touch nothing, and failing them would restart a busy process."""
LAG_MIN_IN_FLIGHT = 32
"""Below this many requests in flight, a late event loop is the machine's doing or one slow request's,
not a crowd's: refusing would not make it faster, so the lag refuses nothing."""
LINGER_SECONDS = 2.0
"""After a refusal, how long what the client still sends is read and dropped before the connection is closed."""
LINGER_MAX_BYTES = 4 * 1024 * 1024
"""Bytes dropped after a refusal beyond which the connection is closed at once."""


@dataclass(frozen=True)
class ConnectionLimits:
    header_timeout_seconds: float
    max_url_bytes: int
    max_header_bytes: int
    max_concurrent_requests: int
    max_event_loop_lag_seconds: float

    @property
    def max_head_bytes(self) -> int:
        return self.max_url_bytes + self.max_header_bytes + HEAD_SLACK_BYTES


class _Refused(Exception):
    """Raised from a parser callback to stop parsing; httptools reports it as a parse error."""


def refusal_bytes(
    exc: FeatureStoreError, default_headers: list[tuple[bytes, bytes]], *, keep_alive: bool = False
) -> bytes:
    """A complete HTTP/1.1 response carrying `exc` in the JSON error envelope, announcing the close
    unless `keep_alive`."""
    request_id = uuid.uuid4().hex
    body = dumps({"detail": exc.detail, "error": exc.error, "request_id": request_id})
    status = HTTPStatus(exc.status_code)
    lines = [f"HTTP/1.1 {status.value} {status.phrase}".encode("ascii")]
    lines += [name + b": " + value for name, value in default_headers]
    if exc.retry_after is not None:
        lines.append(b"retry-after: " + str(exc.retry_after).encode("ascii"))
    lines += [
        b"content-type: application/json",
        b"content-length: " + str(len(body)).encode("ascii"),
        b"x-request-id: " + request_id.encode("ascii"),
    ]
    if not keep_alive:
        lines.append(b"connection: close")
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
        self.answered_in_head = False
        self.loop_lag = EventLoopLag.of(self.loop)
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
        if self._overloaded():
            self._refuse_overloaded()
            return
        super().on_headers_complete()

    def on_message_complete(self) -> None:
        if self.answered_in_head:
            self.answered_in_head = False
            self._arm_head_timer()  # now idle: closed silently unless a request begins in time
            return
        super().on_message_complete()

    # Overload, refused as it arrives.
    def _overloaded(self) -> bool:
        """Requests this process has taken and not finished (queued for the event loop or running) are
        counted here, so that a crowd is refused as it arrives, before a task is made for it: counted
        in the app, requests queued behind a busy loop are not yet in flight, and the refusals and
        probes would wait behind them. A pipelined request, and a browser's (it needs the CORS headers
        to read a 503), are left to the app's own limit."""
        in_flight = len(self.tasks)
        busy = in_flight >= LAG_MIN_IN_FLIGHT and self.loop_lag.seconds > self.limits.max_event_loop_lag_seconds
        if in_flight < self.limits.max_concurrent_requests and not busy:
            return False
        if self.cycle is not None and not self.cycle.response_complete:
            return False
        if any(name == b"origin" for name, _ in self.headers):
            return False
        return httptools.parse_url(self.url).path.decode("latin-1") not in LIVENESS_PATHS

    def _refuse_overloaded(self) -> None:
        """503 `overloaded` with `Retry-After`, written at once, no task made. A request without a body keeps
        its connection, so a crowd retrying does not also reconnect; one with a body is closed, its body
        dropped."""
        exc = Overloaded(f"more than {self.limits.max_concurrent_requests} requests in flight")
        # Counted as a request answered 503, as the app's own refusal is, so the error-ratio alert sees it;
        # no access-log line: under a crowd, one per refusal would be most of the work.
        method = self.parser.get_method().decode("latin-1")
        metrics.request(UNMATCHED, method if method in KNOWN_METHODS else "OTHER", exc.status_code, 0.0, False)
        has_body = any(name in (b"content-length", b"transfer-encoding") for name, _ in self.headers)
        if has_body or not self.parser.should_keep_alive():
            self.refusal = exc
            raise _Refused
        metrics.incr("http.connection.refused", error=exc.error)
        self.answered_in_head = True
        self.transport.write(refusal_bytes(exc, self.server_state.default_headers, keep_alive=True))

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
        max_concurrent_requests=settings.max_concurrent_requests,
        max_event_loop_lag_seconds=settings.max_event_loop_lag_ms / 1000,
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

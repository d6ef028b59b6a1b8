"""StatsD metrics: one process-wide client, `metrics`, configured once at start-up.

    from core.metrics import metrics
    with metrics.timer("dynamodb.get_item", entity_type=entity_type.name): ...
    metrics.incr("kafka.publish", len(delivered), outcome="delivered")
    metrics.gauge("outbox.backlog", pending)

Every call is a no-op returning at once while `STATSD_HOST` is empty. Datagrams go out on a
non-blocking, unconnected UDP socket and any send error is dropped, so a missing or slow StatsD
server never slows or fails a request. A few lines of our own rather than a package: the `statsd`
package cannot send tags, and Datadog's client only speaks one tag style and logs, closes and
reopens its socket on every refused datagram.

Tag values must come from small, server-side sets (route templates, configured entity types,
status codes, exception class names), never from raw client input: each value is a time series.
"""

import logging
import socket
from collections.abc import Callable, Mapping
from contextlib import nullcontext
from time import perf_counter
from types import TracebackType
from typing import Any

logger = logging.getLogger("feature_store.metrics")


def _dogstatsd(name: str, value: str, tags: Mapping[str, Any]) -> str:
    if not tags:
        return f"{name}:{value}"
    return f"{name}:{value}|#{','.join(f'{key}:{tag}' for key, tag in tags.items())}"


def _influx(name: str, value: str, tags: Mapping[str, Any]) -> str:
    return f"{name}{''.join(f',{key}={tag}' for key, tag in tags.items())}:{value}"


def _graphite(name: str, value: str, tags: Mapping[str, Any]) -> str:
    return f"{name}{''.join(f';{key}={tag}' for key, tag in tags.items())}:{value}"


def _untagged(name: str, value: str, _tags: Mapping[str, Any]) -> str:
    return f"{name}:{value}"


Format = Callable[[str, str, Mapping[str, Any]], str]
"""Builds one StatsD line from a name, a typed value and tags."""

_FORMATS: dict[str, Format] = {
    "dogstatsd": _dogstatsd,
    "influx": _influx,
    "graphite": _graphite,
    "none": _untagged,
}
_NOOP_TIMER = nullcontext()


class Metrics:
    def __init__(self) -> None:
        self.enabled = False
        self._prefix = ""
        self._format: Format = _dogstatsd
        self._sock: socket.socket | None = None
        self._address: Any = None

    def configure(self, host: str, port: int = 8125, prefix: str = "", tag_style: str = "dogstatsd") -> None:
        """Point the client at `host:port`, or switch it off when `host` is empty."""
        self.close()
        if not host:
            return
        try:
            family, _, _, _, address = socket.getaddrinfo(host, port, type=socket.SOCK_DGRAM)[0]
        except OSError as exc:
            logger.warning("metrics off: cannot resolve STATSD_HOST %r: %s", host, exc)
            return
        sock = socket.socket(family, socket.SOCK_DGRAM)
        sock.setblocking(False)
        self._sock, self._address = sock, address
        self._prefix = f"{prefix}." if prefix else ""
        self._format = _FORMATS[tag_style]
        self.enabled = True

    def close(self) -> None:
        self.enabled = False
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def stat(self, name: str, value: str, tags: Mapping[str, Any]) -> str:
        """One line of the StatsD protocol; `value` carries its type, e.g. `1|c` or `12.5|ms`."""
        return self._format(self._prefix + name, value, tags)

    def send(self, *lines: str) -> None:
        """Send lines in one datagram; dropped silently if the socket cannot take it now."""
        sock = self._sock
        if sock is None:
            return
        try:
            sock.sendto("\n".join(lines).encode(), self._address)
        except OSError:
            pass

    def incr(self, name: str, value: int = 1, **tags: Any) -> None:
        if self.enabled:
            self.send(self.stat(name, f"{value}|c", tags))

    def gauge(self, name: str, value: float, **tags: Any) -> None:
        """Set an absolute value; it must not be negative (StatsD reads `-n|g` as a decrement)."""
        if self.enabled:
            self.send(self.stat(name, f"{value}|g", tags))

    def timing(self, name: str, milliseconds: float, **tags: Any) -> None:
        if self.enabled:
            self.send(self.stat(name, f"{milliseconds:.3f}|ms", tags))

    def timer(self, name: str, **tags: Any) -> "Timer | nullcontext[None]":
        """Time a block as `name`; if it raises, also count `name.error` tagged with the exception class."""
        return Timer(self, name, tags) if self.enabled else _NOOP_TIMER


class Timer:
    __slots__ = ("_metrics", "_name", "_tags", "_started")

    def __init__(self, metrics: Metrics, name: str, tags: dict[str, Any]) -> None:
        self._metrics = metrics
        self._name = name
        self._tags = tags
        self._started = 0.0

    def __enter__(self) -> None:
        self._started = perf_counter()

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        elapsed = f"{(perf_counter() - self._started) * 1000:.3f}|ms"
        metrics, name, tags = self._metrics, self._name, self._tags
        if exc_type is None:
            metrics.send(metrics.stat(name, elapsed, tags))
        else:
            error_tags = {**tags, "error": exc_type.__name__}
            metrics.send(metrics.stat(name, elapsed, tags), metrics.stat(f"{name}.error", "1|c", error_tags))


metrics = Metrics()
"""The process's one client; `main.create_app` configures it from the settings."""

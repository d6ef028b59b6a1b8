"""The StatsD exporter: lines of the StatsD protocol, sent over UDP as the facade (`core.metrics`) is called.

Datagrams go out on a non-blocking, unconnected UDP socket and any send error is dropped, so a missing or slow StatsD
server never slows or fails a request. A few lines of our own rather than a package: the `statsd`
package cannot send tags, and Datadog's client only speaks one tag style and logs, closes and
reopens its socket on every refused datagram.

Tag values must come from small, server-side sets (route templates, configured entity types,
status codes, exception class names), never from raw client input: each value is a time series.
Constant tags (`STATSD_CONSTANT_TAGS`, Datadog's `DD_ENV`/`DD_SERVICE`/`DD_VERSION`) are rendered once,
in the configured style, and end every line. Timers and observations go out as `|ms` or, with
`STATSD_TIMER_TYPE=distribution`, as DogStatsD distributions (`|d`), which the Datadog agent forwards
unaggregated so that percentiles are computed across every host.
"""

import logging
import socket
from collections.abc import Callable, Mapping, Sequence
from typing import Any

logger = logging.getLogger("feature_store.metrics")


def _dogstatsd(name: str, value: str, tags: Mapping[str, Any], constant: str) -> str:
    if not tags:
        return f"{name}:{value}|#{constant}" if constant else f"{name}:{value}"
    joined = ",".join(f"{key}:{tag}" for key, tag in tags.items())
    return f"{name}:{value}|#{joined},{constant}" if constant else f"{name}:{value}|#{joined}"


def _influx(name: str, value: str, tags: Mapping[str, Any], constant: str) -> str:
    return f"{name}{''.join(f',{key}={tag}' for key, tag in tags.items())}{constant}:{value}"


def _graphite(name: str, value: str, tags: Mapping[str, Any], constant: str) -> str:
    return f"{name}{''.join(f';{key}={tag}' for key, tag in tags.items())}{constant}:{value}"


def _untagged(name: str, value: str, _tags: Mapping[str, Any], _constant: str) -> str:
    return f"{name}:{value}"


Format = Callable[[str, str, Mapping[str, Any], str], str]
"""Builds one StatsD line from a name, a typed value, tags and the constant tags as the style writes them."""

_FORMATS: dict[str, Format] = {
    "dogstatsd": _dogstatsd,
    "influx": _influx,
    "graphite": _graphite,
    "none": _untagged,
}
_CONSTANT_TAGS: dict[str, Callable[[Mapping[str, str]], str]] = {
    "dogstatsd": lambda tags: ",".join(f"{key}:{tag}" for key, tag in tags.items()),
    "influx": lambda tags: "".join(f",{key}={tag}" for key, tag in tags.items()),
    "graphite": lambda tags: "".join(f";{key}={tag}" for key, tag in tags.items()),
    "none": lambda _tags: "",
}
TIMER_TYPES = {"ms": "ms", "distribution": "d"}
MAX_DATAGRAM_BYTES = 1432
"""Lines sent together by `send_many` are packed into datagrams of at most this size (an Ethernet
frame's payload; the Datadog agent's default buffer holds 8 KB)."""


class StatsD:
    """Sends to `host:port`; off (`enabled` false) when `host` is empty or cannot be resolved."""

    def __init__(
        self,
        host: str,
        port: int = 8125,
        prefix: str = "",
        tag_style: str = "dogstatsd",
        constant_tags: Mapping[str, str] | None = None,
        timer_type: str = "ms",
    ) -> None:
        self.enabled = False
        self._prefix = f"{prefix}." if prefix else ""
        self._format: Format = _FORMATS[tag_style]
        self._constant = _CONSTANT_TAGS[tag_style](constant_tags or {})
        self.timer_type = TIMER_TYPES[timer_type]
        """The StatsD type of timers and observations: `ms`, or `d` (DogStatsD distributions)."""
        self._sock: socket.socket | None = None
        self._address: Any = None
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
        self.enabled = True

    def close(self) -> None:
        self.enabled = False
        if self._sock is not None:
            self._sock.close()
            self._sock = None

    def stat(self, name: str, value: str, tags: Mapping[str, Any]) -> str:
        """One line of the StatsD protocol; `value` carries its type, e.g. `1|c` or `12.5|ms`."""
        return self._format(self._prefix + name, value, tags, self._constant)

    def send(self, *lines: str) -> None:
        """Send lines in one datagram; dropped silently if the socket cannot take it now."""
        sock = self._sock
        if sock is None:
            return
        try:
            sock.sendto("\n".join(lines).encode(), self._address)
        except OSError:
            pass

    def send_many(self, lines: list[str]) -> None:
        """Send many lines in as few datagrams as fit `MAX_DATAGRAM_BYTES` each."""
        start, size = 0, 0
        for index, line in enumerate(lines):
            if size and size + len(line) + 1 > MAX_DATAGRAM_BYTES:
                self.send(*lines[start:index])
                start, size = index, 0
            size += len(line) + 1
        if start < len(lines):
            self.send(*lines[start:])

    # What the facade calls; durations arrive in seconds and leave as milliseconds.
    def incr(self, name: str, value: float, tags: Mapping[str, Any]) -> None:
        self.send(self.stat(name, f"{value}|c", tags))

    def gauge(self, name: str, value: float, tags: Mapping[str, Any]) -> None:
        """An absolute value; it must not be negative (StatsD reads `-n|g` as a decrement)."""
        self.send(self.stat(name, f"{value}|g", tags))

    def timing(self, name: str, seconds: float, tags: Mapping[str, Any]) -> None:
        self.send(self.stat(name, f"{seconds * 1000:.3f}|{self.timer_type}", tags))

    def timed(self, name: str, seconds: float, tags: Mapping[str, Any], error: str | None) -> None:
        """A timer block; a failed one also counts `name.error` tagged with the exception class, in one datagram."""
        elapsed = self.stat(name, f"{seconds * 1000:.3f}|{self.timer_type}", tags)
        if error is None:
            self.send(elapsed)
        else:
            self.send(elapsed, self.stat(f"{name}.error", "1|c", {**tags, "error": error}))

    def observe(self, name: str, value: float, tags: Mapping[str, Any]) -> None:
        """A sample in the unit its name says (`read.feature_age_seconds`), sent as the timer type: statsd
        and the Datadog agent summarise it like a timer."""
        self.send(self.stat(name, f"{value:.3f}|{self.timer_type}", tags))

    def observe_many(self, name: str, samples: Sequence[tuple[float, Mapping[str, Any]]]) -> None:
        kind = self.timer_type
        self.send_many([self.stat(name, f"{value:.3f}|{kind}", tags) for value, tags in samples])

    def request(self, endpoint: str, method: str, status: int, seconds: float, slow: bool) -> None:
        """A served request: its count, duration and status count (`http.response.<status>`), in one datagram."""
        tags = {"endpoint": endpoint, "method": method, "status": status}
        stat = self.stat
        lines = [
            stat("http.request.count", "1|c", tags),
            stat("http.request.duration", f"{seconds * 1000:.3f}|{self.timer_type}", tags),
            stat(f"http.response.{status}", "1|c", tags),
        ]
        if slow:
            lines.append(stat("http.request.slow", "1|c", tags))
        self.send(*lines)

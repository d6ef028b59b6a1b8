"""Metrics: one process-wide facade, `metrics`, that every call site uses, configured once at start-up.

    from core.metrics import metrics
    with metrics.timer("dynamodb.get_item", entity_type=entity_type.name): ...
    metrics.incr("kafka.publish", len(delivered), outcome="delivered")
    metrics.gauge("outbox.backlog", pending)

Each call goes to every exporter `METRICS_EXPORTER` names: StatsD datagrams (`statsd.py`), Prometheus
metrics scraped from `/metrics` (`prometheus.py`), OpenTelemetry instruments pushed over OTLP
(`otlp.py`). Names are StatsD's; `catalogue.py` maps each to its Prometheus and OTLP instrument. With
no exporter every call is a no-op returning at once. Tag values must come from small, server-side sets
(route templates, configured entity types, status codes, exception class names): each is a time series.
"""

from collections.abc import Callable, Mapping, Sequence
from contextlib import AbstractContextManager, nullcontext
from time import perf_counter
from types import TracebackType
from typing import TYPE_CHECKING, Any, Protocol

from core.metrics.statsd import MAX_DATAGRAM_BYTES, StatsD

if TYPE_CHECKING:
    from core.settings import Settings

__all__ = ["MAX_DATAGRAM_BYTES", "Exporter", "Metrics", "StatsD", "Timer", "exporters_for", "metrics"]

_NOOP_TIMER = nullcontext()


class Exporter(Protocol):
    """What the facade calls on each exporter; durations in seconds, tags as the call site gave them."""

    enabled: bool

    def incr(self, name: str, value: float, tags: Mapping[str, Any]) -> None: ...
    def gauge(self, name: str, value: float, tags: Mapping[str, Any]) -> None: ...
    def timing(self, name: str, seconds: float, tags: Mapping[str, Any]) -> None: ...
    def timed(self, name: str, seconds: float, tags: Mapping[str, Any], error: str | None) -> None: ...
    def observe(self, name: str, value: float, tags: Mapping[str, Any]) -> None: ...
    def observe_many(self, name: str, samples: Sequence[tuple[float, Mapping[str, Any]]]) -> None: ...
    def request(self, endpoint: str, method: str, status: int, seconds: float, slow: bool) -> None: ...
    def close(self) -> None: ...


class Metrics:
    def __init__(self) -> None:
        self.enabled = False
        """True while at least one exporter is on: call sites skip work that only feeds metrics otherwise."""
        self.exporters: tuple[Exporter, ...] = ()
        self.traced_timer: Callable[[str, dict[str, Any]], AbstractContextManager[None]] | None = None
        """Set by `core.tracing` while tracing is on: each timer is then a span too."""

    def configure(self, *exporters: Exporter) -> None:
        """Send to these exporters from now on (those that are on); none switches metrics off."""
        self.close()
        self.exporters = tuple(exporter for exporter in exporters if exporter.enabled)
        self.enabled = bool(self.exporters)

    def close(self) -> None:
        exporters, self.exporters, self.enabled = self.exporters, (), False
        for exporter in exporters:
            exporter.close()

    def exporter(self, kind: type) -> Any:
        """The configured exporter of this class, or None."""
        return next((exporter for exporter in self.exporters if isinstance(exporter, kind)), None)

    def incr(self, name: str, value: int = 1, **tags: Any) -> None:
        for exporter in self.exporters:
            exporter.incr(name, value, tags)

    def gauge(self, name: str, value: float, **tags: Any) -> None:
        """Set an absolute value; it must not be negative (StatsD reads `-n|g` as a decrement)."""
        for exporter in self.exporters:
            exporter.gauge(name, value, tags)

    def timing(self, name: str, milliseconds: float, **tags: Any) -> None:
        seconds = milliseconds / 1000
        for exporter in self.exporters:
            exporter.timing(name, seconds, tags)

    def observe(self, name: str, value: float, **tags: Any) -> None:
        """One sample of a distribution in the unit its name says (`read.feature_age_seconds`)."""
        for exporter in self.exporters:
            exporter.observe(name, value, tags)

    def observe_many(self, name: str, samples: Sequence[tuple[float, Mapping[str, Any]]]) -> None:
        """Many samples of one distribution, each with its tags: StatsD packs them into few datagrams."""
        if samples:
            for exporter in self.exporters:
                exporter.observe_many(name, samples)

    def request(self, endpoint: str, method: str, status: int, seconds: float, slow: bool) -> None:
        """A request served: `http.request.count`, `.duration`, `http.response.<status>` and `.slow`."""
        for exporter in self.exporters:
            exporter.request(endpoint, method, status, seconds, slow)

    def timer(self, name: str, **tags: Any) -> AbstractContextManager[None]:
        """Time a block as `name`; if it raises, also count `name.error` tagged with the exception class.
        While tracing is on, the block is also a span of that name (see `core.tracing`)."""
        if self.traced_timer is not None:
            return self.traced_timer(name, tags)
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
        seconds = perf_counter() - self._started
        error = None if exc_type is None else exc_type.__name__
        for exporter in self._metrics.exporters:
            exporter.timed(self._name, seconds, self._tags, error)


def exporters_for(settings: "Settings", version: str, service_name: str) -> list[Exporter]:
    """The exporters `METRICS_EXPORTER` names; Prometheus' and OTLP's modules are imported only when named."""
    exporters: list[Exporter] = []
    chosen = settings.metrics_exporters
    if "statsd" in chosen:
        exporters.append(
            StatsD(
                settings.statsd_host,
                settings.statsd_port,
                settings.statsd_prefix,
                settings.statsd_tag_style,
                constant_tags=settings.statsd_tags,
                timer_type=settings.statsd_timer_type,
            )
        )
    if "prometheus" in chosen:
        from core.metrics.prometheus import Prometheus

        exporters.append(Prometheus(version))
    if "otlp" in chosen:
        from core.metrics.otlp import Otlp

        exporters.append(Otlp(service_name, version))
    return exporters


metrics = Metrics()
"""The process's one facade; `main.create_app` configures it from the settings."""

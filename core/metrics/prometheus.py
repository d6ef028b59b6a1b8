"""The Prometheus exporter: the catalogue's instruments in prometheus-client, scraped from `/metrics`.

A request costs a dict lookup and an `inc`/`observe` per metric: each labelled child is resolved once,
on its first use, and kept under the StatsD name and tags it came from. One worker process keeps its
values in plain objects of its own (`core/metrics/memory.py`, where the reason is measured). With several (`WEB_CONCURRENCY` > 1),
`prepare_multiprocess` gives them a shared directory before they start, `PROMETHEUS_MULTIPROC_DIR`:
each worker writes its values to files of its own there, and a scrape of any worker sums every file,
those of exited workers included, so nothing counted is lost. Gauges combine as the catalogue says
(`max` for the shared outbox, `livemin` for readiness: a worker that stops takes its value with it).
"""

import logging
import os
import tempfile
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics, multiprocess
from prometheus_client.exposition import choose_encoder

from core.metrics.catalogue import (
    BUILD_INFO,
    HTTP_DURATION,
    HTTP_REQUESTS,
    HTTP_SLOW,
    INSTRUMENTS,
    Instrument,
    entry_for,
)
from core.metrics.memory import MemoryCollector, MemoryInstrument

logger = logging.getLogger("feature_store.metrics")

MULTIPROCESS_VARIABLE = "PROMETHEUS_MULTIPROC_DIR"


class _Dropped:
    """Stands for the child of a name the catalogue lacks: recorded nowhere (and warned about once)."""

    def inc(self, _amount: float = 1) -> None:
        pass

    def observe(self, _amount: float) -> None:
        pass

    def set(self, _value: float) -> None:
        pass


_DROPPED = _Dropped()


def multiprocess_directory() -> str | None:
    """The shared directory of several worker processes, when prometheus-client runs in multiprocess mode."""
    return os.environ.get(MULTIPROCESS_VARIABLE)


def prepare_multiprocess(directory: str) -> str:
    """Before the workers start: an empty directory for their values (the files of an earlier run removed),
    named in the environment they inherit. An empty `directory` is a new temporary one."""
    path = Path(directory or tempfile.mkdtemp(prefix="feature-store-metrics-"))
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
    os.environ[MULTIPROCESS_VARIABLE] = str(path)
    return str(path)


def _metric(instrument: Instrument, registry: CollectorRegistry) -> Any:
    name, labels = instrument.name, instrument.labels
    if instrument.kind == "counter":
        return Counter(name.removesuffix("_total"), instrument.help, labels, registry=registry)
    if instrument.kind == "histogram":
        return Histogram(name, instrument.help, labels, registry=registry, buckets=instrument.buckets)
    return Gauge(
        name, instrument.help, labels, registry=registry, multiprocess_mode=instrument.multiprocess_mode or "all"
    )


class Prometheus:
    def __init__(self, version: str) -> None:
        self.enabled = True
        self.directory = multiprocess_directory()
        disable_created_metrics()  # `_created` series double the series count for a start time nobody graphs
        self.registry = CollectorRegistry(auto_describe=False)
        if self.directory:
            self._metrics = {instrument.name: _metric(instrument, self.registry) for instrument in INSTRUMENTS}
        else:
            memory = {instrument.name: MemoryInstrument(instrument) for instrument in INSTRUMENTS}
            for instrument in memory.values():
                if not instrument.instrument.labels:
                    instrument.labels()  # exported from the start, as prometheus-client's own are
            self.registry.register(MemoryCollector(memory))
            self._metrics = memory
        self._children: dict[tuple[Any, ...], Any] = {}
        self._requests: dict[tuple[str, str, int], tuple[Any, Any, Any]] = {}
        self._metrics[BUILD_INFO.name].labels(version).set(1)

    def close(self) -> None:
        """A worker's live gauges (readiness) leave with it; its counters and histograms stay in the sum."""
        self.enabled = False
        if self.directory:
            multiprocess.mark_process_dead(os.getpid(), self.directory)

    def _child(self, name: str, tags: Mapping[str, Any]) -> Any:
        key = (name, *tags.items())
        child = self._children.get(key)
        if child is None:
            entry = entry_for(name)
            if entry is None:
                logger.warning("metric %r is not in the catalogue: not exported to Prometheus", name)
                child = _DROPPED
            else:
                metric = self._metrics[entry.instrument.name]
                labelled = entry.instrument.labels or not self.directory
                child = metric.labels(*entry.label_values(name, tags)) if labelled else metric
            self._children[key] = child
        return child

    def incr(self, name: str, value: float, tags: Mapping[str, Any]) -> None:
        self._child(name, tags).inc(value)

    def gauge(self, name: str, value: float, tags: Mapping[str, Any]) -> None:
        self._child(name, tags).set(value)

    def observe(self, name: str, value: float, tags: Mapping[str, Any]) -> None:
        self._child(name, tags).observe(value)

    timing = observe

    def timed(self, name: str, seconds: float, tags: Mapping[str, Any], error: str | None) -> None:
        self._child(name, tags).observe(seconds)
        if error is not None:
            self._child(f"{name}.error", {**tags, "error": error}).inc(1)

    def observe_many(self, name: str, samples: Sequence[tuple[float, Mapping[str, Any]]]) -> None:
        for value, tags in samples:
            self._child(name, tags).observe(value)

    def request(self, endpoint: str, method: str, status: int, seconds: float, slow: bool) -> None:
        key = (endpoint, method, status)
        children = self._requests.get(key)
        if children is None:
            labels = (endpoint, method, str(status))
            children = tuple(
                self._metrics[metric.name].labels(*labels) for metric in (HTTP_REQUESTS, HTTP_DURATION, HTTP_SLOW)
            )
            self._requests[key] = children
        count, duration, slow_count = children
        count.inc()
        duration.observe(seconds)
        if slow:
            slow_count.inc()

    def exposition(self, accept: str) -> tuple[bytes, str]:
        """The scrape's body and content type: OpenMetrics when `accept` asks for it, else Prometheus' text
        format. With several workers, the sum of every worker's files."""
        registry = self.registry
        if self.directory:
            registry = CollectorRegistry(auto_describe=False)
            multiprocess.MultiProcessCollector(registry, self.directory)
        encode, content_type = choose_encoder(accept)
        return encode(registry), content_type

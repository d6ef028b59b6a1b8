"""The in-memory values of one worker are scraped exactly as prometheus-client's own instruments would be."""

from typing import Any

import pytest
from prometheus_client import CollectorRegistry, Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.exposition import generate_latest

from core.metrics.catalogue import HTTP_DURATION, HTTP_REQUESTS, OUTBOX_BACKLOG, Instrument
from core.metrics.memory import MemoryCollector, MemoryInstrument

pytestmark = pytest.mark.backends("sqlite")

SAMPLES = (0.0001, 0.0005, 0.0007, 0.003, 0.02, 0.4, 7.0, 12.0)
"""On bucket bounds, between them, and past the last one."""


def reference(instrument: Instrument, registry: CollectorRegistry) -> Any:
    name, labels = instrument.name, instrument.labels
    if instrument.kind == "counter":
        return Counter(name.removesuffix("_total"), instrument.help, labels, registry=registry)
    if instrument.kind == "histogram":
        return Histogram(name, instrument.help, labels, registry=registry, buckets=instrument.buckets)
    return Gauge(name, instrument.help, labels, registry=registry)


@pytest.mark.parametrize("instrument", [HTTP_REQUESTS, HTTP_DURATION, OUTBOX_BACKLOG], ids=lambda item: item.kind)
def test_the_exposition_matches_prometheus_clients(instrument: Instrument) -> None:
    disable_created_metrics()
    theirs_registry, ours_registry = CollectorRegistry(), CollectorRegistry()
    theirs = reference(instrument, theirs_registry)
    ours = MemoryInstrument(instrument)
    ours_registry.register(MemoryCollector({instrument.name: ours}))
    labels = [("/api/v1/health", "GET", "200"), ("/api/v1/items", "POST", "422")]
    for values in labels if instrument.labels else [()]:
        for sample in SAMPLES:
            targets: tuple[Any, Any] = (theirs.labels(*values) if values else theirs, ours.labels(*values))
            for target in targets:
                if instrument.kind == "counter":
                    target.inc(sample)
                elif instrument.kind == "histogram":
                    target.observe(sample)
                else:
                    target.set(sample)
    assert generate_latest(ours_registry) == generate_latest(theirs_registry)

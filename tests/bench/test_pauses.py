"""The pause metrics read around a benchmark run: differences of the service's own histograms, as its
Prometheus exporter writes them."""

import os

from prometheus_client import CollectorRegistry, Histogram, generate_latest

from bench import pauses
from core.metrics.catalogue import LATENCY, PAUSES


def exporter() -> tuple[CollectorRegistry, Histogram, Histogram, Histogram]:
    registry = CollectorRegistry()
    lag = Histogram("feature_store_event_loop_lag_seconds", "lag", buckets=PAUSES, registry=registry)
    gc = Histogram("feature_store_gc_pause_seconds", "gc", ["generation"], buckets=PAUSES, registry=registry)
    served = Histogram(
        "feature_store_http_request_duration_seconds", "served", ["route", "status"], buckets=LATENCY, registry=registry
    )
    return registry, lag, gc, served


def test_only_what_happened_between_the_scrapes_counts() -> None:
    registry, lag, gc, served = exporter()
    lag.observe(0.2)  # before the run: not counted
    gc.labels("2").observe(0.03)
    before = pauses.parse(generate_latest(registry).decode())
    for seconds in (0.0002, 0.002, 0.007, 0.007):
        lag.observe(seconds)
    gc.labels("0").observe(0.00005)
    gc.labels("0").observe(0.0003)
    for seconds, route in ((0.0004, "/a"), (0.003, "/a"), (0.02, "/b"), (0.3, "/b")):
        served.labels(route, "200").observe(seconds)
    explained = pauses.explain(before, pauses.parse(generate_latest(registry).decode()))
    assert explained["loop_lag_samples"] == 4
    assert explained["loop_late"] == {"over_1ms": 3, "over_5ms": 2, "over_10ms": 0, "over_50ms": 0}
    assert explained["loop_lag_worst_ms_at_most"] == 10.0
    assert explained["gc"] == {"0": {"count": 2, "pause_ms": 0.35, "longest_ms_at_most": 0.5}}
    assert explained["served"] == 4
    assert explained["served_slower"] == {"over_2.5ms": 3, "over_10ms": 2, "over_50ms": 1}
    assert "collections: gen0 2x" in pauses.summary(explained)


def test_a_pause_beyond_the_largest_bucket_is_unbounded() -> None:
    registry, lag, _, _ = exporter()
    before = pauses.parse(generate_latest(registry).decode())
    lag.observe(3.0)
    explained = pauses.explain(before, pauses.parse(generate_latest(registry).decode()))
    assert explained["loop_lag_worst_ms_at_most"] == float("inf")
    assert explained["gc"] == {} and "collections: none" in pauses.summary(explained)


def test_the_machine_readings_of_a_process_and_a_core() -> None:
    first = pauses.machine(os.getpid(), 0)
    sum(range(100_000))
    second = pauses.machine(os.getpid(), 0)
    assert set(first) == {"preempted", "steal_ms"}
    assert second["preempted"] >= first["preempted"] >= 0 and second["steal_ms"] >= first["steal_ms"] >= 0
    assert pauses.machine(os.getpid(), None)["steal_ms"] >= first["steal_ms"]

"""The catalogue is the one home of the names: every name a call site records maps to a Prometheus and an
OTLP instrument, and those follow Prometheus' conventions."""

import re
from pathlib import Path

import pytest

from core.metrics.catalogue import INSTRUMENTS, entry_for

ROOT = Path(__file__).resolve().parents[2]
SOURCES = [
    path
    for folder in ("api", "components", "core", "middlewares")
    for path in (ROOT / folder).rglob("*.py")
    if "metrics" not in path.parts
]
CALL = re.compile(r"metrics\.(timer|incr|gauge|timing|observe|observe_many)\(\s*(f?)\"([^\"]+)\"")
DYNAMIC = {
    "dynamodb.outbox_{action}": ["dynamodb.outbox_release", "dynamodb.outbox_dead_letter", "dynamodb.outbox_redrive"]
}
"""Names built at run time, and what they become."""
EMITTED_ELSEWHERE = ["http.request.count", "http.request.duration", "http.request.slow", "kafka.publish", "log.publish"]
"""Names `metrics.request` records, and the relay's `<sink>.publish`."""


def recorded_names() -> dict[str, str]:
    """Every metric name a call site records -> the call that records it."""
    names: dict[str, str] = {}
    for path in SOURCES:
        for call, is_format, name in CALL.findall(path.read_text()):
            for resolved in DYNAMIC[name] if is_format else [name]:
                names[resolved] = call
    return names


def test_call_sites_are_found() -> None:
    names = recorded_names()
    assert {"read.single_item", "sqlite.read", "dynamodb.get_item", "outbox.backlog", "ready"} <= set(names)
    assert names["dynamodb.outbox_release"] == "timer"


def test_every_recorded_name_is_catalogued() -> None:
    names = recorded_names()
    missing = [name for name in [*names, *EMITTED_ELSEWHERE] if entry_for(name) is None]
    assert missing == []
    timers = [name for name, call in names.items() if call == "timer"]
    assert [name for name in timers if entry_for(f"{name}.error") is None] == []


@pytest.mark.parametrize(
    ("name", "tags", "instrument", "labels"),
    [
        (
            "read.batch",
            {"entity_type": "bright_uid"},
            "feature_store_operation_duration_seconds",
            ("read.batch", "bright_uid"),
        ),
        (
            "delete.error",
            {"entity_type": "account_id", "error": "StoreUnavailable"},
            "feature_store_operation_errors_total",
            ("delete", "account_id", "StoreUnavailable"),
        ),
        ("sqlite.outbox_stats", {}, "feature_store_store_call_duration_seconds", ("sqlite", "outbox_stats", "")),
        (
            "dynamodb.get_item.error",
            {"entity_type": "bright_uid", "error": "StoreThrottled"},
            "feature_store_store_call_errors_total",
            ("dynamodb", "get_item", "bright_uid", "StoreThrottled"),
        ),
        (
            "write.bulk.failed",
            {"entity_type": "bright_uid"},
            "feature_store_bulk_write_entities_total",
            ("bright_uid", "failed"),
        ),
        ("log.publish", {"outcome": "rejected"}, "feature_store_events_published_total", ("log", "rejected")),
        (
            "http.connection.refused",
            {"error": "uri_too_long"},
            "feature_store_http_connections_refused_total",
            ("uri_too_long",),
        ),
    ],
)
def test_names_and_tags_become_instruments_and_labels(name: str, tags: dict, instrument: str, labels: tuple) -> None:
    entry = entry_for(name)
    assert entry is not None
    assert entry.instrument.name == instrument
    assert entry.label_values(name, tags) == labels


@pytest.mark.parametrize("name", ["unknown", "sqlite", "read.single_item.other", "write.bulk.entities.error"])
def test_names_outside_the_catalogue(name: str) -> None:
    assert entry_for(name) is None


@pytest.mark.parametrize("instrument", INSTRUMENTS, ids=lambda instrument: instrument.name)
def test_prometheus_conventions(instrument) -> None:
    assert re.fullmatch(r"feature_store_[a-z_]+", instrument.name)
    assert instrument.name.endswith("_total") == (instrument.kind == "counter")
    if instrument.kind == "histogram":
        assert instrument.name.endswith("_seconds") and instrument.unit == "s"
        assert list(instrument.buckets) == sorted(instrument.buckets)
    if instrument.kind == "gauge":
        assert instrument.multiprocess_mode in ("max", "livemin")
    assert "le" not in instrument.labels

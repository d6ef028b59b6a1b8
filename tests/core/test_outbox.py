"""The outbox relay: events leave the outbox only once delivered, failures are retried with backoff."""

import logging
import time
from collections.abc import Sequence

from components.features.store.base import OnlineStore
from core.events import Delivery, LogSink, OutboxEvent
from core.metrics import metrics
from core.outbox import OutboxRelay, backoff_seconds
from tests.components.features.store.test_contract import make_write


class FlakySink:
    name = "flaky"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.delivered: list[str] = []

    def initialise(self) -> list[str]:
        return []

    def publish(self, events: Sequence[OutboxEvent]) -> Delivery:
        ids = [event.event_id for event in events]
        if self.failures:
            self.failures -= 1
            return Delivery(failed=ids)
        self.delivered += ids
        return Delivery(delivered=ids)

    def state(self) -> dict:
        return {"sink": self.name}

    def close(self, timeout: float) -> None:
        pass


def relay_for(store: OnlineStore, sink) -> OutboxRelay:
    return OutboxRelay(
        store, sink, batch_size=100, poll_seconds=0.05, lease_seconds=30, max_backoff_seconds=0.2, gauge_seconds=0.05
    )


def test_backoff_grows_to_a_ceiling() -> None:
    assert [backoff_seconds(n, 3) for n in range(4)] == [0.5, 1, 2, 3]


def test_failed_delivery_is_retried_then_removed(store: OnlineStore, settings) -> None:
    user = settings.entity_types["bright_uid"]
    write = make_write("user_features", {"a": 1})
    store.write(user, "user-1", [write], write.metadata["updated_at"])
    sink = FlakySink(failures=2)
    relay = relay_for(store, sink)
    assert relay.relay_once() == 1
    assert sink.delivered == []
    assert store.outbox_stats().pending == 1
    relay.start()
    deadline = time.monotonic() + 5
    while not sink.delivered:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    relay.stop(timeout=1)
    assert sink.delivered == [write.event.event_id]
    assert store.outbox_stats().pending == 0


def test_relay_counts_deliveries_and_reports_the_backlog(store: OnlineStore, settings, statsd) -> None:
    metrics.configure("127.0.0.1", statsd.server.port, statsd.prefix)
    user = settings.entity_types["bright_uid"]
    for index in range(3):
        store.write(user, f"user-{index}", [make_write("user_features", {"a": index})], "2026-01-01T00:00:00.000000+00:00")
    relay = relay_for(store, FlakySink(failures=1))
    relay.report_backlog()
    assert statsd.wait_for("gauges", {"outbox.backlog": 3})["outbox.backlog"] == 3
    assert relay.relay_once() == 3
    deadline = time.monotonic() + 5
    while relay.relay_once() == 0:
        assert time.monotonic() < deadline
        time.sleep(0.02)
    expected = {"flaky.publish;outcome=failed": 3, "flaky.publish;outcome=delivered": 3}
    assert statsd.wait_for("counters", expected) == expected


def test_stop_drains_pending_events(store: OnlineStore, settings) -> None:
    user = settings.entity_types["bright_uid"]
    for index in range(3):
        store.write(user, f"user-{index}", [make_write("user_features", {"a": index})], "2026-01-01T00:00:00.000000+00:00")
    sink = FlakySink(failures=0)
    relay_for(store, sink).stop(timeout=2)
    assert len(sink.delivered) == 3


def test_log_sink_writes_one_line_per_event(client, caplog) -> None:
    caplog.set_level(logging.INFO, logger="feature_store.events")
    body = {
        "meta": {"source": "prediction_service", "compute_id": "job-9"},
        "data": {"entity_value": "user-9", "feature_list": [
            {"category": "user_features", "features": {"age": 1, "city": "x"}},
            {"category": "credit_features", "features": {"score": 2}},
        ]},
    }
    assert client.post("/api/v1/items", json=body).status_code == 200
    deadline = time.monotonic() + 5
    while len([r for r in caplog.records if r.name == "feature_store.events"]) < 2:
        assert time.monotonic() < deadline, "events were not delivered to the log"
        time.sleep(0.01)
    events = sorted((r.event for r in caplog.records if r.name == "feature_store.events"), key=lambda e: e["resource_name"])
    assert [event["resource_name"] for event in events] == ["credit_features", "user_features"]
    assert events[1]["features"] == ["age", "city"]
    assert events[1]["entity_type"] == "bright_uid"
    assert events[1]["entity_id"] == "user-9"
    assert events[1]["compute_id"] == "job-9"
    assert events[1]["event_type"] == "feature_available"
    assert events[1]["resource_type"] == "feature"
    assert client.app.state.runtime.store.outbox_stats().pending == 0
    assert isinstance(LogSink().state(), dict)

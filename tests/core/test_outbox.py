"""The outbox relay: events leave the outbox only once delivered, failures are retried with backoff."""

import time
from collections.abc import Sequence

from components.features.store.base import OnlineStore
from core.events import Delivery, OutboxEvent
from core.metrics import metrics
from core.outbox import OutboxRelay, backoff_seconds
from tests.factories import make_write


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
        store.write(
            user, f"user-{index}", [make_write("user_features", {"a": index})], "2026-01-01T00:00:00.000000+00:00"
        )
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


class BrokenSink(FlakySink):
    def publish(self, events: Sequence[OutboxEvent]) -> Delivery:
        raise RuntimeError("sink misconfigured")


def test_a_failing_sink_releases_its_batch_for_a_retry(store: OnlineStore, settings) -> None:
    user = settings.entity_types["bright_uid"]
    store.write(user, "user-1", [make_write("user_features", {"a": 1})], "2026-01-01T00:00:00.000000+00:00")
    relay = relay_for(store, BrokenSink(failures=0))
    assert relay.relay_once() == 1
    assert (relay.stats.failed, relay.stats.delivered, relay.stats.batches) == (1, 0, 1)
    # Released with a backoff, not held for the whole lease: a working sink gets it soon after.
    relay.sink = FlakySink(failures=0)
    deadline = time.monotonic() + 5
    while not relay.sink.delivered:
        assert time.monotonic() < deadline
        relay.relay_once()
        time.sleep(0.05)
    assert store.outbox_stats().pending == 0


def test_stop_drains_pending_events(store: OnlineStore, settings) -> None:
    user = settings.entity_types["bright_uid"]
    for index in range(3):
        store.write(
            user, f"user-{index}", [make_write("user_features", {"a": index})], "2026-01-01T00:00:00.000000+00:00"
        )
    sink = FlakySink(failures=0)
    relay_for(store, sink).stop(timeout=2)
    assert len(sink.delivered) == 3

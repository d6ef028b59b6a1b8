"""The outbox relay: events leave the outbox only once delivered, failures are retried with backoff."""

import logging
import time
from collections.abc import Sequence
from typing import cast

import anyio
import pytest

from components.events.events import Delivery, OutboxEvent, Rejection
from components.events.outbox import OutboxRelay, backoff_seconds, waves
from components.features.store.base import OnlineStore
from core.metrics import StatsD, metrics
from tests.factories import make_write

pytestmark = pytest.mark.anyio


class FlakySink:
    name = "flaky"

    def __init__(self, failures: int) -> None:
        self.failures = failures
        self.delivered: list[str] = []

    async def initialise(self) -> list[str]:
        return []

    async def publish(self, events: Sequence[OutboxEvent]) -> Delivery:
        ids = [event.event_id for event in events]
        if self.failures:
            self.failures -= 1
            return Delivery(failed=ids)
        self.delivered += ids
        return Delivery(delivered=ids)

    def state(self) -> dict:
        return {"sink": self.name}

    async def close(self, timeout: float) -> None:
        pass


def relay_for(store: OnlineStore, sink) -> OutboxRelay:
    return OutboxRelay(
        store,
        sink,
        batch_size=100,
        poll_seconds=0.05,
        lease_seconds=30,
        max_backoff_seconds=0.2,
        gauge_seconds=0.05,
        max_attempts=3,
    )


def test_backoff_grows_to_a_ceiling() -> None:
    assert [backoff_seconds(n, 3) for n in range(4)] == [0.5, 1, 2, 3]


async def test_failed_delivery_is_retried_then_removed(store: OnlineStore, settings) -> None:
    user = settings.entity_types["bright_uid"]
    write = make_write("user_features", {"a": 1})
    await store.write(user, "user-1", [write], write.metadata["updated_at"])
    sink = FlakySink(failures=2)
    relay = relay_for(store, sink)
    assert await relay.relay_once() == 1
    assert sink.delivered == []
    assert (await store.outbox_stats()).pending == 1
    relay.start()
    deadline = time.monotonic() + 5
    while not sink.delivered:
        assert time.monotonic() < deadline
        await anyio.sleep(0.02)
    await relay.stop(timeout=1)
    assert sink.delivered == [write.event.event_id]
    assert (await store.outbox_stats()).pending == 0


async def test_relay_counts_deliveries_and_reports_the_backlog(store: OnlineStore, settings, statsd) -> None:
    metrics.configure(StatsD("127.0.0.1", statsd.server.port, statsd.prefix))
    user = settings.entity_types["bright_uid"]
    for index in range(3):
        await store.write(
            user, f"user-{index}", [make_write("user_features", {"a": index})], "2026-01-01T00:00:00.000000+00:00"
        )
    relay = relay_for(store, FlakySink(failures=1))
    await relay.report_backlog()
    assert statsd.wait_for("gauges", {"outbox.backlog": 3})["outbox.backlog"] == 3
    assert await relay.relay_once() == 3
    deadline = time.monotonic() + 5
    while await relay.relay_once() == 0:
        assert time.monotonic() < deadline
        await anyio.sleep(0.02)
    expected = {"flaky.publish;outcome=failed": 3, "flaky.publish;outcome=delivered": 3}
    assert statsd.wait_for("counters", expected) == expected


class BrokenSink(FlakySink):
    async def publish(self, events: Sequence[OutboxEvent]) -> Delivery:
        raise RuntimeError("sink misconfigured")


async def test_a_failing_sink_releases_its_batch_for_a_retry(store: OnlineStore, settings) -> None:
    user = settings.entity_types["bright_uid"]
    await store.write(user, "user-1", [make_write("user_features", {"a": 1})], "2026-01-01T00:00:00.000000+00:00")
    relay = relay_for(store, BrokenSink(failures=0))
    assert await relay.relay_once() == 1
    assert (relay.stats.failed, relay.stats.delivered, relay.stats.batches) == (1, 0, 1)
    # Released with a backoff, not held for the whole lease: a working sink gets it soon after.
    relay.sink = FlakySink(failures=0)
    deadline = time.monotonic() + 5
    while not relay.sink.delivered:
        assert time.monotonic() < deadline
        await relay.relay_once()
        await anyio.sleep(0.05)
    assert (await store.outbox_stats()).pending == 0


async def test_stop_drains_pending_events(store: OnlineStore, settings) -> None:
    user = settings.entity_types["bright_uid"]
    for index in range(3):
        await store.write(
            user, f"user-{index}", [make_write("user_features", {"a": index})], "2026-01-01T00:00:00.000000+00:00"
        )
    sink = FlakySink(failures=0)
    await relay_for(store, sink).stop(timeout=2)
    assert len(sink.delivered) == 3


class JudgingSink(FlakySink):
    """Delivers every event but those it rejects (permanently or not); fails the whole batch with the
    pipeline while `failures` lasts."""

    def __init__(self, failures: int = 0, refuse: dict[str, Rejection] | None = None) -> None:
        super().__init__(failures)
        self.refuse = refuse or {}
        self.published: list[str] = []

    async def publish(self, events: Sequence[OutboxEvent]) -> Delivery:
        ids = [event.event_id for event in events]
        self.published += ids
        if self.failures:
            self.failures -= 1
            return Delivery(failed=ids)
        delivery = Delivery()
        for event_id in ids:
            if event_id in self.refuse:
                delivery.rejected[event_id] = self.refuse[event_id]
            else:
                delivery.delivered.append(event_id)
        self.delivered += delivery.delivered
        return delivery


async def _write_three(store: OnlineStore, settings) -> list[str]:
    user = settings.entity_types["bright_uid"]
    writes = [make_write(category, {"a": 1}) for category in ("user_features", "credit_features", "trans_features")]
    await store.write(user, "user-1", writes, "2026-01-01T00:00:00.000000+00:00")
    return [write.event.event_id for write in writes]


async def _relay_until_settled(relay: OutboxRelay, store: OnlineStore) -> None:
    deadline = time.monotonic() + 10
    while (await store.outbox_stats()).pending:
        assert time.monotonic() < deadline, "events still pending"
        await relay.relay_once()
        await anyio.sleep(0.02)


async def test_a_permanent_rejection_is_a_dead_letter_at_once_and_blocks_nothing(
    store: OnlineStore, settings, statsd
) -> None:
    metrics.configure(StatsD("127.0.0.1", statsd.server.port, statsd.prefix))
    ids = await _write_three(store, settings)
    sink = JudgingSink(refuse={ids[1]: Rejection("Kafka refused the event: Broker: Message size too large", True)})
    relay = relay_for(store, sink)
    assert await relay.relay_once() == 3
    assert sorted(sink.delivered) == sorted([ids[0], ids[2]])
    stats = await store.outbox_stats()
    assert (stats.pending, stats.dead_letters) == (0, 1)
    (letter,) = (await store.list_dead_letters(10, None)).dead_letters
    assert (letter.event.event_id, letter.event.attempts) == (ids[1], 1)
    assert letter.reason == "Kafka refused the event: Broker: Message size too large"
    assert relay.stats.dead_lettered == 1
    await relay.report_backlog()
    assert statsd.wait_for("gauges", {"outbox.dead_letters": 1})["outbox.dead_letters"] == 1
    expected = {"flaky.publish;outcome=dead_letter": 1, "flaky.publish;outcome=delivered": 2}
    assert statsd.wait_for("counters", expected) == expected


async def test_an_event_failing_on_its_own_is_a_dead_letter_after_max_attempts(store: OnlineStore, settings) -> None:
    ids = await _write_three(store, settings)
    # Pipeline failures before and between its own failures count nothing.
    sink = JudgingSink(failures=4, refuse={ids[0]: Rejection("Broker: Policy violation", False)})
    relay = relay_for(store, sink)
    await _relay_until_settled(relay, store)
    assert sorted(sink.delivered) == sorted(ids[1:])
    assert sink.published.count(ids[0]) == 4 + relay.max_attempts
    (letter,) = (await store.list_dead_letters(10, None)).dead_letters
    assert letter.event.event_id == ids[0]
    assert letter.event.attempts == relay.max_attempts == 3
    assert letter.reason == "failed 3 times; last: Broker: Policy violation"


async def test_an_outage_makes_no_dead_letters(store: OnlineStore, settings) -> None:
    ids = await _write_three(store, settings)
    sink = JudgingSink(failures=12)
    relay = relay_for(store, sink)
    await _relay_until_settled(relay, store)
    assert sorted(sink.delivered) == sorted(ids)
    assert (await store.outbox_stats()).dead_letters == 0
    assert relay.stats.dead_lettered == 0


async def test_redrive_publishes_dead_letters_again(store: OnlineStore, settings) -> None:
    ids = await _write_three(store, settings)
    sink = JudgingSink(refuse={event_id: Rejection("too large", True) for event_id in ids})
    relay = relay_for(store, sink)
    await relay.relay_once()
    assert (await store.outbox_stats()).dead_letters == 3
    sink.refuse = {}
    relay.start()
    try:
        assert sorted(await relay.redrive(store, ids[:2], 100)) == sorted(ids[:2])
        deadline = time.monotonic() + 5
        while len(sink.delivered) < 2:
            assert time.monotonic() < deadline, "re-driven events were not published"
            await anyio.sleep(0.02)
    finally:
        await relay.stop(timeout=1)
    assert sorted(sink.delivered) == sorted(ids[:2])
    stats = await store.outbox_stats()
    assert (stats.pending, stats.dead_letters) == (0, 1)


class FailingStats:
    """A store whose backlog cannot be measured."""

    def __init__(self) -> None:
        self.calls = 0

    async def outbox_stats(self):
        self.calls += 1
        raise RuntimeError("store down")


async def test_an_unmeasurable_backlog_is_logged_as_a_warning_not_every_time(caplog) -> None:
    failing = FailingStats()
    relay = relay_for(failing, JudgingSink())  # type: ignore[arg-type]
    with caplog.at_level(logging.WARNING, logger="feature_store.outbox"):
        for _ in range(5):
            await relay.report_backlog()
    warnings = [record for record in caplog.records if record.levelno == logging.WARNING]
    assert failing.calls == 5
    assert len(warnings) == 1 and "outbox backlog unknown" in warnings[0].getMessage()
    assert relay.backlog is None


def _event(event_id: str, entity: str, category: str) -> OutboxEvent:
    return OutboxEvent(event_id, f"bright_uid:{entity}", {"resource_name": category}, 0.0)


def test_a_batch_goes_in_waves_of_one_event_a_category() -> None:
    batch = [
        _event("a1", "u1", "user_features"),
        _event("b1", "u1", "credit_features"),
        _event("a2", "u1", "user_features"),
        _event("c1", "u2", "user_features"),
        _event("a3", "u1", "user_features"),
    ]
    assert [[event.event_id for event in wave] for wave in waves(batch)] == [["a1", "b1", "c1"], ["a2"], ["a3"]]


class ClaimOnce:
    """A store whose one claim returns `batch` (as DynamoDB's claim may: a category's run, in version order)."""

    def __init__(self, batch: list[OutboxEvent]) -> None:
        self.batch = batch
        self.deleted: list[str] = []
        self.retried: list[str] = []

    async def claim_events(self, limit: int, lease_seconds: float) -> list[OutboxEvent]:
        batch, self.batch = self.batch, []
        return batch

    async def delete_events(self, event_ids: Sequence[str]) -> None:
        self.deleted += event_ids

    async def retry_events(self, event_ids: Sequence[str], delay_seconds: float, count_attempt: bool = True) -> None:
        self.retried += event_ids


class FailsFirst(JudgingSink):
    """Fails the events named in `fail` (the pipeline's failure of part of a batch) and delivers the rest."""

    def __init__(self, fail: set[str]) -> None:
        super().__init__()
        self.fail = fail

    async def publish(self, events: Sequence[OutboxEvent]) -> Delivery:
        ids = [event.event_id for event in events]
        self.published += ids
        return Delivery(delivered=[i for i in ids if i not in self.fail], failed=[i for i in ids if i in self.fail])


async def test_a_later_version_is_never_sent_after_its_category_failed_in_the_same_batch() -> None:
    store = ClaimOnce([_event("a1", "u1", "user_features"), _event("b1", "u1", "credit_features")])
    store.batch += [_event("a2", "u1", "user_features"), _event("b2", "u1", "credit_features")]
    sink = FailsFirst(fail={"a1"})
    relay = relay_for(cast(OnlineStore, store), sink)
    assert await relay.relay_once() == 4
    assert sink.published == ["a1", "b1", "b2"], "a2 waits behind a1, each wave after the one before"
    assert store.deleted == ["b1", "b2"]
    assert sorted(store.retried) == ["a1", "a2"]

"""The outbox relay: moves events committed with their writes to the event sink, at least once.

Writes never wait for it. After each commit the flow wakes it; it also polls, so events left by a
Kafka outage, a crash or another replica's expired lease are picked up. An event leaves the outbox
only after the sink confirms delivery, or as a dead letter: an event the sink rejects for good (too
large for the broker), or that failed on its own `max_attempts` times, is kept aside with its reason,
never deleted, until an operator re-drives it. Failures of the whole pipeline (an outage) are retried
without counting an attempt, so an outage never makes dead letters.

It is an asyncio task on the app's event loop, started in the lifespan: the store and the sink are
async and decide for themselves what runs in a worker thread (SQLite's writes, Kafka's flush), so
the relay never blocks the loop and needs no thread of its own.
"""

import asyncio
import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from components.events.events import Delivery, EventSink, OutboxEvent
from core.metrics import metrics
from core.tracing import tracing

logger = logging.getLogger("feature_store.outbox")


@dataclass(frozen=True, slots=True)
class OutboxStats:
    pending: int
    """Events waiting for delivery (dead letters not included)."""
    oldest_age_seconds: float
    dead_letters: int = 0


@dataclass(frozen=True, slots=True)
class DeadLetter:
    """An event taken out of the retry loop: `event.attempts` counts the failures that were its own."""

    event: OutboxEvent
    reason: str
    dead_at_epoch: float


EVENT_ID_PATTERN = r"^[A-Za-z0-9_.:-]{1,128}$"
"""What an event id named by a client may look like (the service's own are UUIDs)."""
DEAD_LETTER_CURSOR_PATTERN = r"^[0-9]{1,12}(\.[0-9]{1,9})?:[A-Za-z0-9_.:-]{1,128}$"
"""A position in the dead letters' order: `<dead_at epoch seconds>:<event_id>`."""


@dataclass(frozen=True, slots=True)
class DeadLetterCursor:
    """Where a page of dead letters (ordered by the time they died, then id) ends, written
    `<dead_at epoch seconds>:<event_id>`. Any such position is a valid place to start a page, so the
    cursor is checked by its pattern alone; `repr` keeps every bit of the time, so no dead letter at a
    page's edge is listed twice or skipped."""

    dead_at_epoch: float
    event_id: str

    def encode(self) -> str:
        return f"{self.dead_at_epoch!r}:{self.event_id}"

    @classmethod
    def decode(cls, cursor: str) -> "DeadLetterCursor":
        """A cursor matching `DEAD_LETTER_CURSOR_PATTERN` (the query parameter's own check)."""
        dead_at, _, event_id = cursor.partition(":")
        return cls(float(dead_at), event_id)


@dataclass(frozen=True, slots=True)
class DeadLetterPage:
    dead_letters: list[DeadLetter]
    next: DeadLetterCursor | None
    """Where the next page starts; None on the last page."""


@dataclass(slots=True)
class RelayStats:
    """Plain counters since start-up, for metrics and `/ready`: events delivered and failed,
    batches published and the time the sink took for them."""

    delivered: int = 0
    failed: int = 0
    dead_lettered: int = 0
    batches: int = 0
    publish_seconds_total: float = 0.0
    last_publish_seconds: float = 0.0

    def record(self, delivery: Delivery, seconds: float) -> None:
        self.delivered += len(delivery.delivered)
        self.failed += len(delivery.failed) + len(delivery.rejected)
        self.batches += 1
        self.publish_seconds_total += seconds
        self.last_publish_seconds = seconds

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)


class OutboxStore(Protocol):
    """The outbox side of a store: what the relay needs of it, and nothing more."""

    async def claim_events(self, limit: int, lease_seconds: float) -> list[OutboxEvent]:
        """Lease due events to this process so other replicas leave them alone for a while."""

    async def delete_events(self, event_ids: Sequence[str]) -> None:
        """Remove delivered events."""

    async def retry_events(self, event_ids: Sequence[str], delay_seconds: float, *, count_attempt: bool) -> None:
        """Release failed events, due again after `delay_seconds`; `count_attempt` when they failed on their
        own (a failure of the whole pipeline counts nothing)."""

    async def dead_letter_events(self, reasons: Mapping[str, str]) -> None:
        """Take events (id -> reason) out of the retry loop as dead letters, counting this failure as an
        attempt; ids no longer in the outbox are ignored."""

    async def outbox_stats(self) -> OutboxStats:
        """Count the pending events and the dead letters (may read the whole outbox: the relay calls it,
        never a request)."""


class DeadLetterStore(Protocol):
    """What an operator does with dead letters: look at them, and re-drive them once the cause is fixed."""

    async def list_dead_letters(self, limit: int, after: DeadLetterCursor | None) -> DeadLetterPage:
        """Up to `limit` dead letters after `after`, the longest dead first."""

    async def redrive_dead_letters(self, event_ids: Sequence[str] | None, limit: int) -> list[str]:
        """Make dead letters due events again with no attempts counted: those named, or (None) the `limit`
        longest dead. Return the ids re-driven; named ids that are not dead letters are left out."""


LINGER_SECONDS = 0.005


WARN_EVERY_SECONDS = 60.0
"""A failure that repeats (the backlog measurement) is logged at WARNING at most this often."""


def backoff_seconds(attempts: int, ceiling: float) -> float:
    return min(ceiling, 0.5 * 2**attempts)


def _category(event: OutboxEvent) -> tuple[str, Any]:
    return event.key, event.payload.get("resource_name")


def waves(events: Sequence[OutboxEvent]) -> list[list[OutboxEvent]]:
    """A batch (each category's events in version order) split so that each wave holds at most one event of a
    category: the k-th of each category in wave k. A producer may split one batch (an earlier event timed out
    or purged, a later one delivered), so two versions of a category are never handed over together. Almost
    every batch is one wave."""
    split: list[list[OutboxEvent]] = []
    seen: dict[tuple[str, Any], int] = {}
    for event in events:
        category = _category(event)
        index = seen.get(category, 0)
        seen[category] = index + 1
        if index == len(split):
            split.append([])
        split[index].append(event)
    return split


class OutboxRelay:
    def __init__(
        self,
        store: OutboxStore,
        sink: EventSink,
        *,
        batch_size: int,
        poll_seconds: float,
        lease_seconds: float,
        max_backoff_seconds: float,
        gauge_seconds: float,
        max_attempts: int,
    ) -> None:
        self.store = store
        self.sink = sink
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.gauge_seconds = gauge_seconds
        self.max_attempts = max_attempts
        self._outage = 0
        """Batches in a row that failed with the whole pipeline: their backoff grows with it."""
        self._backlog_failures = 0
        self._backlog_warned_at = -math.inf
        self._publish_metric = f"{sink.name}.publish"
        self.backlog: OutboxStats | None = None
        """The backlog as last measured by `report_backlog`."""
        # Made by `start`, on the loop that runs the relay (the relay is built before any loop runs).
        self._wake: asyncio.Event | None = None
        self._stopping = False
        self._task: asyncio.Task[None] | None = None
        self._gauge_task: asyncio.Task[None] | None = None
        self._stopped: asyncio.Event | None = None
        self.stats = RelayStats()

    def start(self) -> None:
        """Run the relay as a task of the running event loop, beginning with what a previous run left behind."""
        if self._task is None:
            self._stopping = False
            self._wake = asyncio.Event()
            self._wake.set()
            self._stopped = asyncio.Event()
            loop = asyncio.get_running_loop()
            self._task = loop.create_task(self._run(), name="outbox-relay")
            # On a clock of its own: a relay stuck on a slow or failing sink must not freeze the backlog
            # `/ready` reports at what it was before the sink stalled.
            self._gauge_task = loop.create_task(self._measure(), name="outbox-backlog")

    def notify(self) -> None:
        """A write committed events: publish them now rather than at the next poll. Called on the relay's loop."""
        if self._wake is not None:
            self._wake.set()

    async def relay_once(self) -> int:
        """Publish one batch of due events; return how many were claimed."""
        claimed_at = tracing.now_ns()
        events = await self.store.claim_events(self.batch_size, self.lease_seconds)
        if not events:
            return 0
        with tracing.relay_span(self.sink.name, [event.traceparent for event in events], claimed_at):
            await self._relay(events)
        return len(events)

    async def _publish(self, events: list[OutboxEvent]) -> Delivery:
        """Hand the batch to the sink in waves (`waves`): each wave once the one before was answered, and an
        event whose category's earlier version failed in this batch is not sent but retried behind it."""
        delivery = Delivery()
        held: set[tuple[str, Any]] = set()
        for wave in waves(events):
            sendable = [event for event in wave if _category(event) not in held]
            delivery.failed += [event.event_id for event in wave if _category(event) in held]
            if not sendable:
                continue
            try:
                answered = await self.sink.publish(sendable)
            except Exception:
                # Release the batch for a retry now rather than when its lease runs out.
                logger.exception("event sink failed")
                answered = Delivery(failed=[event.event_id for event in sendable])
            delivery.delivered += answered.delivered
            delivery.failed += answered.failed
            delivery.rejected |= answered.rejected
            unsent = set(answered.failed) | answered.rejected.keys()
            held |= {_category(event) for event in sendable if event.event_id in unsent}
        return delivery

    async def _relay(self, events: list[OutboxEvent]) -> None:
        started = time.perf_counter()
        delivery = await self._publish(events)
        self.stats.record(delivery, time.perf_counter() - started)
        tracing.record_delivery(len(delivery.delivered), len(delivery.failed))
        if delivery.delivered:
            metrics.incr(self._publish_metric, len(delivery.delivered), outcome="delivered")
            await self.store.delete_events(delivery.delivered)
        if delivery.rejected:
            await self._handle_rejected(delivery, {event.event_id: event.attempts for event in events})
        if delivery.failed:
            # The pipeline failed, not the events: no attempt is counted, the wait grows with the outage.
            delay = backoff_seconds(0 if delivery.delivered else self._outage, self.max_backoff_seconds)
            self._outage = 0 if delivery.delivered else self._outage + 1
            metrics.incr(self._publish_metric, len(delivery.failed), outcome="failed")
            await self.store.retry_events(delivery.failed, delay, count_attempt=False)
            logger.warning("event delivery failed", extra={"failed": len(delivery.failed), "retry_in_s": delay})
        else:
            self._outage = 0

    async def _handle_rejected(self, delivery: Delivery, attempts: Mapping[str, int]) -> None:
        """Events that failed on their own: dead letters when the failure is permanent or their last
        allowed attempt, else retried with a backoff of their own."""
        dead: dict[str, str] = {}
        again: list[str] = []
        for event_id, rejection in delivery.rejected.items():
            failures = attempts.get(event_id, 0) + 1
            if rejection.permanent:
                dead[event_id] = rejection.reason
            elif failures >= self.max_attempts:
                dead[event_id] = f"failed {failures} times; last: {rejection.reason}"
            else:
                again.append(event_id)
        if again:
            metrics.incr(self._publish_metric, len(again), outcome="rejected")
            delay = backoff_seconds(max(attempts.get(event_id, 0) for event_id in again), self.max_backoff_seconds)
            await self.store.retry_events(again, delay, count_attempt=True)
            logger.warning("events rejected; retrying them", extra={"rejected": len(again), "retry_in_s": delay})
        if dead:
            metrics.incr(self._publish_metric, len(dead), outcome="dead_letter")
            await self.store.dead_letter_events(dead)
            self.stats.dead_lettered += len(dead)
            for event_id, reason in dead.items():
                logger.error("event kept as a dead letter", extra={"event_id": event_id, "reason": reason})

    async def redrive(self, store: DeadLetterStore, event_ids: Sequence[str] | None, limit: int) -> list[str]:
        """Put dead letters back among the due events and publish them now."""
        redriven = await store.redrive_dead_letters(event_ids, limit)
        if redriven:
            logger.info("dead letters re-driven", extra={"redriven": len(redriven)})
            self.notify()
        return redriven

    async def report_backlog(self) -> None:
        """Measure the outbox backlog, keep it for `/ready` and send it as gauges. Only the relay's
        measuring task calls it, every `gauge_seconds`: counting the outbox may mean reading all of it
        (a Scan on DynamoDB), which a readiness probe must never wait for."""
        try:
            stats = await self.store.outbox_stats()
        except Exception:
            # A stale gauge must show in the log: the first failure, then at most one line a minute.
            self._backlog_failures += 1
            now = time.monotonic()
            if now - self._backlog_warned_at >= WARN_EVERY_SECONDS:
                self._backlog_warned_at = now
                logger.warning(
                    "outbox backlog unknown; the gauges keep their last value",
                    exc_info=True,
                    extra={"failures_in_a_row": self._backlog_failures},
                )
            return
        if self._backlog_failures:
            logger.info("outbox backlog measured again", extra={"failures_in_a_row": self._backlog_failures})
            self._backlog_failures = 0
            self._backlog_warned_at = -math.inf
        self.backlog = stats
        metrics.gauge("outbox.backlog", stats.pending)
        metrics.gauge("outbox.oldest_pending_age_seconds", round(stats.oldest_age_seconds, 3))
        metrics.gauge("outbox.dead_letters", stats.dead_letters)

    async def drain(self, deadline: float) -> int:
        """Publish what is due until nothing is left or the deadline (a `time.monotonic()` value) passes;
        return how many events were handed to the sink."""
        relayed = 0
        while time.monotonic() < deadline:
            try:
                claimed = await self.relay_once()
            except Exception:
                logger.exception("outbox relay failed while draining")
                return relayed
            relayed += claimed
            if claimed == 0:
                return relayed
        logger.warning("outbox flush time is up; events still pending stay in the outbox for the next relay")
        return relayed

    async def _sleep(self, seconds: float) -> bool:
        """Wait `seconds` or until woken; True when woken."""
        assert self._wake is not None
        try:
            async with asyncio.timeout(seconds):
                await self._wake.wait()
        except TimeoutError:
            return False
        return True

    async def _run(self) -> None:
        assert self._wake is not None
        failures = 0
        while not self._stopping:
            woken = await self._sleep(
                self.poll_seconds if failures == 0 else backoff_seconds(failures, self.max_backoff_seconds)
            )
            if woken and failures == 0 and not self._stopping:
                # Let the writes of the next few milliseconds join this batch: one claim and one
                # deletion for many events instead of for each.
                await asyncio.sleep(LINGER_SECONDS)
            self._wake.clear()
            if self._stopping:
                return
            try:
                # Until a claim finds nothing: one that found fewer than a batch may have left events behind
                # an earlier version of their category, due as soon as it is published.
                while await self.relay_once() > 0 and not self._stopping:
                    pass
                failures = 0
            except Exception:
                failures += 1
                logger.exception("outbox relay failed; will retry")

    async def _measure(self) -> None:
        """Measure the backlog every `gauge_seconds`, whatever the relay is doing: a measurement
        that hangs delays the next one, never a delivery."""
        assert self._stopped is not None
        while not self._stopping:
            await self.report_backlog()
            try:
                async with asyncio.timeout(self.gauge_seconds):
                    await self._stopped.wait()
            except TimeoutError:
                pass

    async def stop(self, timeout: float) -> None:
        """Stop the background tasks, then publish what is still due within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        self._stopping = True
        self.notify()
        gauge_task, self._gauge_task = self._gauge_task, None
        if self._stopped is not None:
            self._stopped.set()
        if gauge_task is not None:
            # Left to end by itself, not cancelled: a count running in a worker thread must be done before
            # the store closes its connections. One still running at the deadline (a slow Scan) is cancelled.
            done, _ = await asyncio.wait({gauge_task}, timeout=max(0.0, deadline - time.monotonic()))
            if not done:
                gauge_task.cancel()
                await asyncio.wait({gauge_task})
        task, self._task = self._task, None
        if task is not None:
            # A batch in flight may finish within the time given; past it, it is cancelled (its events
            # stay leased in the outbox and are published after their lease, by this or another replica).
            done, _ = await asyncio.wait({task}, timeout=max(0.0, deadline - time.monotonic()))
            if not done:
                task.cancel()
                await asyncio.wait({task}, timeout=max(0.0, deadline - time.monotonic()))
        flushed = await self.drain(deadline)
        await self.sink.close(max(0.0, deadline - time.monotonic()))
        logger.info("outbox relay stopped", extra={"flushed_at_stop": flushed})

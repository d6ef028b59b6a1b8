"""The outbox relay: moves events committed with their writes to the event sink, at least once.

Writes never wait for it. After each commit the flow wakes it; it also polls, so events left by a
Kafka outage, a crash or another replica's expired lease are picked up. An event leaves the outbox
only after the sink confirms delivery.

It is an asyncio task on the app's event loop, started in the lifespan: the store and the sink are
async and decide for themselves what runs in a worker thread (SQLite's writes, Kafka's flush), so
the relay never blocks the loop and needs no thread of its own.
"""

import asyncio
import logging
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from core.events import Delivery, EventSink, OutboxEvent
from core.metrics import metrics
from core.tracing import tracing

logger = logging.getLogger("feature_store.outbox")


@dataclass(frozen=True, slots=True)
class OutboxStats:
    pending: int
    oldest_age_seconds: float


@dataclass(slots=True)
class RelayStats:
    """Plain counters since start-up, for metrics and `/ready`: events delivered and failed,
    batches published and the time the sink took for them."""

    delivered: int = 0
    failed: int = 0
    batches: int = 0
    publish_seconds_total: float = 0.0
    last_publish_seconds: float = 0.0

    def record(self, delivery: Delivery, seconds: float) -> None:
        self.delivered += len(delivery.delivered)
        self.failed += len(delivery.failed)
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

    async def retry_events(self, event_ids: Sequence[str], delay_seconds: float) -> None:
        """Release failed events, due again after `delay_seconds`."""

    async def outbox_stats(self) -> OutboxStats:
        """Count the pending events (may read the whole outbox: the relay calls it, never a request)."""


LINGER_SECONDS = 0.005


def backoff_seconds(attempts: int, ceiling: float) -> float:
    return min(ceiling, 0.5 * 2**attempts)


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
    ) -> None:
        self.store = store
        self.sink = sink
        self.batch_size = batch_size
        self.poll_seconds = poll_seconds
        self.lease_seconds = lease_seconds
        self.max_backoff_seconds = max_backoff_seconds
        self.gauge_seconds = gauge_seconds
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
        with tracing.relay_span(self.sink.name, events, claimed_at):
            await self._relay(events)
        return len(events)

    async def _relay(self, events: list[OutboxEvent]) -> None:
        started = time.perf_counter()
        try:
            delivery = await self.sink.publish(events)
        except Exception:
            # Release the batch for a retry now rather than when its lease runs out.
            logger.exception("event sink failed")
            delivery = Delivery(failed=[event.event_id for event in events])
        self.stats.record(delivery, time.perf_counter() - started)
        tracing.record_delivery(len(delivery.delivered), len(delivery.failed))
        if delivery.delivered:
            metrics.incr(self._publish_metric, len(delivery.delivered), outcome="delivered")
            await self.store.delete_events(delivery.delivered)
        if delivery.failed:
            metrics.incr(self._publish_metric, len(delivery.failed), outcome="failed")
            attempts = {event.event_id: event.attempts for event in events}
            delay = backoff_seconds(max(attempts[event_id] for event_id in delivery.failed), self.max_backoff_seconds)
            await self.store.retry_events(delivery.failed, delay)
            logger.warning("event delivery failed", extra={"failed": len(delivery.failed), "retry_in_s": delay})

    async def report_backlog(self) -> None:
        """Measure the outbox backlog, keep it for `/ready` and send it as gauges. Only the relay's
        measuring task calls it, every `gauge_seconds`: counting the outbox may mean reading all of it
        (a Scan on DynamoDB), which a readiness probe must never wait for."""
        try:
            stats = await self.store.outbox_stats()
        except Exception:
            logger.debug("outbox backlog unknown", exc_info=True)
            return
        self.backlog = stats
        metrics.gauge("outbox.backlog", stats.pending)
        metrics.gauge("outbox.oldest_pending_age_seconds", round(stats.oldest_age_seconds, 3))

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
            if claimed < self.batch_size:
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
                while await self.relay_once() == self.batch_size and not self._stopping:
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

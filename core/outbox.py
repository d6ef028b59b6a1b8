"""The outbox relay: moves events committed with their writes to the event sink, at least once.

Writes never wait for it. After each commit the flow wakes it; it also polls, so events left by a
Kafka outage, a crash or another replica's expired lease are picked up. An event leaves the outbox
only after the sink confirms delivery.
"""

import logging
import threading
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from typing import Any, Protocol

from core.events import Delivery, EventSink, OutboxEvent
from core.metrics import metrics

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
    def claim_events(self, limit: int, lease_seconds: float) -> list[OutboxEvent]: ...

    def delete_events(self, event_ids: Sequence[str]) -> None: ...

    def retry_events(self, event_ids: Sequence[str], delay_seconds: float) -> None: ...

    def outbox_stats(self) -> OutboxStats: ...


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
        self._next_gauges_at = 0.0
        self.backlog: OutboxStats | None = None
        """The backlog as last measured by `report_backlog`."""
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self.stats = RelayStats()

    def start(self) -> None:
        """Run the relay in the background, beginning with what a previous run left behind."""
        if self._thread is None:
            self._wake.set()
            self._thread = threading.Thread(target=self._run, name="outbox-relay", daemon=True)
            self._thread.start()

    def notify(self) -> None:
        """A write committed events: publish them now rather than at the next poll."""
        self._wake.set()

    def relay_once(self) -> int:
        """Publish one batch of due events; return how many were claimed."""
        events = self.store.claim_events(self.batch_size, self.lease_seconds)
        if not events:
            return 0
        started = time.perf_counter()
        try:
            delivery = self.sink.publish(events)
        except Exception:
            # Release the batch for a retry now rather than when its lease runs out.
            logger.exception("event sink failed")
            delivery = Delivery(failed=[event.event_id for event in events])
        self.stats.record(delivery, time.perf_counter() - started)
        if delivery.delivered:
            metrics.incr(self._publish_metric, len(delivery.delivered), outcome="delivered")
            self.store.delete_events(delivery.delivered)
        if delivery.failed:
            metrics.incr(self._publish_metric, len(delivery.failed), outcome="failed")
            attempts = {event.event_id: event.attempts for event in events}
            delay = backoff_seconds(max(attempts[event_id] for event_id in delivery.failed), self.max_backoff_seconds)
            self.store.retry_events(delivery.failed, delay)
            logger.warning("event delivery failed", extra={"failed": len(delivery.failed), "retry_in_s": delay})
        return len(events)

    def report_backlog(self) -> None:
        """Measure the outbox backlog at most every `gauge_seconds`, keep it for `/ready` and send it
        as gauges. Only the relay measures it: counting the outbox may mean reading all of it (a Scan
        on DynamoDB), which a readiness probe must never wait for."""
        now = time.monotonic()
        if now < self._next_gauges_at:
            return
        self._next_gauges_at = now + self.gauge_seconds
        try:
            stats = self.store.outbox_stats()
        except Exception:
            logger.debug("outbox backlog unknown", exc_info=True)
            return
        self.backlog = stats
        metrics.gauge("outbox.backlog", stats.pending)
        metrics.gauge("outbox.oldest_pending_age_seconds", round(stats.oldest_age_seconds, 3))

    def drain(self, deadline: float) -> int:
        """Publish what is due until nothing is left or the deadline (a `time.monotonic()` value) passes;
        return how many events were handed to the sink."""
        relayed = 0
        while time.monotonic() < deadline:
            try:
                claimed = self.relay_once()
            except Exception:
                logger.exception("outbox relay failed while draining")
                return relayed
            relayed += claimed
            if claimed < self.batch_size:
                return relayed
        logger.warning("outbox flush time is up; events still pending stay in the outbox for the next relay")
        return relayed

    def _run(self) -> None:
        failures = 0
        while not self._stopping.is_set():
            woken = self._wake.wait(
                self.poll_seconds if failures == 0 else backoff_seconds(failures, self.max_backoff_seconds)
            )
            if woken and failures == 0:
                # Let the writes of the next few milliseconds join this batch: one claim and one
                # deletion for many events instead of for each.
                self._stopping.wait(LINGER_SECONDS)
            self._wake.clear()
            if self._stopping.is_set():
                return
            self.report_backlog()
            try:
                while self.relay_once() == self.batch_size and not self._stopping.is_set():
                    pass
                failures = 0
            except Exception:
                failures += 1
                logger.exception("outbox relay failed; will retry")

    def stop(self, timeout: float) -> None:
        """Stop the background loop, then publish what is still due within `timeout` seconds."""
        deadline = time.monotonic() + timeout
        self._stopping.set()
        self._wake.set()
        if self._thread is not None:
            self._thread.join(max(0.0, deadline - time.monotonic()))
            self._thread = None
        flushed = self.drain(deadline)
        self.sink.close(max(0.0, deadline - time.monotonic()))
        logger.info("outbox relay stopped", extra={"flushed_at_stop": flushed})

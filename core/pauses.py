"""Where a request's time goes while none of its code runs: the event loop running late, and the garbage
collector's pauses. Both are what tail latency is made of when the service is not otherwise busy, so both
are metrics (`event_loop.lag_seconds`, `gc.pause_seconds`)."""

import asyncio
import gc
import weakref
from collections import deque
from time import perf_counter
from typing import Any

from core.metrics import metrics


class GcPauses:
    """Times each collection through `gc.callbacks`. The callback only appends to a deque (it may run in the
    middle of any allocation, a metrics exporter's under its own lock included, so it must take no lock);
    `drain` hands the pauses to the metrics from the event loop."""

    def __init__(self) -> None:
        self.pending: deque[tuple[int, float]] = deque(maxlen=10_000)
        self._started = 0.0

    def _callback(self, phase: str, info: dict[str, Any]) -> None:
        if phase == "start":
            self._started = perf_counter()
        else:
            self.pending.append((info["generation"], perf_counter() - self._started))

    def install(self) -> None:
        if self._callback not in gc.callbacks:
            gc.callbacks.append(self._callback)

    def drain(self) -> None:
        while self.pending:
            generation, seconds = self.pending.popleft()
            metrics.observe("gc.pause_seconds", seconds, generation=generation)


GC_PAUSES = GcPauses()


class EventLoopLag:
    """How late the event loop runs a timer due every `interval` seconds: how long a request arriving now
    waits before any of its code runs. One per event loop (a worker process has one). With metrics on, each
    of its `report_every` ticks reports the largest lag seen since the last report, and the pauses of
    the collections that ran meanwhile."""

    interval = 0.01
    report_every = 10
    _of_loop: "weakref.WeakKeyDictionary[asyncio.AbstractEventLoop, EventLoopLag]" = weakref.WeakKeyDictionary()

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.last_seconds = 0.0
        self._worst = 0.0
        self._ticks = 0
        GC_PAUSES.install()
        self._schedule()

    @classmethod
    def of(cls, loop: asyncio.AbstractEventLoop) -> "EventLoopLag":
        if loop not in cls._of_loop:
            cls._of_loop[loop] = cls(loop)
        return cls._of_loop[loop]

    def _schedule(self) -> None:
        self.due = self.loop.time() + self.interval
        self.loop.call_at(self.due, self._tick)

    def _tick(self) -> None:
        self.last_seconds = lag = self.loop.time() - self.due
        self._schedule()
        if not metrics.enabled:
            return
        self._worst = max(self._worst, lag)
        self._ticks += 1
        if self._ticks >= self.report_every:
            metrics.observe("event_loop.lag_seconds", self._worst)
            self._worst, self._ticks = 0.0, 0
            GC_PAUSES.drain()

    @property
    def seconds(self) -> float:
        """The lag the last timer found, or the current one's if it is already later than that."""
        return max(self.last_seconds, self.loop.time() - self.due)

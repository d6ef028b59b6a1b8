"""Per-key token buckets: each key may send `rate` requests a second on average, `burst` at once."""

import threading
import time
from collections.abc import Callable, Iterable


class RateLimiter:
    """One bucket per known key name, created up front so unknown callers cannot grow the table.

    Buckets live in this process: with N workers a key gets N times the rate in total.
    """

    def __init__(
        self, names: Iterable[str], rate: float, burst: int, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.rate = rate
        self.burst = float(burst)
        self.clock = clock
        now = clock()
        self._buckets = {name: [self.burst, now] for name in names}
        self._lock = threading.Lock()

    def acquire(self, name: str) -> float:
        """Take one token for `name`: 0 when granted, else the seconds until one is available."""
        with self._lock:
            bucket = self._buckets[name]
            now = self.clock()
            tokens = min(self.burst, bucket[0] + (now - bucket[1]) * self.rate)
            bucket[1] = now
            if tokens >= 1:
                bucket[0] = tokens - 1
                return 0.0
            bucket[0] = tokens
            return (1 - tokens) / self.rate

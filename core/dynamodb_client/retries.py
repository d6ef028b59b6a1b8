"""botocore's retry modes for DynamoDB, on asyncio: which failures are retried, how long to wait, when to stop.

- standard: throttling codes, transient codes, HTTP 500/502/503/504 and 429, no answer (connection
  errors, timeouts) and a body whose CRC32 does not match `x-amz-crc32` are retried. The wait is full
  jitter, `random() * min(base * 2 ** (attempt - 1), 20 s)`, with a 1 s base after throttling and
  25 ms otherwise, raised to DynamoDB's `x-amz-retry-after` (at most 5 s beyond). A retry quota shared
  by the client (500; 5 per throttling retry, 14 per other retry, refilled by successes) stops
  retries when DynamoDB keeps failing, so a client never multiplies an outage's load.
- adaptive: standard, plus client-side rate limiting after the first throttling answer: botocore's
  own CUBIC rate calculator, rate clock and token bucket, waited on with `asyncio.sleep` so the
  event loop never blocks.
- legacy: the same failures retried after botocore's legacy DynamoDB delays (50 ms doubling, no
  jitter), without a quota.

Every mode stops after `max_attempts` attempts, the first included.
"""

import asyncio
import logging
import random
import threading
from collections.abc import Callable

from botocore.exceptions import CapacityNotAvailableError
from botocore.retries.adaptive import RateClocker
from botocore.retries.bucket import Clock, TokenBucket
from botocore.retries.throttling import CubicCalculator

from core.dynamodb_client.errors import DynamoDBError, DynamoDBServiceError, DynamoDBUnreachable

logger = logging.getLogger("feature_store.dynamodb_client")

THROTTLING, TRANSIENT = "throttling", "transient"


def failure_kind(error: DynamoDBError) -> str | None:
    """THROTTLING, TRANSIENT, or None for a failure that a retry would not change."""
    if isinstance(error, DynamoDBServiceError):
        if error.throttling:
            return THROTTLING
        return TRANSIENT if error.transient else None
    if isinstance(error, DynamoDBUnreachable):
        return TRANSIENT
    return None


def retry_after_seconds(error: DynamoDBError) -> float | None:
    """DynamoDB's `x-amz-retry-after` hint (milliseconds), when the answer carried a sane one."""
    value = getattr(error, "retry_after_ms", None)
    if value is None:
        return None
    try:
        seconds = int(value) / 1000
    except (TypeError, ValueError, OverflowError):
        return None
    return seconds if seconds >= 0 else None


class RetryQuota:
    """botocore's standard retry quota: retries spend capacity, successes give it back."""

    INITIAL = 500
    RETRY_COST = 14
    THROTTLING_RETRY_COST = 5
    SUCCESS_REFILL = 1

    def __init__(self) -> None:
        self.available = self.INITIAL
        self._lock = threading.Lock()

    def acquire(self, kind: str) -> int | None:
        cost = self.THROTTLING_RETRY_COST if kind == THROTTLING else self.RETRY_COST
        with self._lock:
            if cost > self.available:
                return None
            self.available -= cost
            return cost

    def release(self, amount: int) -> None:
        with self._lock:
            self.available = min(self.INITIAL, self.available + amount)


class RateLimiter:
    """The adaptive mode's client-side limiter: off until DynamoDB first throttles, then CUBIC-paced."""

    MAX_RATE_ADJUST_SCALE = 2.0

    def __init__(self) -> None:
        clock = Clock()
        self._clock = clock
        self._rate_adjustor = CubicCalculator(starting_max_rate=0, start_time=clock.current_time())
        self._bucket = TokenBucket(max_rate=1, clock=clock)
        self._rate_clocker = RateClocker(clock)
        self._enabled = False
        self._lock = threading.Lock()

    async def acquire(self) -> None:
        while self._enabled:
            try:
                self._bucket.acquire(block=False)
                return
            except CapacityNotAvailableError:
                await asyncio.sleep(1 / self._bucket.max_rate)

    def record(self, throttled: bool) -> None:
        measured_rate = self._rate_clocker.record()
        now = self._clock.current_time()
        with self._lock:
            if not throttled:
                new_rate = self._rate_adjustor.success_received(now)
            else:
                rate = min(measured_rate, self._bucket.max_rate) if self._enabled else measured_rate
                new_rate = self._rate_adjustor.error_received(rate, now)
                self._enabled = True
            self._bucket.max_rate = min(new_rate, self.MAX_RATE_ADJUST_SCALE * measured_rate)


class RetryPolicy:
    """One per client: the mode's rules and shared state (quota, rate limiter); calls keep their own count."""

    MAX_BACKOFF = 20.0
    THROTTLING_BASE = 1.0
    TRANSIENT_BASE = 0.025
    RETRY_AFTER_MAX_ADDITIONAL = 5.0
    LEGACY_BASE = 0.05

    def __init__(self, mode: str, max_attempts: int, rand: Callable[[], float] = random.random) -> None:
        if mode not in ("legacy", "standard", "adaptive"):
            raise ValueError(f"unknown retry mode {mode!r}")
        self.mode = mode
        self.max_attempts = max_attempts
        self.quota = RetryQuota() if mode != "legacy" else None
        self.limiter = RateLimiter() if mode == "adaptive" else None
        self._random = rand

    def backoff(self, attempt: int, kind: str, retry_after: float | None = None) -> float:
        """Seconds to wait after failed attempt `attempt` (1-based)."""
        if self.mode == "legacy":
            return self.LEGACY_BASE * 2 ** (attempt - 1)
        base = self.THROTTLING_BASE if kind == THROTTLING else self.TRANSIENT_BASE
        delay = self._random() * min(base * 2 ** (attempt - 1), self.MAX_BACKOFF)
        if retry_after is not None:
            delay = max(delay, min(retry_after, delay + self.RETRY_AFTER_MAX_ADDITIONAL))
        return delay

    def retry(self, operation: str, attempt: int, error: DynamoDBError) -> tuple[float, int] | None:
        """After failed attempt `attempt`: (seconds to wait, quota spent), or None to give up."""
        kind = failure_kind(error)
        if kind is None or attempt >= self.max_attempts:
            return None
        spent = 0
        if self.quota is not None:
            cost = self.quota.acquire(kind)
            if cost is None:
                logger.debug("DynamoDB %s not retried: retry quota spent (%s)", operation, error)
                return None
            spent = cost
        delay = self.backoff(attempt, kind, retry_after_seconds(error))
        logger.debug("DynamoDB %s attempt %d failed (%s); retrying in %.3f s", operation, attempt, error, delay)
        return delay, spent

    def succeeded(self, spent: int) -> None:
        """A call succeeded; `spent` is the quota its last retry took (0 when it was not retried)."""
        if self.quota is not None:
            self.quota.release(spent or RetryQuota.SUCCESS_REFILL)

    async def before_send(self) -> None:
        if self.limiter is not None:
            await self.limiter.acquire()

    def answered(self, throttled: bool) -> None:
        if self.limiter is not None:
            self.limiter.record(throttled)

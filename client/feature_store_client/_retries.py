"""The retry rules: whether a call is sent again, and after how long. Both clients ask `Attempts` after
each answer or failure, so they retry alike."""

import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import httpx

from feature_store_client._calls import Call
from feature_store_client.errors import FeatureStoreError, RetryableError, Timeout, TransportError, error_from_response


@dataclass(frozen=True)
class RetryPolicy:
    """When to send a call again.

    429 and 503 are retried for every call, after the `Retry-After` the service sent (else after a
    backoff); connection errors and timeouts too: a write is sent with an `Idempotency-Key`, the same on
    each retry, so one applied without its answer arriving answers its first result. A call stops after `attempts` sends, or sooner when the next wait
    would take the total waited past `budget_seconds`.

    Every wait is stretched by a random share of up to `jitter` of itself (never shortened), so that
    clients told "retry in 1 s" at the same instant do not all come back at the same instant."""

    attempts: int = 4
    budget_seconds: float = 30.0
    backoff_seconds: float = 0.25
    """First wait when the service named none (and between retried reads after a connection error); doubles."""
    max_backoff_seconds: float = 4.0
    jitter: float = 0.5
    rand: Callable[[], float] = field(default=random.random, repr=False, compare=False)
    """A number in [0, 1); replaced in tests."""

    def backoff(self, attempt: int) -> float:
        return min(self.backoff_seconds * 2 ** (attempt - 1), self.max_backoff_seconds)

    def spread(self, wait: float) -> float:
        return wait * (1 + self.jitter * self.rand())


class Attempts:
    """The retry state of one call: after each answer or failure, the seconds to wait before sending
    again, or the exception to raise."""

    def __init__(self, policy: RetryPolicy, call: Call[Any], request_id: str) -> None:
        self.policy = policy
        self.call = call
        self.request_id = request_id
        self.sent = 0
        self.waited = 0.0

    def answered(self, response: httpx.Response) -> float | None:
        """None when the answer is the call's result; else the wait before the next send (or raises)."""
        self.sent += 1
        if response.status_code in self.call.accept:
            return None
        error = error_from_response(response, self.request_id)
        if not isinstance(error, RetryableError):
            raise error
        wait = error.retry_after if error.retry_after is not None else self.policy.backoff(self.sent)
        return self._wait_or_raise(wait, error)

    def failed(self, exc: httpx.TransportError) -> float:
        """The wait before sending again after no answer; raises when the call may not be retried."""
        self.sent += 1
        kind = Timeout if isinstance(exc, httpx.TimeoutException) else TransportError
        error = kind(f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__, request_id=self.request_id)
        return self._wait_or_raise(self.policy.backoff(self.sent), error, exc)

    def _wait_or_raise(self, wait: float, error: FeatureStoreError, cause: BaseException | None = None) -> float:
        """The jitter never makes a wait that fits the budget raise: it is cut at what the budget has left."""
        left = self.policy.budget_seconds - self.waited
        if self.sent >= self.policy.attempts or wait > left:
            raise error from cause
        wait = min(self.policy.spread(wait), left)
        self.waited += wait
        return wait

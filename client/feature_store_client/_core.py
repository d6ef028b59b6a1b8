"""What the sync and async clients share: each operation as a `Call` (request and parser), the retry
rules, batch splitting and request ids. Neither client does any HTTP work here; each sends the calls
its own way and asks `Attempts` whether, and after how long, to send again."""

import json
import re
import uuid
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Generic, TypeVar
from urllib.parse import quote

import httpx

from feature_store_client._version import __version__
from feature_store_client.errors import (
    FeatureStoreError,
    RetryableError,
    Timeout,
    TransportError,
    error_from_response,
)
from feature_store_client.models import (
    BatchResult,
    CategoryResult,
    FeaturesResult,
    Limits,
    Readiness,
    Registry,
    RegistryCategory,
    WriteResult,
)

T = TypeVar("T")
API = "/api/v1"
DEFAULT_ENTITY_TYPE = "bright_uid"
DEFAULT_TIMEOUT = 10.0
DEFAULT_CONCURRENCY = 8
SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")
BATCH_BODY_OVERHEAD = 4096
"""Bytes of a batch body that are not entity values (meta, feature list, syntax): kept free when splitting."""


@dataclass(frozen=True)
class RetryPolicy:
    """When to send a call again.

    429 and 503 are retried for every call, after the `Retry-After` the service sent (else after a
    backoff); connection errors and timeouts only for reads, since a write may have been applied
    without its answer arriving. A call stops after `attempts` sends, or sooner when the next wait
    would take the total waited past `budget_seconds`."""

    attempts: int = 4
    budget_seconds: float = 30.0
    backoff_seconds: float = 0.25
    """First wait when the service named none (and between retried reads after a connection error); doubles."""
    max_backoff_seconds: float = 4.0

    def backoff(self, attempt: int) -> float:
        return min(self.backoff_seconds * 2 ** (attempt - 1), self.max_backoff_seconds)


NO_RETRY = RetryPolicy(attempts=1)


@dataclass(frozen=True)
class Call(Generic[T]):
    """One operation: the request to send and how to read its answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    json: Any = None
    params: Mapping[str, Any] | None = None
    read: bool = True
    """A read may be sent again after a connection error or timeout; a write may not."""
    accept: frozenset[int] = field(default_factory=lambda: frozenset({200}))


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
        if not self.call.read:
            raise error from exc
        return self._wait_or_raise(self.policy.backoff(self.sent), error, exc)

    def _wait_or_raise(self, wait: float, error: FeatureStoreError, cause: BaseException | None = None) -> float:
        if self.sent >= self.policy.attempts or self.waited + wait > self.policy.budget_seconds:
            raise error from cause
        self.waited += wait
        return wait


def new_request_id() -> str:
    return uuid.uuid4().hex


def request_headers(api_key: str | None, request_id: str) -> dict[str, str]:
    if not SAFE_REQUEST_ID.match(request_id):
        raise ValueError("request_id must be 1-128 characters of A-Z a-z 0-9 . _ : / + = -")
    headers = {"X-Request-ID": request_id, "User-Agent": f"feature-store-client/{__version__}"}
    if api_key:
        headers["X-API-Key"] = api_key
    return headers


def _model(cls: Callable[..., T]) -> Callable[[httpx.Response], T]:
    return lambda response: cls(**response.json())


def _compact(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def _time(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def read_category_call(
    entity_value: str, category: str, entity_type: str, max_age_seconds: float | None
) -> Call[CategoryResult]:
    def parse(response: httpx.Response) -> CategoryResult:
        body = response.json()
        value = body.pop(entity_type, entity_value)
        return CategoryResult(entity_type=entity_type, entity_value=value, **body)

    path = f"{API}/get/item/{quote(entity_value, safe='')}/{quote(category, safe='')}"
    params = _compact({"entity_type": entity_type, "max_age_seconds": max_age_seconds})
    return Call("GET", path, parse, params=params)


def _read_meta(source: str | None, max_age_seconds: float | None) -> dict[str, Any]:
    return _compact({"source": source, "max_age_seconds": max_age_seconds})


def read_features_call(
    entity_value: str, features: Sequence[str], entity_type: str, source: str | None, max_age_seconds: float | None
) -> Call[FeaturesResult]:
    body = {
        "meta": _read_meta(source, max_age_seconds),
        "data": {"entity_type": entity_type, "entity_value": entity_value, "feature_list": list(features)},
    }
    return Call("POST", f"{API}/get/items", _model(FeaturesResult), json=body)


def read_batch_call(
    entity_values: Sequence[str],
    features: Sequence[str],
    entity_type: str,
    source: str | None,
    max_age_seconds: float | None,
) -> Call[BatchResult]:
    body = {
        "meta": _read_meta(source, max_age_seconds),
        "data": {"entity_type": entity_type, "entity_values": list(entity_values), "feature_list": list(features)},
    }
    return Call("POST", f"{API}/get/items/batch", _model(BatchResult), json=body)


def split_batch(entity_values: Sequence[str], limits: Limits) -> list[list[str]]:
    """Parts of at most `max_batch_entities` values whose bodies stay under `max_body_bytes`, in order."""
    budget = max(limits.max_body_bytes - BATCH_BODY_OVERHEAD, 1)
    parts: list[list[str]] = []
    current: list[str] = []
    size = 0
    for value in entity_values:
        value_size = len(json.dumps(value)) + 2
        if current and (len(current) >= limits.max_batch_entities or size + value_size > budget):
            parts.append(current)
            current, size = [], 0
        current.append(value)
        size += value_size
    if current:
        parts.append(current)
    return parts


def merge_batches(entity_type: str, answers: Iterable[BatchResult]) -> BatchResult:
    return BatchResult(entity_type=entity_type, results=[result for answer in answers for result in answer.results])


def write_call(
    entity_value: str,
    categories: Mapping[str, Mapping[str, Any]],
    entity_type: str,
    source: str | None,
    compute_id: str | None,
    ttl: int | None,
    event_time: datetime | str | None,
) -> Call[WriteResult]:
    if not categories:
        raise ValueError("categories must name at least one category")
    meta = _compact({"source": source, "compute_id": compute_id, "ttl": ttl, "event_time": _time(event_time)})
    feature_list = [{"category": category, "features": dict(values)} for category, values in categories.items()]
    body = {
        "meta": meta,
        "data": {"entity_type": entity_type, "entity_value": entity_value, "feature_list": feature_list},
    }
    return Call("POST", f"{API}/items", _model(WriteResult), json=body, read=False)


def registry_call() -> Call[Registry]:
    def parse(response: httpx.Response) -> Registry:
        return Registry(**response.json(), etag=response.headers.get("ETag"))

    return Call("GET", f"{API}/registry", parse)


def registry_category_call(category: str) -> Call[RegistryCategory]:
    return Call("GET", f"{API}/registry/{quote(category, safe='')}", _model(RegistryCategory))


def limits_call() -> Call[Limits]:
    return Call("GET", f"{API}/limits", _model(Limits))


def ready_call() -> Call[Readiness]:
    """503 with a readiness body is an answer (not ready), not an error to retry; a 503 without one
    (a proxy's) is the error it says."""

    def parse(response: httpx.Response) -> Readiness:
        try:
            return Readiness(**response.json())
        except (ValueError, TypeError) as exc:
            raise error_from_response(response, response.headers.get("X-Request-ID")) from exc

    return Call("GET", f"{API}/ready", parse, accept=frozenset({200, 503}))

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
    ValidationError,
    error_from_response,
)
from feature_store_client.models import (
    BatchResult,
    BatchWriteResult,
    CategoryResult,
    DeleteResult,
    EntityWrite,
    EntityWriteError,
    EntityWriteResult,
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
DEFAULT_BATCH_WRITE_ENTITIES = 500
"""The service's default most entities per bulk write, for a service whose limits do not say."""
META_FIELDS = frozenset({"source", "compute_id", "ttl", "event_time"})
ENTITY_FIELDS = frozenset({"entity_value", "categories", "feature_list", "meta", "metadata"})


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


def write_meta(
    source: str | None, compute_id: str | None, ttl: int | None, event_time: datetime | str | None
) -> dict[str, Any]:
    return _compact({"source": source, "compute_id": compute_id, "ttl": ttl, "event_time": _time(event_time)})


def _feature_list(categories: Any) -> list[dict[str, Any]]:
    if not isinstance(categories, Mapping) or not categories:
        raise ValueError("categories must be a non-empty object {category: {feature: value}}")
    if not all(isinstance(values, Mapping) and values for values in categories.values()):
        raise ValueError("each category must map to a non-empty object {feature: value}")
    return [{"category": str(category), "features": dict(values)} for category, values in categories.items()]


def entity_body(entity: EntityWrite | Mapping[str, Any]) -> dict[str, Any]:
    """One entity of a bulk write as the service reads it. A mapping is either the service's own form
    (`entity_value`, `feature_list`, optional `meta`) or `entity_value` with `categories`
    (`{category: {feature: value}}`). ValueError names what is wrong, before anything is sent: an entity
    the service could not even read would make it refuse the whole request."""
    if isinstance(entity, EntityWrite):
        body: dict[str, Any] = {"entity_value": entity.entity_value, "feature_list": _feature_list(entity.categories)}
        meta = write_meta(entity.source, entity.compute_id, entity.ttl, entity.event_time)
        if meta:
            body["meta"] = meta
        return _checked_entity(body)
    if not isinstance(entity, Mapping):
        raise ValueError("an entity must be an object with entity_value and categories or feature_list")
    unknown = sorted(set(entity) - ENTITY_FIELDS)
    if unknown:
        raise ValueError(f"unknown entity fields {unknown}; expected entity_value, categories or feature_list, meta")
    if ("categories" in entity) == ("feature_list" in entity):
        raise ValueError("give categories ({category: {feature: value}}) or feature_list, not both or neither")
    if "meta" in entity and "metadata" in entity:
        raise ValueError("give meta or metadata, not both")
    body = {"entity_value": entity.get("entity_value")}
    if "categories" in entity:
        body["feature_list"] = _feature_list(entity["categories"])
    else:
        body["feature_list"] = entity["feature_list"]
    meta = entity.get("meta", entity.get("metadata"))
    if meta is not None:
        if not isinstance(meta, Mapping):
            raise ValueError("meta must be an object")
        body["meta"] = {name: _time(value) if name == "event_time" else value for name, value in meta.items()}
    return _checked_entity(body)


def _checked_entity(body: dict[str, Any]) -> dict[str, Any]:
    value = body["entity_value"]
    if not isinstance(value, str) or not value:
        raise ValueError("entity_value must be a non-empty string")
    feature_list = body["feature_list"]
    if not isinstance(feature_list, list) or not feature_list:
        raise ValueError("feature_list must be a non-empty list")
    for item in feature_list:
        if not (
            isinstance(item, Mapping)
            and set(item) == {"category", "features"}
            and isinstance(item["category"], str)
            and isinstance(item["features"], Mapping)
            and item["features"]
        ):
            raise ValueError('each feature_list entry must be {"category": "...", "features": {...}}')
    unknown = sorted(set(body.get("meta", {})) - META_FIELDS)
    if unknown:
        raise ValueError(f"unknown meta fields {unknown}; expected {sorted(META_FIELDS)}")
    return body


def split_entities(bodies: Sequence[Mapping[str, Any]], limits: Limits) -> list[list[int]]:
    """Indices of `bodies` in parts of at most the service's bulk-write maximum of entities, whose bodies
    stay under its bulk-write body limit, in order. An entity too large on its own goes alone (and the
    service answers it 413)."""
    most = limits.max_batch_write_entities or DEFAULT_BATCH_WRITE_ENTITIES
    budget = max((limits.max_batch_write_body_bytes or limits.max_body_bytes) - BATCH_BODY_OVERHEAD, 1)
    parts: list[list[int]] = []
    current: list[int] = []
    size = 0
    for index, body in enumerate(bodies):
        body_size = len(json.dumps(body, default=str)) + 2
        if current and (len(current) >= most or size + body_size > budget):
            parts.append(current)
            current, size = [], 0
        current.append(index)
        size += body_size
    if current:
        parts.append(current)
    return parts


def write_batch_call(
    bodies: Sequence[Mapping[str, Any]], entity_type: str, meta: Mapping[str, Any]
) -> Call[BatchWriteResult]:
    body = {"meta": dict(meta), "data": {"entity_type": entity_type, "entities": list(bodies)}}
    return Call("POST", f"{API}/items/batch", _model(BatchWriteResult), json=body, read=False)


def error_code(exc: FeatureStoreError) -> str:
    if exc.error:
        return exc.error
    if isinstance(exc, Timeout):
        return "timeout"
    if isinstance(exc, TransportError):
        return "transport_error"
    return f"http_{exc.status_code}"


def failed_entity(body: Mapping[str, Any], error: str, detail: Any) -> EntityWriteResult:
    return EntityWriteResult(entity_value=body["entity_value"], error=EntityWriteError(error=error, detail=detail))


def refused_entities(exc: ValidationError, count: int) -> dict[int, list[dict[str, Any]]] | None:
    """The field errors of a refused bulk write by entity (index in that request), when every one of them
    names an entity (`body.data.entities.<i>...`); None when any is about the request as a whole."""
    refused: dict[int, list[dict[str, Any]]] = {}
    for error in exc.errors:
        loc = error.get("loc") or []
        index = loc[3] if len(loc) > 3 and list(loc[:3]) == ["body", "data", "entities"] else None
        if not isinstance(index, int) or not 0 <= index < count:
            return None
        refused.setdefault(index, []).append(error)
    return refused or None


class PartWrite:
    """One part of a bulk write, as a short exchange: `next_call()` is the request to send (None when
    done), and `answered()` or `refused()` takes what came back. When the service refuses the request
    for some of its entities only (it reads the whole body first, so an entity it cannot read fails the
    request), those entities are marked failed and the rest sent again; any other refusal, or no answer,
    fails every entity not yet written with that error. `results()` is then one result per entity."""

    def __init__(self, bodies: Sequence[Mapping[str, Any]], entity_type: str, meta: Mapping[str, Any]) -> None:
        self.bodies = bodies
        self.entity_type = entity_type
        self.meta = meta
        self.pending = list(range(len(bodies)))
        self.done: dict[int, EntityWriteResult] = {}

    def next_call(self) -> Call[BatchWriteResult] | None:
        if not self.pending:
            return None
        return write_batch_call([self.bodies[index] for index in self.pending], self.entity_type, self.meta)

    def answered(self, answer: BatchWriteResult) -> None:
        for index, result in zip(self.pending, answer.results, strict=True):
            self.done[index] = result
        self.pending = []

    def refused(self, exc: FeatureStoreError) -> None:
        refused = refused_entities(exc, len(self.pending)) if isinstance(exc, ValidationError) else None
        if refused is None:
            for index in self.pending:
                self.done[index] = failed_entity(self.bodies[index], error_code(exc), exc.detail or str(exc))
            self.pending = []
            return
        for position, errors in refused.items():
            index = self.pending[position]
            self.done[index] = failed_entity(self.bodies[index], "validation_error", errors)
        self.pending = [index for position, index in enumerate(self.pending) if position not in refused]

    def results(self) -> list[EntityWriteResult]:
        return [self.done[index] for index in range(len(self.bodies))]


def batch_write_result(entity_type: str, results: Sequence[EntityWriteResult]) -> BatchWriteResult:
    failed = sum(result.error is not None for result in results)
    return BatchWriteResult(
        entity_type=entity_type, results=list(results), written=len(results) - failed, failed=failed
    )


def delete_call(
    entity_value: str, categories: Sequence[str] | None, entity_type: str, event_time: datetime | str | None
) -> Call[DeleteResult]:
    """Not sent again after a connection error or timeout, like a write: without `event_time` a repeat
    would be a later deletion, which could remove data written in between."""
    if isinstance(categories, str):
        raise ValueError("categories must be a list of category names (or None for every category)")
    params: dict[str, Any] = {"entity_type": entity_type}
    if categories:
        params["category"] = list(categories)
    if event_time is not None:
        params["event_time"] = _time(event_time)
    path = f"{API}/items/{quote(entity_value, safe='')}"
    return Call("DELETE", path, _model(DeleteResult), params=params, read=False)

"""Each operation as a `Call`: the request to send (path, query, body) and the parser of its answer;
the headers every request carries; a batch read split at the service's limits and merged again."""

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
from feature_store_client.errors import error_from_response
from feature_store_client.models import (
    BatchResult,
    CategoryResult,
    DeleteResult,
    FeaturesResult,
    Limits,
    Readiness,
    Registry,
    RegistryCategory,
    RollbackResult,
    WriteResult,
)

T = TypeVar("T")
API = "/api/v1"
SAFE_REQUEST_ID = re.compile(r"^[A-Za-z0-9._:/+=-]{1,128}$")
BATCH_BODY_OVERHEAD = 4096
"""Bytes of a batch body that are not entity values (meta, feature list, syntax): kept free when splitting."""


@dataclass(frozen=True)
class Call(Generic[T]):
    """One operation: the request to send and how to read its answer."""

    method: str
    path: str
    parse: Callable[[httpx.Response], T]
    json: Any = None
    content: bytes | None = None
    """A JSON body already encoded (sent instead of `json`)."""
    params: Mapping[str, Any] | None = None
    read: bool = True
    """False for a write: it is sent with an `Idempotency-Key` (`write_headers`), the same on every retry, so
    like a read it may be sent again after a connection error or timeout without being applied twice."""
    accept: frozenset[int] = field(default_factory=lambda: frozenset({200}))


def new_request_id() -> str:
    return uuid.uuid4().hex


def write_headers(headers: Mapping[str, str], call: Call[Any]) -> Mapping[str, str]:
    """`headers` and, for a write, an `Idempotency-Key` of its own, which its retries send again."""
    return headers if call.read else {**headers, "Idempotency-Key": str(uuid.uuid4())}


def request_headers(api_key: str | None, request_id: str) -> dict[str, str]:
    if not SAFE_REQUEST_ID.match(request_id):
        raise ValueError("request_id must be 1-128 characters of A-Z a-z 0-9 . _ : / + = -")
    headers = {"X-Request-ID": request_id, "User-Agent": f"feature-store-client/{__version__}"}
    if api_key:
        headers["X-API-Key"] = api_key
    return headers


def model_parser(cls: Callable[..., T]) -> Callable[[httpx.Response], T]:
    return lambda response: cls(**response.json())


def _compact(values: Mapping[str, Any]) -> dict[str, Any]:
    return {name: value for name, value in values.items() if value is not None}


def path_segment(value: str) -> str:
    """`value` as one path segment: every reserved character percent-encoded (`/` too), and a value of dots
    alone (`.`, `..`) as `%2E`s, which HTTP libraries would otherwise resolve as a relative path."""
    segment = quote(value, safe="")
    return segment.replace(".", "%2E") if segment.strip(".") == "" else segment


def time_text(value: datetime | str | None) -> str | None:
    return value.isoformat() if isinstance(value, datetime) else value


def read_category_call(
    entity_value: str, category: str, entity_type: str, max_age_seconds: float | None
) -> Call[CategoryResult]:
    def parse(response: httpx.Response) -> CategoryResult:
        body = response.json()
        value = body.pop(entity_type, entity_value)
        return CategoryResult(entity_type=entity_type, entity_value=value, **body)

    path = f"{API}/get/item/{path_segment(entity_value)}/{path_segment(category)}"
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
    return Call("POST", f"{API}/get/items", model_parser(FeaturesResult), json=body)


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
    return Call("POST", f"{API}/get/items/batch", model_parser(BatchResult), json=body)


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
    meta = _compact({"source": source, "compute_id": compute_id, "ttl": ttl, "event_time": time_text(event_time)})
    feature_list = [{"category": category, "features": dict(values)} for category, values in categories.items()]
    body = {
        "meta": meta,
        "data": {"entity_type": entity_type, "entity_value": entity_value, "feature_list": feature_list},
    }
    return Call("POST", f"{API}/items", model_parser(WriteResult), json=body, read=False)


def registry_call() -> Call[Registry]:
    def parse(response: httpx.Response) -> Registry:
        return Registry(**response.json(), etag=response.headers.get("ETag"))

    return Call("GET", f"{API}/registry", parse)


def registry_category_call(category: str) -> Call[RegistryCategory]:
    return Call("GET", f"{API}/registry/{path_segment(category)}", model_parser(RegistryCategory))


def limits_call() -> Call[Limits]:
    return Call("GET", f"{API}/limits", model_parser(Limits))


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
    return _compact({"source": source, "compute_id": compute_id, "ttl": ttl, "event_time": time_text(event_time)})


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
        params["event_time"] = time_text(event_time)
    path = f"{API}/items/{path_segment(entity_value)}"
    return Call("DELETE", path, model_parser(DeleteResult), params=params, read=False)


def rollback_call(entity_type: str, entity_values: Sequence[str], compute_id: str) -> Call[RollbackResult]:
    """Sent again after a connection error or timeout like a read: a rollback sent twice restores nothing more."""
    body = {"entity_type": entity_type, "entity_values": list(entity_values), "compute_id": compute_id}
    return Call("POST", f"{API}/admin/rollback", model_parser(RollbackResult), json=body)


def rollback_parts(entity_values: Sequence[str], limits: Limits, default: int) -> list[list[str]]:
    """The entities in parts of at most the service's bulk-write maximum, each named once, in order."""
    size = limits.max_batch_write_entities or default
    values = list(dict.fromkeys(entity_values))
    return [values[start : start + size] for start in range(0, len(values), size)]


def merge_rollbacks(entity_type: str, compute_id: str, answers: Iterable[RollbackResult]) -> RollbackResult:
    answered = list(answers)
    return RollbackResult(
        entity_type=entity_type,
        compute_id=compute_id,
        results=[result for answer in answered for result in answer.results],
        restored=sum(answer.restored for answer in answered),
        failed=sum(answer.failed for answer in answered),
    )

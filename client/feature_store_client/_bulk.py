"""Bulk writes: each entity checked and put in the service's form before anything is sent, split into
parts at the service's published maxima, and each part's answer (or refusal) turned into one result
per entity."""

import json
from collections.abc import Mapping, Sequence
from typing import Any

from feature_store_client._calls import API, BATCH_BODY_OVERHEAD, Call, model_parser, time_text, write_meta
from feature_store_client.errors import FeatureStoreError, Timeout, TransportError, ValidationError
from feature_store_client.models import BatchWriteResult, EntityWrite, EntityWriteError, EntityWriteResult, Limits

DEFAULT_BATCH_WRITE_ENTITIES = 500
"""The service's default most entities per bulk write, for a service whose limits do not say."""
META_FIELDS = frozenset({"source", "compute_id", "ttl", "event_time"})
ENTITY_FIELDS = frozenset({"entity_value", "categories", "feature_list", "meta", "metadata"})


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
        body["meta"] = {name: time_text(value) if name == "event_time" else value for name, value in meta.items()}
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


def encoded_entity(body: Mapping[str, Any]) -> str:
    """An entity as JSON text, as httpx would encode it (NaN refused), to be measured and sent as it is."""
    return json.dumps(body, ensure_ascii=False, separators=(",", ":"), allow_nan=False)


def encoded_size(text: str) -> int:
    """The bytes JSON text takes as sent: UTF-8, where a character outside ASCII takes two to four."""
    return len(text) if text.isascii() else len(text.encode())


def part_limits(limits: Limits) -> tuple[int, int]:
    """The most entities of one bulk-write part, and the bytes their JSON text may take in it."""
    most = limits.max_batch_write_entities or DEFAULT_BATCH_WRITE_ENTITIES
    return most, max((limits.max_batch_write_body_bytes or limits.max_body_bytes) - BATCH_BODY_OVERHEAD, 1)


def split_entities(
    bodies: Sequence[Mapping[str, Any]], limits: Limits, encoded: Sequence[str] | None = None
) -> list[list[int]]:
    """Indices of `bodies` in parts of at most the service's bulk-write maximum of entities, whose bodies
    stay under its bulk-write body limit, in order. An entity too large on its own goes alone (and the
    service answers it 413). `encoded`: the bodies' JSON text, when already made."""
    most, budget = part_limits(limits)
    parts: list[list[int]] = []
    current: list[int] = []
    size = 0
    for index, body in enumerate(bodies):
        body_size = (len(json.dumps(body, default=str)) if encoded is None else encoded_size(encoded[index])) + 2
        if current and (len(current) >= most or size + body_size > budget):
            parts.append(current)
            current, size = [], 0
        current.append(index)
        size += body_size
    if current:
        parts.append(current)
    return parts


def write_batch_call(
    bodies: Sequence[Mapping[str, Any]],
    entity_type: str,
    meta: Mapping[str, Any],
    encoded: Sequence[str] | None = None,
) -> Call[BatchWriteResult]:
    """The bulk write of `bodies`; with their JSON text in `encoded`, the body is joined from it rather
    than encoded again."""
    path = f"{API}/items/batch"
    if encoded is not None:
        head = f'{{"meta":{json.dumps(dict(meta))},"data":{{"entity_type":{json.dumps(entity_type)},"entities":['
        content = (head + ",".join(encoded) + "]}}").encode()
        return Call("POST", path, model_parser(BatchWriteResult), content=content, read=False)
    body = {"meta": dict(meta), "data": {"entity_type": entity_type, "entities": list(bodies)}}
    return Call("POST", path, model_parser(BatchWriteResult), json=body, read=False)


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

    def __init__(
        self,
        bodies: Sequence[Mapping[str, Any]],
        entity_type: str,
        meta: Mapping[str, Any],
        encoded: Sequence[str] | None = None,
    ) -> None:
        self.bodies = bodies
        self.encoded = encoded
        self.entity_type = entity_type
        self.meta = meta
        self.pending = list(range(len(bodies)))
        self.done: dict[int, EntityWriteResult] = {}

    def next_call(self) -> Call[BatchWriteResult] | None:
        if not self.pending:
            return None
        encoded = None if self.encoded is None else [self.encoded[index] for index in self.pending]
        return write_batch_call([self.bodies[index] for index in self.pending], self.entity_type, self.meta, encoded)

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

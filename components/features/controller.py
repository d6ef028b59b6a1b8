"""Turns HTTP models into service calls, and service results into the contract's JSON bytes.

Every call is awaited on the event loop; where work may block (a SQLite write's fsync, Kafka), the
store or the sink hands it to a worker thread itself, so nothing here decides scheduling.
"""

from collections.abc import Mapping, Sequence
from datetime import datetime
from typing import Any

from components.features.bulk_models import BatchWriteRequest
from components.features.history_service import HistoryService
from components.features.models import GetBatchRequest, GetItemsData, GetItemsRequest, ReadMeta, WriteRequest
from components.features.names import WILDCARD
from components.features.records import CategoryInput, EntityFeatures, EntityInput, Provenance
from components.features.services import FeatureService
from core.auth import Principal
from core.exceptions import FeatureStoreError, Forbidden, SourceRequired
from core.serialization import JSONBytesResponse, dumps
from core.timeutils import epoch_to_iso


def _items(result: EntityFeatures) -> dict[str, Any]:
    return {
        category: {"features": {"data": stored.response_data, "metadata": stored.response_metadata}}
        for category, stored in result.items.items()
    }


class FeatureController:
    def __init__(self, service: FeatureService, history: HistoryService) -> None:
        self.service = service
        self.past = history

    async def read_category(
        self,
        entity_value: str,
        category: str,
        entity_type: str,
        max_age_seconds: float | None = None,
        as_of: datetime | None = None,
    ) -> JSONBytesResponse:
        if as_of is None:
            stored = await self.service.read_category(entity_type, entity_value, category, max_age_seconds)
        else:
            stored = await self.past.read_category(entity_type, entity_value, category, max_age_seconds, as_of)
        features = {"data": stored.response_data, "metadata": stored.response_metadata}
        body = {entity_type: entity_value, "category": category, "features": features}
        return JSONBytesResponse(dumps(body))

    async def inspect(self, entity_value: str, entity_type: str) -> JSONBytesResponse:
        inspected = await self.service.inspect(entity_type, entity_value)
        categories = {
            category: {
                "state": found.state,
                "max_age_seconds": found.max_age_seconds,
                "data": found.stored.response_data if found.stored is not None else None,
                "metadata": found.stored.response_metadata if found.stored is not None else None,
            }
            for category, found in inspected.items()
        }
        listed = "store" if self.service.registry.is_open else "registry"
        body = {"entity_type": entity_type, "entity_value": entity_value, "listed": listed, "categories": categories}
        return JSONBytesResponse(dumps(body))

    async def read_features(self, request: GetItemsRequest) -> JSONBytesResponse:
        data, meta = request.data, request.meta
        max_age, as_of = (meta.max_age_seconds, meta.as_of) if meta else (None, None)
        if as_of is None:
            result = await self.service.read_features(data.entity_type, data.entity_value, data.feature_list, max_age)
        else:
            result = await self.past.read_features(
                data.entity_type, data.entity_value, data.feature_list, max_age, as_of
            )
        body = {
            "entity_value": data.entity_value,
            "entity_type": data.entity_type,
            "items": _items(result),
            "unavailable_feature_categories": result.unavailable_categories,
            "unavailable_features": result.unavailable_features,
        }
        if result.unavailable_reasons is not None:
            body["unavailable_reasons"] = result.unavailable_reasons
        return JSONBytesResponse(dumps(body))

    async def read_batch(self, request: GetBatchRequest) -> JSONBytesResponse:
        data, meta = request.data, request.meta
        max_age, as_of = (meta.max_age_seconds, meta.as_of) if meta else (None, None)
        if as_of is None:
            results = await self.service.read_batch(data.entity_type, data.entity_values, data.feature_list, max_age)
        else:
            results = await self.past.read_batch(
                data.entity_type, data.entity_values, data.feature_list, max_age, as_of
            )
        answers = []
        for value, result in zip(data.entity_values, results, strict=True):
            answer = {
                "entity_value": value,
                "items": _items(result),
                "unavailable_feature_categories": result.unavailable_categories,
                "unavailable_features": result.unavailable_features,
                "error": result.error,
            }
            if result.unavailable_reasons is not None:
                answer["unavailable_reasons"] = result.unavailable_reasons
            answers.append(answer)
        return JSONBytesResponse(dumps({"entity_type": data.entity_type, "results": answers}))

    async def history(
        self, entity_value: str, category: str, entity_type: str, limit: int, cursor: int | None
    ) -> JSONBytesResponse:
        page = await self.past.versions(entity_type, entity_value, category, limit, cursor)
        body = {
            "entity_type": entity_type,
            "entity_value": entity_value,
            "category": category,
            "history": page.kept.model_dump() if page.kept is not None else None,
            "versions": [
                {
                    "data": version.stored.response_data,
                    "metadata": version.stored.response_metadata,
                    "kept_until": epoch_to_iso(version.kept_until),
                }
                for version in page.versions
            ],
            "next_cursor": str(page.next_cursor) if page.next_cursor is not None else None,
        }
        return JSONBytesResponse(dumps(body))

    async def rollback(
        self, entity_type: str, entity_values: Sequence[str], compute_id: str, admin: Principal | None
    ) -> JSONBytesResponse:
        actor = admin.actor if admin is not None else None
        outcomes = await self.past.rollback(entity_type, entity_values, compute_id, actor)
        results = [
            {
                "entity_value": outcome.entity_value,
                "restored": [
                    {"category": category, "version": version, "undone_version": undone, "restored_version": restored}
                    for category, version, undone, restored in outcome.restored
                ],
                "untouched": [{"category": category, "reason": reason} for category, reason in outcome.untouched],
                "error": (
                    {"error": outcome.error.error, "detail": outcome.error.detail}
                    if outcome.error is not None
                    else None
                ),
            }
            for outcome in outcomes
        ]
        body = {
            "entity_type": entity_type,
            "compute_id": compute_id,
            "results": results,
            "restored": sum(len(outcome.restored) for outcome in outcomes),
            "failed": sum(outcome.error is not None for outcome in outcomes),
        }
        return JSONBytesResponse(dumps(body))

    async def write(self, request: WriteRequest, writer: Principal | None) -> JSONBytesResponse:
        data, meta = request.data, request.meta
        if data.feature_list is not None:
            categories = [
                CategoryInput(item.category, item.features, ("body", "data", "feature_list", index))
                for index, item in enumerate(data.feature_list)
            ]
        else:
            # WriteData's validator lets feature_list be absent only when category and features are both given.
            assert data.category is not None and data.features is not None
            categories = [CategoryInput(data.category, data.features, ("body", "data"))]
        provenance = Provenance(meta.source, meta.compute_id, meta.ttl, meta.event_time)
        return await self._write(data.entity_type, EntityInput(data.entity_value, categories, provenance), writer)

    async def _write(self, entity_type: str, entity: EntityInput, writer: Principal | None) -> JSONBytesResponse:
        outcome = await self.service.write(entity_type, entity, writer)
        body = {
            "entity_value": entity.entity_value,
            "entity_type": entity_type,
            "categories_updated": outcome.categories_updated,
            "categories_skipped": outcome.categories_skipped,
            "timestamp": outcome.timestamp,
        }
        return JSONBytesResponse(dumps(body))

    async def write_batch(self, request: BatchWriteRequest, writer: Principal | None) -> JSONBytesResponse:
        data, shared = request.data, request.meta
        shared_provenance = Provenance(shared.source, shared.compute_id, shared.ttl, shared.event_time)
        entities = []
        for index, entity in enumerate(data.entities):
            loc = ("body", "data", "entities", index)
            own = entity.meta
            if own is None:
                provenance = shared_provenance
            else:
                meta = shared.model_copy(update={n: getattr(own, n) for n in own.model_fields_set})
                provenance = Provenance(meta.source, meta.compute_id, meta.ttl, meta.event_time)
            categories = [
                CategoryInput(item.category, item.features, (*loc, "feature_list", position))
                for position, item in enumerate(entity.feature_list)
            ]
            own_fields = own.model_fields_set if own is not None else set()
            ttl_loc = (*loc, "meta", "ttl") if "ttl" in own_fields else ("body", "meta", "ttl")
            event_time_loc = (
                (*loc, "meta", "event_time") if "event_time" in own_fields else ("body", "meta", "event_time")
            )
            entities.append(EntityInput(entity.entity_value, categories, provenance, loc, ttl_loc, event_time_loc))
        outcomes = await self.service.write_batch(data.entity_type, entities, writer)
        results: list[dict[str, Any]] = []
        failed = 0
        for entity, outcome in zip(data.entities, outcomes, strict=True):
            if isinstance(outcome, FeatureStoreError):
                failed += 1
                updated, skipped, error = [], [], {"error": outcome.error, "detail": outcome.detail}
            else:
                updated, skipped, error = outcome.categories_updated, outcome.categories_skipped, None
            results.append(
                {
                    "entity_value": entity.entity_value,
                    "categories_updated": updated,
                    "categories_skipped": skipped,
                    "error": error,
                }
            )
        body = {
            "entity_type": data.entity_type,
            "results": results,
            "written": len(outcomes) - failed,
            "failed": failed,
        }
        return JSONBytesResponse(dumps(body))

    async def delete(
        self,
        entity_value: str,
        entity_type: str,
        categories: Sequence[str],
        writer: Principal | None,
        event_time: datetime | None,
    ) -> JSONBytesResponse:
        outcome = await self.service.delete(entity_type, entity_value, categories, writer, event_time)
        body = {
            "entity_value": entity_value,
            "entity_type": entity_type,
            "categories_deleted": outcome.categories_deleted,
            "timestamp": outcome.timestamp,
        }
        return JSONBytesResponse(dumps(body))

    # The earlier API (seed 001): its requests become the current ones, served by the methods above.

    async def read_features_by_category(
        self,
        entity_value: str,
        entity_type: str,
        wanted: Mapping[str, Sequence[str]],
        max_age_seconds: float | None = None,
        as_of: datetime | None = None,
    ) -> JSONBytesResponse:
        """category -> feature names (none, or `*`, for the whole category), answered as `POST /get/items`."""
        feature_list = [f"{category}:{name}" for category, names in wanted.items() for name in names or (WILDCARD,)]
        data = GetItemsData.model_construct(
            entity_type=entity_type, entity_value=entity_value, feature_list=feature_list
        )
        meta = ReadMeta.model_construct(source=None, max_age_seconds=max_age_seconds, as_of=as_of)
        return await self.read_features(GetItemsRequest.model_construct(meta=meta, data=data))

    async def write_by_category(
        self,
        entity_value: str,
        entity_type: str,
        categories: Mapping[str, dict[str, Any]],
        writer: Principal | None,
        provenance: Provenance,
    ) -> JSONBytesResponse:
        """category -> features, written as `POST /items` with `feature_list`. The earlier body has no `meta`:
        without API keys a write that names no writer is refused as unauthorised, saying how to name it."""
        feature_list = [
            CategoryInput(category, features, ("body", "data", "feature_list", index))
            for index, (category, features) in enumerate(categories.items())
        ]
        try:
            entity = EntityInput(entity_value, feature_list, provenance, event_time_loc=("query", "event_time"))
            return await self._write(entity_type, entity, writer)
        except SourceRequired:
            raise Forbidden(
                "name the writer with the `source` query parameter (`?source=<writer>`); it must be an allowed writer"
            ) from None

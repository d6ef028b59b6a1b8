"""Turns HTTP models into service calls, and service results into the contract's JSON bytes.

Every call is awaited on the event loop; where work may block (a SQLite write's fsync, Kafka), the
store or the sink hands it to a worker thread itself, so nothing here decides scheduling.
"""

from typing import Any

from components.features.flows import EntityFeatures
from components.features.models import GetBatchRequest, GetItemsRequest, WriteRequest
from components.features.services import CategoryInput, FeatureService
from components.features.store.base import StoredCategory
from core.auth import Principal
from core.serialization import JSONBytesResponse, dumps


def _block(stored: StoredCategory) -> dict[str, Any]:
    return {"data": stored.data, "metadata": stored.metadata}


def _items(result: EntityFeatures) -> dict[str, Any]:
    return {category: {"features": _block(stored)} for category, stored in result.items.items()}


class FeatureController:
    def __init__(self, service: FeatureService) -> None:
        self.service = service

    async def read_category(self, entity_value: str, category: str, entity_type: str) -> JSONBytesResponse:
        stored = await self.service.read_category(entity_type, entity_value, category)
        body = {entity_type: entity_value, "category": category, "features": _block(stored)}
        return JSONBytesResponse(dumps(body))

    async def read_features(self, request: GetItemsRequest) -> JSONBytesResponse:
        data = request.data
        result = await self.service.read_features(data.entity_type, data.entity_value, data.feature_list)
        body = {
            "entity_value": data.entity_value,
            "entity_type": data.entity_type,
            "items": _items(result),
            "unavailable_feature_categories": result.unavailable_categories,
            "unavailable_features": result.unavailable_features,
        }
        return JSONBytesResponse(dumps(body))

    async def read_batch(self, request: GetBatchRequest) -> JSONBytesResponse:
        data = request.data
        results = await self.service.read_batch(data.entity_type, data.entity_values, data.feature_list)
        body = {
            "entity_type": data.entity_type,
            "results": [
                {
                    "entity_value": value,
                    "items": _items(result),
                    "unavailable_feature_categories": result.unavailable_categories,
                    "unavailable_features": result.unavailable_features,
                    "error": result.error,
                }
                for value, result in zip(data.entity_values, results, strict=True)
            ],
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
        outcome = await self.service.write(
            data.entity_type,
            data.entity_value,
            categories,
            source=meta.source,
            writer=writer,
            compute_id=meta.compute_id,
            ttl=meta.ttl,
            event_time=meta.event_time,
        )
        body = {
            "entity_value": data.entity_value,
            "entity_type": data.entity_type,
            "categories_updated": outcome.categories_updated,
            "categories_skipped": outcome.categories_skipped,
            "timestamp": outcome.timestamp,
        }
        return JSONBytesResponse(dumps(body))

"""Turns HTTP models into service calls, and service results into the contract's JSON bytes.

Reads of one entity are awaited: on a store whose reads are in-process lookups (the embedded
store, from the OS page cache, tens of microseconds) they run on the event loop, because handing
them to the threadpool costs more than the read itself; on a networked store (DynamoDB) they run
in the threadpool like every other blocking call. Writes and batch reads always use the threadpool.
"""

from collections.abc import Callable
from typing import Any, ParamSpec

from starlette.concurrency import run_in_threadpool

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


P = ParamSpec("P")


class FeatureController:
    def __init__(self, service: FeatureService, inline_reads: bool) -> None:
        self.service = service
        self.inline_reads = inline_reads

    async def _read(self, call: Callable[P, JSONBytesResponse], *args: P.args, **kwargs: P.kwargs) -> JSONBytesResponse:
        if self.inline_reads:
            return call(*args, **kwargs)
        return await run_in_threadpool(call, *args, **kwargs)

    async def read_category(self, entity_value: str, category: str, entity_type: str) -> JSONBytesResponse:
        return await self._read(self._read_category, entity_value, category, entity_type)

    async def read_features(self, request: GetItemsRequest) -> JSONBytesResponse:
        return await self._read(self._read_features, request)

    def _read_category(self, entity_value: str, category: str, entity_type: str) -> JSONBytesResponse:
        stored = self.service.read_category(entity_type, entity_value, category)
        body = {entity_type: entity_value, "category": category, "features": _block(stored)}
        return JSONBytesResponse(dumps(body))

    def _read_features(self, request: GetItemsRequest) -> JSONBytesResponse:
        data = request.data
        result = self.service.read_features(data.entity_type, data.entity_value, data.feature_list)
        body = {
            "entity_value": data.entity_value,
            "entity_type": data.entity_type,
            "items": _items(result),
            "unavailable_feature_categories": result.unavailable_categories,
            "unavailable_features": result.unavailable_features,
        }
        return JSONBytesResponse(dumps(body))

    def read_batch(self, request: GetBatchRequest) -> JSONBytesResponse:
        data = request.data
        results = self.service.read_batch(data.entity_type, data.entity_values, data.feature_list)
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

    def write(self, request: WriteRequest, writer: Principal | None) -> JSONBytesResponse:
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
        outcome = self.service.write(
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

"""Turns HTTP models into service calls, and service results into the contract's JSON bytes.

Reads of one entity are awaited: on a store whose reads are in-process lookups (the embedded
store, from the OS page cache, tens of microseconds) they run on the event loop, because handing
them to the threadpool costs more than the read itself; on a networked store (DynamoDB) they run
in the threadpool like every other blocking call. Writes and batch reads always use the threadpool.
"""

from collections.abc import Callable, Mapping, Sequence
from datetime import datetime
from typing import Any, ParamSpec

from starlette.concurrency import run_in_threadpool

from components.features.flows import EntityFeatures
from components.features.models import (
    CategoryFeatures,
    GetBatchRequest,
    GetItemsData,
    GetItemsRequest,
    ReadMeta,
    WriteData,
    WriteMeta,
    WriteRequest,
)
from components.features.services import WILDCARD, CategoryInput, FeatureService
from components.features.store.base import StoredCategory
from core.auth import Principal
from core.exceptions import Forbidden, SourceRequired
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

    async def read_category(
        self, entity_value: str, category: str, entity_type: str, max_age_seconds: float | None = None
    ) -> JSONBytesResponse:
        return await self._read(self._read_category, entity_value, category, entity_type, max_age_seconds)

    async def read_features(self, request: GetItemsRequest) -> JSONBytesResponse:
        return await self._read(self._read_features, request)

    def _read_category(
        self, entity_value: str, category: str, entity_type: str, max_age_seconds: float | None
    ) -> JSONBytesResponse:
        stored = self.service.read_category(entity_type, entity_value, category, max_age_seconds)
        body = {entity_type: entity_value, "category": category, "features": _block(stored)}
        return JSONBytesResponse(dumps(body))

    def _read_features(self, request: GetItemsRequest) -> JSONBytesResponse:
        data, max_age = request.data, request.meta.max_age_seconds if request.meta else None
        result = self.service.read_features(data.entity_type, data.entity_value, data.feature_list, max_age)
        body = {
            "entity_value": data.entity_value,
            "entity_type": data.entity_type,
            "items": _items(result),
            "unavailable_feature_categories": result.unavailable_categories,
            "unavailable_features": result.unavailable_features,
        }
        return JSONBytesResponse(dumps(body))

    def read_batch(self, request: GetBatchRequest) -> JSONBytesResponse:
        data, max_age = request.data, request.meta.max_age_seconds if request.meta else None
        results = self.service.read_batch(data.entity_type, data.entity_values, data.feature_list, max_age)
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

    # The earlier API (seed 001): its requests become the current ones, served by the methods above.

    async def read_features_by_category(
        self,
        entity_value: str,
        entity_type: str,
        wanted: Mapping[str, Sequence[str]],
        max_age_seconds: float | None = None,
    ) -> JSONBytesResponse:
        """category -> feature names (none, or `*`, for the whole category), answered as `POST /get/items`."""
        feature_list = [f"{category}:{name}" for category, names in wanted.items() for name in names or (WILDCARD,)]
        data = GetItemsData.model_construct(
            entity_type=entity_type, entity_value=entity_value, feature_list=feature_list
        )
        meta = ReadMeta.model_construct(source=None, max_age_seconds=max_age_seconds)
        return await self.read_features(GetItemsRequest.model_construct(meta=meta, data=data))

    def write_by_category(
        self,
        entity_value: str,
        entity_type: str,
        categories: Mapping[str, dict[str, Any]],
        writer: Principal | None,
        *,
        source: str | None,
        compute_id: str | None,
        ttl: int | None,
        event_time: datetime | None,
    ) -> JSONBytesResponse:
        """category -> features, written as `POST /items` with `feature_list`. The earlier body has no `meta`:
        without API keys a write that names no writer is refused as unauthorised, saying how to name it."""
        feature_list = [
            CategoryFeatures.model_construct(category=category, features=features)
            for category, features in categories.items()
        ]
        data = WriteData.model_construct(entity_type=entity_type, entity_value=entity_value, feature_list=feature_list)
        meta = WriteMeta.model_construct(source=source, compute_id=compute_id, ttl=ttl, event_time=event_time)
        try:
            return self.write(WriteRequest.model_construct(meta=meta, data=data), writer)
        except SourceRequired:
            raise Forbidden(
                "name the writer with the `source` query parameter (`?source=<writer>`); it must be an allowed writer"
            ) from None

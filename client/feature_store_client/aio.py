"""The asyncio client: one pooled `httpx.AsyncClient`; a batch read's parts are fetched concurrently.
Same methods, arguments and results as `FeatureStoreClient`, awaited."""

import asyncio
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from feature_store_client import _arrow, _core
from feature_store_client._core import DEFAULT_CONCURRENCY, DEFAULT_ENTITY_TYPE, DEFAULT_TIMEOUT, Call, RetryPolicy
from feature_store_client.errors import FeatureStoreError
from feature_store_client.models import (
    BatchResult,
    BatchWriteResult,
    CategoryResult,
    DeleteResult,
    EntityWrite,
    EntityWriteResult,
    FeaturesResult,
    FrameProgress,
    FrameWriteResult,
    Limits,
    Readiness,
    Registry,
    RegistryCategory,
    RollbackResult,
    WriteResult,
)

T = TypeVar("T")


class AsyncFeatureStoreClient:
    """`async with AsyncFeatureStoreClient(url) as store: await store.read_features(...)`.

    `transport` replaces the network (for example `httpx.ASGITransport(app)`); `http_client` replaces
    the pool, and is then not closed by this client."""

    def __init__(
        self,
        base_url: str = "http://localhost:8000",
        api_key: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        *,
        retry: RetryPolicy | None = None,
        max_concurrency: int = DEFAULT_CONCURRENCY,
        headers: Mapping[str, str] | None = None,
        transport: httpx.AsyncBaseTransport | None = None,
        http_client: httpx.AsyncClient | None = None,
    ) -> None:
        self.api_key = api_key
        self.retry = retry or RetryPolicy()
        self.max_concurrency = max(1, max_concurrency)
        self._owned = http_client is None
        self._http = http_client or httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout,
            headers=headers,
            transport=transport,
            limits=httpx.Limits(max_connections=max(self.max_concurrency, 10)),
        )
        self._limits: Limits | None = None
        self._limits_lock = asyncio.Lock()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        await self.aclose()

    async def aclose(self) -> None:
        if self._owned:
            await self._http.aclose()

    async def _run(self, call: Call[T], request_id: str | None) -> T:
        request_id = request_id or _core.new_request_id()
        headers = _core.write_headers(_core.request_headers(self.api_key, request_id), call)
        attempts = _core.Attempts(self.retry, call, request_id)
        while True:
            try:
                response = await self._http.request(
                    call.method,
                    call.path,
                    json=call.json,
                    content=call.content,
                    params=call.params,
                    headers=headers if call.content is None else {**headers, "Content-Type": "application/json"},
                )
            except httpx.TransportError as exc:
                await asyncio.sleep(attempts.failed(exc))
                continue
            wait = attempts.answered(response)
            if wait is None:
                return call.parse(response)
            await asyncio.sleep(wait)

    async def limits(self) -> Limits:
        """The service's maxima, read once (`GET /api/v1/limits`) and kept."""
        async with self._limits_lock:
            if self._limits is None:
                self._limits = await self._run(_core.limits_call(), None)
            return self._limits

    async def read_category(
        self,
        entity_value: str,
        category: str,
        entity_type: str = DEFAULT_ENTITY_TYPE,
        *,
        max_age_seconds: float | None = None,
        request_id: str | None = None,
    ) -> CategoryResult:
        call = _core.read_category_call(entity_value, category, entity_type, max_age_seconds)
        return await self._run(call, request_id)

    async def read_features(
        self,
        entity_value: str,
        features: Sequence[str],
        entity_type: str = DEFAULT_ENTITY_TYPE,
        *,
        source: str | None = None,
        max_age_seconds: float | None = None,
        request_id: str | None = None,
    ) -> FeaturesResult:
        call = _core.read_features_call(entity_value, features, entity_type, source, max_age_seconds)
        return await self._run(call, request_id)

    async def read_batch(
        self,
        entity_values: Sequence[str],
        features: Sequence[str],
        entity_type: str = DEFAULT_ENTITY_TYPE,
        *,
        source: str | None = None,
        max_age_seconds: float | None = None,
        request_id: str | None = None,
    ) -> BatchResult:
        if not entity_values:
            raise ValueError("entity_values must hold at least one entity value")
        request_id = request_id or _core.new_request_id()
        parts = _core.split_batch(entity_values, await self.limits())
        calls = [_core.read_batch_call(part, features, entity_type, source, max_age_seconds) for part in parts]
        if len(calls) == 1:
            return await self._run(calls[0], request_id)
        gate = asyncio.Semaphore(self.max_concurrency)

        async def fetch(call: Call[BatchResult]) -> BatchResult:
            async with gate:
                return await self._run(call, request_id)

        answers = await asyncio.gather(*(fetch(call) for call in calls))
        return _core.merge_batches(entity_type, answers)

    async def write(
        self,
        entity_value: str,
        categories: Mapping[str, Mapping[str, Any]],
        entity_type: str = DEFAULT_ENTITY_TYPE,
        source: str | None = None,
        compute_id: str | None = None,
        ttl: int | None = None,
        event_time: datetime | str | None = None,
        *,
        request_id: str | None = None,
    ) -> WriteResult:
        call = _core.write_call(entity_value, categories, entity_type, source, compute_id, ttl, event_time)
        return await self._run(call, request_id)

    async def write_batch(
        self,
        entities: Iterable[EntityWrite | Mapping[str, Any]],
        entity_type: str = DEFAULT_ENTITY_TYPE,
        source: str | None = None,
        compute_id: str | None = None,
        ttl: int | None = None,
        event_time: datetime | str | None = None,
        *,
        on_part: Callable[[int, int], None] | None = None,
        request_id: str | None = None,
    ) -> BatchWriteResult:
        bodies = [_core.entity_body(entity) for entity in entities]
        if not bodies:
            raise ValueError("entities must hold at least one entity")
        request_id = request_id or _core.new_request_id()
        meta = _core.write_meta(source, compute_id, ttl, event_time)
        parts = _core.split_entities(bodies, await self.limits())
        gate = asyncio.Semaphore(self.max_concurrency)
        results: list[EntityWriteResult | None] = [None] * len(bodies)

        async def write_part(indices: list[int]) -> None:
            async with gate:
                part_results = await self._write_part(
                    [bodies[index] for index in indices], entity_type, meta, request_id
                )
            for index, result in zip(indices, part_results, strict=True):
                results[index] = result
            if on_part is not None:
                on_part(len(part_results), sum(not result.ok for result in part_results))

        await asyncio.gather(*(write_part(indices) for indices in parts))
        return _core.batch_write_result(entity_type, [result for result in results if result is not None])

    async def _write_part(
        self,
        bodies: Sequence[Mapping[str, Any]],
        entity_type: str,
        meta: Mapping[str, Any],
        request_id: str,
        encoded: Sequence[str] | None = None,
    ) -> list[EntityWriteResult]:
        part = _core.PartWrite(bodies, entity_type, meta, encoded)
        while (call := part.next_call()) is not None:
            try:
                part.answered(await self._run(call, request_id))
            except FeatureStoreError as exc:
                part.refused(exc)
        return part.results()

    async def write_dataframe(
        self,
        frame: Any,
        *,
        entity_column: str,
        categories: Mapping[str, Sequence[str] | Mapping[str, str]] | None = None,
        event_time_column: str | None = None,
        entity_type: str = DEFAULT_ENTITY_TYPE,
        source: str | None = None,
        compute_id: str | None = None,
        ttl: int | None = None,
        event_time: datetime | str | None = None,
        nulls: _arrow.Nulls = "omit",
        decimals: _arrow.Decimals = "float",
        concurrency: int | None = None,
        skip_rows: int = 0,
        keep_failures: bool = True,
        on_progress: Callable[[FrameProgress], None] | None = None,
        request_id: str | None = None,
    ) -> FrameWriteResult:
        """As `FeatureStoreClient.write_dataframe`; the rows are converted on the event loop between sends."""
        started = time.monotonic()
        request_id = request_id or _core.new_request_id()
        meta = _core.write_meta(source, compute_id, ttl, event_time)
        options = _arrow.FrameOptions(nulls, decimals)
        in_flight = max(1, concurrency or self.max_concurrency)
        parts = _arrow.frame_parts(
            frame,
            lambda names: _arrow.ColumnPlan.of(names, entity_column, categories, event_time_column),
            await self.limits(),
            options,
            skip_rows,
        )
        tally = _arrow.FrameTally(entity_type, skip_rows, on_progress, keep_failures)
        window: deque[tuple[_arrow.Part, asyncio.Task[list[EntityWriteResult]]]] = deque()
        try:
            for part in parts:
                task = asyncio.ensure_future(self._write_part(part.bodies, entity_type, meta, request_id, part.encoded))
                window.append((part, task))
                if len(window) >= in_flight:
                    done, oldest = window.popleft()
                    tally.add(done, await oldest)
                else:
                    await asyncio.sleep(0)
            while window:
                done, oldest = window.popleft()
                tally.add(done, await oldest)
        finally:
            for _, task in window:
                task.cancel()
        return tally.result(time.monotonic() - started)

    async def delete(
        self,
        entity_value: str,
        categories: Sequence[str] | None = None,
        entity_type: str = DEFAULT_ENTITY_TYPE,
        *,
        event_time: datetime | str | None = None,
        request_id: str | None = None,
    ) -> DeleteResult:
        return await self._run(_core.delete_call(entity_value, categories, entity_type, event_time), request_id)

    async def rollback(
        self,
        entity_values: Sequence[str],
        compute_id: str,
        entity_type: str = DEFAULT_ENTITY_TYPE,
        *,
        request_id: str | None = None,
    ) -> RollbackResult:
        request_id = request_id or _core.new_request_id()
        parts = _core.rollback_parts(entity_values, await self.limits(), _core.DEFAULT_BATCH_WRITE_ENTITIES)
        answers = [await self._run(_core.rollback_call(entity_type, part, compute_id), request_id) for part in parts]
        return _core.merge_rollbacks(entity_type, compute_id, answers)

    async def registry(self, *, request_id: str | None = None) -> Registry:
        return await self._run(_core.registry_call(), request_id)

    async def registry_category(self, category: str, *, request_id: str | None = None) -> RegistryCategory:
        return await self._run(_core.registry_category_call(category), request_id)

    async def ready(self, *, request_id: str | None = None) -> Readiness:
        return await self._run(_core.ready_call(), request_id)

"""The blocking client: one pooled `httpx.Client`; a batch read's parts are fetched on threads."""

import threading
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor, as_completed
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


class FeatureStoreClient:
    """Reads and writes features over HTTP, with retries, request ids and the API key.

    Use it as a context manager (or call `close()`): it holds a pool of connections. It is safe to
    share between threads. `http_client` replaces the pool (for example a test client of the app);
    the client then does not close it."""

    def __init__(
        self,
        base_url: str = "http://localhost:8000",
        api_key: str | None = None,
        timeout: float | httpx.Timeout = DEFAULT_TIMEOUT,
        *,
        retry: RetryPolicy | None = None,
        max_concurrency: int = DEFAULT_CONCURRENCY,
        headers: Mapping[str, str] | None = None,
        http_client: httpx.Client | None = None,
    ) -> None:
        self.api_key = api_key
        self.retry = retry or RetryPolicy()
        self.max_concurrency = max(1, max_concurrency)
        self._owned = http_client is None
        self._http = http_client or httpx.Client(
            base_url=base_url,
            timeout=timeout,
            headers=headers,
            limits=httpx.Limits(max_connections=max(self.max_concurrency, 10)),
        )
        self._limits: Limits | None = None
        self._limits_lock = threading.Lock()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, traceback: TracebackType | None
    ) -> None:
        self.close()

    def close(self) -> None:
        if self._owned:
            self._http.close()

    def _run(self, call: Call[T], request_id: str | None) -> T:
        request_id = request_id or _core.new_request_id()
        headers = _core.write_headers(_core.request_headers(self.api_key, request_id), call)
        attempts = _core.Attempts(self.retry, call, request_id)
        while True:
            try:
                response = self._http.request(
                    call.method,
                    call.path,
                    json=call.json,
                    content=call.content,
                    params=call.params,
                    headers=headers if call.content is None else {**headers, "Content-Type": "application/json"},
                )
            except httpx.TransportError as exc:
                time.sleep(attempts.failed(exc))
                continue
            wait = attempts.answered(response)
            if wait is None:
                return call.parse(response)
            time.sleep(wait)

    def limits(self) -> Limits:
        """The service's maxima, read once (`GET /api/v1/limits`) and kept."""
        with self._limits_lock:
            if self._limits is None:
                self._limits = self._run(_core.limits_call(), None)
            return self._limits

    def read_category(
        self,
        entity_value: str,
        category: str,
        entity_type: str = DEFAULT_ENTITY_TYPE,
        *,
        max_age_seconds: float | None = None,
        request_id: str | None = None,
    ) -> CategoryResult:
        """One category of one entity; `NotFound` when it has nothing fresh there."""
        return self._run(_core.read_category_call(entity_value, category, entity_type, max_age_seconds), request_id)

    def read_features(
        self,
        entity_value: str,
        features: Sequence[str],
        entity_type: str = DEFAULT_ENTITY_TYPE,
        *,
        source: str | None = None,
        max_age_seconds: float | None = None,
        request_id: str | None = None,
    ) -> FeaturesResult:
        """`features` as `["category:feature", "category:*"]`; missing ones are listed, not raised."""
        call = _core.read_features_call(entity_value, features, entity_type, source, max_age_seconds)
        return self._run(call, request_id)

    def read_batch(
        self,
        entity_values: Sequence[str],
        features: Sequence[str],
        entity_type: str = DEFAULT_ENTITY_TYPE,
        *,
        source: str | None = None,
        max_age_seconds: float | None = None,
        request_id: str | None = None,
    ) -> BatchResult:
        """The same features for many entities, in request order. Above the service's maxima the values
        are split into parts, fetched concurrently (at most `max_concurrency` at a time) under one request id."""
        if not entity_values:
            raise ValueError("entity_values must hold at least one entity value")
        request_id = request_id or _core.new_request_id()
        parts = _core.split_batch(entity_values, self.limits())
        calls = [_core.read_batch_call(part, features, entity_type, source, max_age_seconds) for part in parts]
        if len(calls) == 1:
            return self._run(calls[0], request_id)
        with ThreadPoolExecutor(max_workers=min(len(calls), self.max_concurrency)) as pool:
            answers = list(pool.map(lambda call: self._run(call, request_id), calls))
        return _core.merge_batches(entity_type, answers)

    def write(
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
        """Writes `{category: {feature: value}}` of one entity, atomically. Retried on 429/503 only: after
        a timeout or a broken connection the write may have been applied, so `Timeout`/`TransportError`
        is raised (with `event_time` set, sending it again is harmless)."""
        call = _core.write_call(entity_value, categories, entity_type, source, compute_id, ttl, event_time)
        return self._run(call, request_id)

    def write_batch(
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
        """Writes many entities, each atomically on its own (`POST /api/v1/items/batch`), answered one
        result per entity in the order given. `entities` are `EntityWrite`s or mappings
        (`{"entity_value", "categories": {category: {feature: value}}}`, or the service's form with
        `feature_list` and `meta`); the meta arguments are shared, an entity's own override them.

        Split at the service's published bulk-write maxima (entities, body bytes) into parts sent
        concurrently (at most `max_concurrency` at a time) under one request id; `on_part(entities,
        failed)` is called as each part is answered. An entity the service refuses or fails to write
        has an `error` in its result and nothing written; so does every entity of a part refused as a
        whole or left without an answer (`timeout`, `transport_error`: it may have been written, and
        is not sent again). So nothing is raised once sending has begun: check `.failed`. ValueError
        for an entity that is not of one of those forms, before anything is sent."""
        bodies = [_core.entity_body(entity) for entity in entities]
        if not bodies:
            raise ValueError("entities must hold at least one entity")
        request_id = request_id or _core.new_request_id()
        meta = _core.write_meta(source, compute_id, ttl, event_time)
        parts = _core.split_entities(bodies, self.limits())

        def write_part(indices: list[int]) -> list[EntityWriteResult]:
            return self._write_part([bodies[index] for index in indices], entity_type, meta, request_id)

        results: list[EntityWriteResult | None] = [None] * len(bodies)
        with ThreadPoolExecutor(max_workers=min(len(parts), self.max_concurrency)) as pool:
            futures = {pool.submit(write_part, indices): indices for indices in parts}
            for future in as_completed(futures):
                part_results = future.result()
                for index, result in zip(futures[future], part_results, strict=True):
                    results[index] = result
                if on_part is not None:
                    on_part(len(part_results), sum(not result.ok for result in part_results))
        return _core.batch_write_result(entity_type, [result for result in results if result is not None])

    def _write_part(
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
                part.answered(self._run(call, request_id))
            except FeatureStoreError as exc:
                part.refused(exc)
        return part.results()

    def write_dataframe(
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
        """Writes a frame's rows, one entity each, through the bulk endpoint: a pandas DataFrame, a pyarrow
        Table, RecordBatch or RecordBatchReader, or an iterator of them (needs the `[arrow]` extra).

        `categories` maps each category to its columns (`{"user_features": ["age", "city"]}`, or
        `{feature: column}`); without it every other column is named `category:feature`. Rows go in parts
        of the service's `max_batch_write_entities`, `concurrency` parts in flight (default
        `max_concurrency`), answered in input order to `on_progress`; a slice of one part is held at a
        time, so memory stays bounded. A row that cannot be sent (a NaN, no entity value) or that the
        service refuses fails alone, with its row number, and the load goes on. `nulls` omits null
        values or sends them as null; `decimals` sends decimals as float or string. `skip_rows` resumes
        after rows already answered. `keep_failures=False` leaves the failed rows out of the result (see
        them in `on_progress`). FrameError (a ValueError) before anything is sent for a frame that cannot
        be loaded: a missing column, a column not named by the convention, a type with no JSON form."""
        started = time.monotonic()
        request_id = request_id or _core.new_request_id()
        meta = _core.write_meta(source, compute_id, ttl, event_time)
        options = _arrow.FrameOptions(nulls, decimals)
        in_flight = max(1, concurrency or self.max_concurrency)
        parts = _arrow.frame_parts(
            frame,
            lambda names: _arrow.ColumnPlan.of(names, entity_column, categories, event_time_column),
            self.limits(),
            options,
            skip_rows,
        )
        tally = _arrow.FrameTally(entity_type, skip_rows, on_progress, keep_failures)
        window: deque[tuple[_arrow.Part, Future[list[EntityWriteResult]]]] = deque()
        with ThreadPoolExecutor(max_workers=in_flight) as pool:
            for part in parts:
                window.append(
                    (part, pool.submit(self._write_part, part.bodies, entity_type, meta, request_id, part.encoded))
                )
                if len(window) >= in_flight:
                    done, future = window.popleft()
                    tally.add(done, future.result())
            while window:
                done, future = window.popleft()
                tally.add(done, future.result())
        return tally.result(time.monotonic() - started)

    def delete(
        self,
        entity_value: str,
        categories: Sequence[str] | None = None,
        entity_type: str = DEFAULT_ENTITY_TYPE,
        *,
        event_time: datetime | str | None = None,
        request_id: str | None = None,
    ) -> DeleteResult:
        """Deletes the data of `categories` of one entity (None: every category), announcing each with a
        `feature_deleted` event; writes older than `event_time` (default: now) cannot bring it back.
        Deleting what is not there is no error (`categories_deleted` is empty). Like a write, it is
        retried on 429/503 only."""
        return self._run(_core.delete_call(entity_value, categories, entity_type, event_time), request_id)

    def rollback(
        self,
        entity_values: Sequence[str],
        compute_id: str,
        entity_type: str = DEFAULT_ENTITY_TYPE,
        *,
        request_id: str | None = None,
    ) -> RollbackResult:
        """Undoes `compute_id`'s writes to the entities (an admin key): each category whose current value the job
        wrote gets back its latest kept version another job wrote (categories with history, docs/history.md).
        Sent in parts of the service's bulk-write maximum, one after another; idempotent, so safe to send again."""
        request_id = request_id or _core.new_request_id()
        parts = _core.rollback_parts(entity_values, self.limits(), _core.DEFAULT_BATCH_WRITE_ENTITIES)
        answers = [self._run(_core.rollback_call(entity_type, part, compute_id), request_id) for part in parts]
        return _core.merge_rollbacks(entity_type, compute_id, answers)

    def registry(self, *, request_id: str | None = None) -> Registry:
        """Every category the service accepts, with its features, types and rules."""
        return self._run(_core.registry_call(), request_id)

    def registry_category(self, category: str, *, request_id: str | None = None) -> RegistryCategory:
        """One category of the registry; `NotFound` when it holds none of that name."""
        return self._run(_core.registry_category_call(category), request_id)

    def ready(self, *, request_id: str | None = None) -> Readiness:
        """The service's readiness: `.ready` is False (not an exception) when its store cannot serve."""
        return self._run(_core.ready_call(), request_id)

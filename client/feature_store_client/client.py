"""The blocking client: one pooled `httpx.Client`; a batch read's parts are fetched on threads."""

import threading
import time
from collections.abc import Mapping, Sequence
from concurrent.futures import ThreadPoolExecutor
from datetime import datetime
from types import TracebackType
from typing import Any, Self, TypeVar

import httpx

from feature_store_client import _core
from feature_store_client._core import DEFAULT_CONCURRENCY, DEFAULT_ENTITY_TYPE, DEFAULT_TIMEOUT, Call, RetryPolicy
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
        headers = _core.request_headers(self.api_key, request_id)
        attempts = _core.Attempts(self.retry, call, request_id)
        while True:
            try:
                response = self._http.request(
                    call.method, call.path, json=call.json, params=call.params, headers=headers
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

    def registry(self, *, request_id: str | None = None) -> Registry:
        """Every category the service accepts, with its features, types and rules."""
        return self._run(_core.registry_call(), request_id)

    def registry_category(self, category: str, *, request_id: str | None = None) -> RegistryCategory:
        """One category of the registry; `NotFound` when it holds none of that name."""
        return self._run(_core.registry_category_call(category), request_id)

    def ready(self, *, request_id: str | None = None) -> Readiness:
        """The service's readiness: `.ready` is False (not an exception) when its store cannot serve."""
        return self._run(_core.ready_call(), request_id)

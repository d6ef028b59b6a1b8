"""Retries: 429/503 after `Retry-After` within the budget, stretched by a jitter; timeouts retried for reads,
never for writes; and batch reads split above the service's maximum, answered in request order."""

import socket
import socketserver
import threading
import time
from collections.abc import Iterator
from typing import Any, cast

import httpx
import pytest

from core.exceptions import StoreUnavailable
from feature_store_client import FeatureStoreClient, RetryPolicy, Timeout
from feature_store_client import StoreUnavailable as ClientStoreUnavailable
from feature_store_client._calls import Call
from feature_store_client._retries import Attempts
from tests.client.conftest import WRITER
from tests.conftest import AppClient

FAST = RetryPolicy(attempts=3, backoff_seconds=0.01)


def failing_reads(app_client: AppClient, monkeypatch: pytest.MonkeyPatch, waits: list[int]) -> None:
    """The store refuses one read per wait in `waits` (answered with that `Retry-After`), then serves."""
    store = app_client.app.state.runtime.store
    read = store.read

    def flaky(*args: Any, **kwargs: Any) -> Any:
        if waits:
            raise StoreUnavailable("store paused", retry_after=waits.pop(0))
        return read(*args, **kwargs)

    monkeypatch.setattr(store, "read", flaky)


@pytest.mark.backends("sqlite")
def test_a_503_is_retried_after_its_retry_after(client: AppClient, monkeypatch: pytest.MonkeyPatch) -> None:
    with FeatureStoreClient(http_client=cast(httpx.Client, client)) as store:
        store.write("user-1", {"user_features": {"age": 3}}, source=WRITER)
        failing_reads(client, monkeypatch, [1, 0])
        started = time.monotonic()
        answer = store.read_features("user-1", ["user_features:age"])
        assert answer.get("user_features:age") == 3
        assert time.monotonic() - started >= 1


@pytest.mark.backends("sqlite")
def test_a_retry_after_beyond_the_budget_is_raised_at_once(client: AppClient, monkeypatch: pytest.MonkeyPatch) -> None:
    retry = RetryPolicy(budget_seconds=0.5)
    with FeatureStoreClient(http_client=cast(httpx.Client, client), retry=retry) as store:
        failing_reads(client, monkeypatch, [30])
        started = time.monotonic()
        with pytest.raises(ClientStoreUnavailable) as refused:
            store.read_features("user-1", ["user_features:age"], request_id="budget-1")
        assert time.monotonic() - started < 5
        assert (refused.value.retry_after, refused.value.request_id, refused.value.status_code) == (30, "budget-1", 503)


class SilentServer(socketserver.ThreadingTCPServer):
    """Reads each request and never answers: every call times out. Counts the requests."""

    daemon_threads = True
    allow_reuse_address = True

    def __init__(self) -> None:
        super().__init__(("127.0.0.1", 0), SilentHandler)
        self.requests = 0
        self.keys: list[str] = []
        """The `Idempotency-Key` of each request that had one."""
        self.closed = threading.Event()


class SilentHandler(socketserver.BaseRequestHandler):
    server: SilentServer

    def handle(self) -> None:
        connection: socket.socket = self.request
        data = b""
        while b"\r\n\r\n" not in data:
            chunk = connection.recv(65536)
            if not chunk:
                return
            data += chunk
        self.server.requests += 1
        for line in data.split(b"\r\n"):
            name, _, value = line.partition(b":")
            if name.strip().lower() == b"idempotency-key":
                self.server.keys.append(value.strip().decode())
        self.server.closed.wait(5)


@pytest.fixture
def silent_server() -> Iterator[SilentServer]:
    server = SilentServer()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server
    server.closed.set()
    server.shutdown()
    server.server_close()


def test_a_write_is_retried_after_a_timeout_under_one_idempotency_key(silent_server: SilentServer) -> None:
    """The key makes the retry safe: a first attempt applied without its answer arriving is not applied again."""
    url = f"http://127.0.0.1:{silent_server.server_address[1]}"
    with FeatureStoreClient(url, timeout=0.3, retry=FAST) as store:
        with pytest.raises(Timeout) as failed:
            store.write("user-1", {"user_features": {"age": 3}}, source=WRITER, request_id="write-1")
        with pytest.raises(Timeout):
            store.write("user-1", {"user_features": {"age": 4}}, source=WRITER)
    assert failed.value.request_id == "write-1"
    assert silent_server.requests == 2 * FAST.attempts
    first, second = silent_server.keys[: FAST.attempts], silent_server.keys[FAST.attempts :]
    assert len(set(first)) == 1 and len(set(second)) == 1 and first[0] != second[0], "a key per write"


def test_a_read_is_retried_after_a_timeout(silent_server: SilentServer) -> None:
    url = f"http://127.0.0.1:{silent_server.server_address[1]}"
    with FeatureStoreClient(url, timeout=0.3, retry=FAST) as store:
        with pytest.raises(Timeout):
            store.read_features("user-1", ["user_features:age"])
    assert silent_server.requests == FAST.attempts


@pytest.mark.backends("sqlite")
def test_a_batch_above_the_maximum_is_split_and_answered_in_order(make_client, monkeypatch: pytest.MonkeyPatch) -> None:
    app_client = make_client(max_batch_entities=3)
    sent: list[list[str]] = []
    request = app_client.request

    def counting(*args: Any, **kwargs: Any) -> httpx.Response:
        if kwargs.get("json") and "entity_values" in kwargs["json"]["data"]:
            sent.append(kwargs["json"]["data"]["entity_values"])
        return request(*args, **kwargs)

    monkeypatch.setattr(app_client, "request", counting)
    values = [f"user-{number}" for number in range(8)]
    with FeatureStoreClient(http_client=cast(httpx.Client, app_client)) as store:
        for value in values[::3]:
            store.write(value, {"user_features": {"name": value}}, source=WRITER)
        answer = store.read_batch(values, ["user_features:name"])
    assert sorted(map(tuple, sent)) == [tuple(values[0:3]), tuple(values[3:6]), tuple(values[6:8])]
    assert [result.entity_value for result in answer.results] == values
    assert [result.get("user_features:name") for result in answer.results] == [
        value if number % 3 == 0 else None for number, value in enumerate(values)
    ]


@pytest.mark.backends("sqlite")
def test_a_batch_is_split_over_a_socket_too(start_service) -> None:
    server = start_service(MAX_BATCH_ENTITIES="2")
    values = [f"user-{number}" for number in range(5)]
    with FeatureStoreClient(server.url) as store:
        store.write("user-4", {"user_features": {"age": 4}}, source=WRITER)
        answer = store.read_batch(values, ["user_features:age"])
        assert store.limits().max_batch_entities == 2
    assert [result.entity_value for result in answer.results] == values
    assert answer.results[4].get("user_features:age") == 4


def waits_of(policy: RetryPolicy, answers: list[httpx.Response]) -> list[float | None]:
    read = Call("GET", "/api/v1/health", parse=lambda response: response)
    attempts = Attempts(policy, read, "jitter-1")
    return [attempts.answered(answer) for answer in answers]


def refused(retry_after: str | None = None) -> httpx.Response:
    headers = {"Retry-After": retry_after} if retry_after is not None else {}
    return httpx.Response(503, headers=headers, json={"error": "overloaded", "detail": "busy"})


def test_retry_after_is_stretched_by_the_jitter_never_shortened() -> None:
    lowest = RetryPolicy(rand=lambda: 0.0)
    highest = RetryPolicy(rand=lambda: 0.999)
    assert waits_of(lowest, [refused("1")]) == [1.0]
    assert waits_of(highest, [refused("1")]) == [pytest.approx(1.4995)]


def test_the_backoff_is_stretched_by_the_jitter() -> None:
    policy = RetryPolicy(backoff_seconds=0.25, jitter=0.5, rand=lambda: 0.5)
    assert waits_of(policy, [refused(), refused()]) == [pytest.approx(0.3125), pytest.approx(0.625)]


def test_a_fleet_told_the_same_retry_after_spreads_out() -> None:
    waits = [wait for _ in range(200) for wait in waits_of(RetryPolicy(), [refused("1")]) if wait is not None]
    assert len(waits) == 200
    assert all(1.0 <= wait < 1.5 for wait in waits)
    assert max(waits) - min(waits) > 0.3
    assert len(set(waits)) > 150


def test_the_jitter_never_takes_a_wait_past_the_budget() -> None:
    policy = RetryPolicy(budget_seconds=1.2, rand=lambda: 0.999)
    assert waits_of(policy, [refused("1")]) == [pytest.approx(1.2)]

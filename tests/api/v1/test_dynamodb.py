"""The API on DynamoDB when DynamoDB cannot serve: unreachable, silent, throttling, or an item too large."""

import socket
import time
from collections.abc import Iterator

import pytest

from core.dynamodb_client import DynamoDBServiceError
from devservers import free_port
from tests.conftest import AppClient
from tests.factories import read_body, write_body

pytestmark = pytest.mark.backends("dynamodb")

HANG_GUARD_SECONDS = 15
"""Far above the configured timeouts: only a call that ignores them can take this long."""


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port that accepts connections and never answers."""
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(64)
        yield listener.getsockname()[1]


FAST_FAILURE = {
    "dynamodb_connect_timeout_seconds": 0.3,
    "dynamodb_read_timeout_seconds": 0.3,
    "dynamodb_max_attempts": 2,
    "dynamodb_create_tables": False,
    "shutdown_flush_seconds": 0,
}


def assert_unavailable(response) -> None:
    assert response.status_code == 503, response.text
    assert response.json()["error"] == "store_unavailable"
    assert int(response.headers["retry-after"]) >= 1


def test_closed_endpoint_is_503(make_client) -> None:
    client = make_client(dynamodb_endpoint_url=f"http://127.0.0.1:{free_port()}", **FAST_FAILURE)
    assert client.get("/api/v1/health").status_code == 200
    for send in (
        lambda: client.get("/api/v1/get/item/user-1/user_features"),
        lambda: client.post("/api/v1/items", json=write_body()),
        lambda: client.post("/api/v1/get/items", json=read_body("user-1", "user_features:age", "credit_features:*")),
    ):
        started = time.monotonic()
        assert_unavailable(send())
        assert time.monotonic() - started < HANG_GUARD_SECONDS
    assert client.get("/api/v1/ready").status_code == 503


def test_silent_endpoint_is_503_within_the_timeout(make_client, silent_port: int) -> None:
    """A server that accepts and never answers: the read timeout, not the caller, ends the wait. A write this
    process knows nothing of starts with a read of the stored versions, so nothing was sent that could have
    been applied: `store_unavailable` (a transaction left unanswered is `outcome_unknown`: see
    tests/components/features/store/test_dynamodb_transactions.py and the outcome fault test)."""
    client = make_client(dynamodb_endpoint_url=f"http://127.0.0.1:{silent_port}", **FAST_FAILURE)
    started = time.monotonic()
    response = client.post("/api/v1/items", json=write_body())
    assert (response.status_code, response.json()["error"]) == (503, "store_unavailable"), response.text
    assert int(response.headers["retry-after"]) >= 1
    assert time.monotonic() - started < HANG_GUARD_SECONDS


def test_throttling_is_503_with_retry_after_and_writes_nothing(client: AppClient, monkeypatch) -> None:
    store = client.app.state.runtime.store
    client.run(store.initialise)
    dynamo = store.client

    async def throttled(**kwargs):
        raise DynamoDBServiceError(
            "x", 400, {"__type": "ProvisionedThroughputExceededException", "message": "slow down"}
        )

    with monkeypatch.context() as patch:
        for operation in ("transact_write_items", "get_item", "batch_get_item"):
            patch.setattr(dynamo, operation, throttled)
        assert_unavailable(client.post("/api/v1/items", json=write_body()))
        assert_unavailable(client.get("/api/v1/get/item/user-123/user_features"))
        assert_unavailable(
            client.post(
                "/api/v1/get/items/batch",
                json={
                    "meta": {"source": "ranker"},
                    "data": {"entity_values": ["user-1", "user-2"], "feature_list": ["user_features:*"]},
                },
            )
        )
    assert client.get("/api/v1/get/item/user-123/user_features").status_code == 404


def test_item_over_400_kb_is_413_and_nothing_is_written(client: AppClient) -> None:
    big = {f"f{index}": "x" * 60_000 for index in range(7)}
    response = client.post(
        "/api/v1/items", json=write_body(categories={"user_features": {"a": 1}, "credit_features": big})
    )
    assert response.status_code == 413, response.text
    assert response.json()["error"] == "payload_too_large"
    assert "credit_features" in response.json()["detail"]
    assert client.get("/api/v1/get/item/user-123/user_features").status_code == 404
    assert client.run(client.app.state.runtime.store.outbox_stats).pending == 0


def test_writes_are_capped_by_the_transaction_limit(make_client) -> None:
    categories = [f"c{index}" for index in range(60)]
    client = make_client(allowed_categories=",".join(categories), max_categories_per_write=60)
    response = client.post("/api/v1/items", json=write_body(categories={name: {"a": 1} for name in categories[:50]}))
    assert response.status_code == 422
    assert "at most 49 categories" in response.json()["detail"][0]["msg"]
    response = client.post("/api/v1/items", json=write_body(categories={name: {"a": 1} for name in categories[:49]}))
    assert response.status_code == 200
    assert len(response.json()["categories_updated"]) == 49

"""Freshness and ordering on every backend: TTL expiry at its boundary, out-of-order replays,
idempotent repeats, concurrent writers, and batch reads across DynamoDB's 100-key chunks."""

import asyncio
import random
from datetime import timedelta

import pytest

from components.features.records import CategoryInput, EntityInput, Provenance
from tests.conftest import AppClient
from tests.factories import CLOCK_START, read_body, write_body


def item(client: AppClient, entity_value: str = "user-123", category: str = "user_features"):
    return client.get(f"/api/v1/get/item/{entity_value}/{category}")


def test_expiry_at_the_boundary(client: AppClient, clock) -> None:
    assert client.post("/api/v1/items", json=write_body(ttl=60)).status_code == 200
    metadata = item(client).json()["features"]["metadata"]
    assert metadata["updated_at"] == "2026-03-01T12:00:00.250000+00:00"
    assert metadata["expires_at"] == "2026-03-01T12:01:00.250000+00:00"
    clock.now = (clock.start + timedelta(seconds=60) - timedelta(microseconds=1)).timestamp()
    assert item(client).status_code == 200
    many = client.post("/api/v1/get/items", json=read_body("user-123", "user_features:*")).json()
    assert list(many["items"]) == ["user_features"]
    clock.now = (clock.start + timedelta(seconds=60)).timestamp()
    assert item(client).status_code == 404
    many = client.post("/api/v1/get/items", json=read_body("user-123", "user_features:*")).json()
    assert (many["items"], many["unavailable_feature_categories"]) == ({}, ["user_features"])


def test_an_expired_category_blocks_nothing(client: AppClient, clock) -> None:
    client.post("/api/v1/items", json=write_body(ttl=1))
    clock.now += 5
    answer = client.post("/api/v1/items", json=write_body(categories={"user_features": {"age": 31}})).json()
    assert answer["categories_updated"] == ["user_features"]
    assert item(client).json()["features"]["data"] == {"age": 31}


def test_out_of_order_replay_ends_with_the_newest(client: AppClient) -> None:
    times = [CLOCK_START + timedelta(seconds=index) for index in range(100)]
    order = list(range(100))
    random.Random(7).shuffle(order)
    newest_so_far = -1
    for index in order:
        body = write_body(categories={"user_features": {"seq": index}}, event_time=times[index].isoformat())
        answer = client.post("/api/v1/items", json=body).json()
        if index >= newest_so_far:
            assert answer["categories_updated"] == ["user_features"], index
            newest_so_far = index
        else:
            assert (answer["categories_updated"], answer["categories_skipped"]) == ([], ["user_features"])
    stored = item(client).json()["features"]
    assert stored["data"] == {"seq": 99}
    assert stored["metadata"]["event_time"] == "2026-03-01T12:01:39.250000+00:00"


def test_repeating_a_write_is_idempotent(client: AppClient) -> None:
    body = write_body(categories={"user_features": {"age": 30}}, event_time=CLOCK_START.isoformat())
    first = client.post("/api/v1/items", json=body).json()
    second = client.post("/api/v1/items", json=body).json()
    assert first["categories_updated"] == second["categories_updated"] == ["user_features"]
    stored = item(client).json()["features"]
    assert stored["data"] == {"age": 30}
    assert stored["metadata"]["created_at"] == first["timestamp"]


def test_concurrent_out_of_order_writers_keep_the_newest(client: AppClient) -> None:
    runtime = client.app.state.runtime
    entity = runtime.settings.entity_types["bright_uid"]

    async def write(index: int) -> list[str]:
        provenance = Provenance("prediction_service", None, None, CLOCK_START + timedelta(seconds=index))
        categories = [CategoryInput("user_features", {"seq": index}, ())]
        outcome = await runtime.flows.write(entity, EntityInput("racer", categories, provenance))
        return outcome.categories_updated

    order = list(range(60))
    random.Random(3).shuffle(order)

    async def race() -> None:
        await asyncio.gather(*(write(index) for index in order))

    client.run(race)
    assert item(client, "racer").json()["features"]["data"] == {"seq": 59}


@pytest.mark.parametrize("count", [1, 100, 101, 250])
def test_batch_read_across_chunk_boundaries(client: AppClient, count: int) -> None:
    values = [f"entity-{index}" for index in range(count)]
    for value in values[::3]:
        client.post("/api/v1/items", json=write_body(value, {"user_features": {"id": value}}))
    body = {"data": {"entity_values": values, "feature_list": ["user_features:id", "credit_features:*"]}}
    response = client.post("/api/v1/get/items/batch", json=body)
    assert response.status_code == 200
    results = response.json()["results"]
    assert [result["entity_value"] for result in results] == values
    for index, result in enumerate(results):
        if index % 3 == 0:
            assert result["items"]["user_features"]["features"]["data"] == {"id": values[index]}
            assert result["unavailable_feature_categories"] == ["credit_features"]
        else:
            assert result["items"] == {}
            assert result["unavailable_feature_categories"] == ["credit_features", "user_features"]
        assert result["error"] is None

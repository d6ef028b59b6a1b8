"""Every method of both clients against the real app, on both storage backends."""

import asyncio
from datetime import UTC, datetime

import httpx
import pytest

from feature_store_client import (
    AsyncFeatureStoreClient,
    FeatureStoreClient,
    NotFound,
    ValidationError,
)
from tests.client.conftest import WRITER
from tests.conftest import AppClient


def test_every_method_round_trips(store_client: FeatureStoreClient) -> None:
    event_time = datetime(2025, 10, 13, 9, 15, 51, 358632, tzinfo=UTC)
    written = store_client.write(
        "user-1",
        {"user_features": {"age": 30, "city": "SF"}, "credit_features": {"credit_score": 750}},
        source=WRITER,
        compute_id="job-1",
        ttl=3600,
        event_time=event_time,
    )
    assert written.categories_updated == ["user_features", "credit_features"]
    assert written.categories_skipped == [] and written.timestamp.tzinfo is not None

    older = store_client.write("user-1", {"user_features": {"age": 1}}, source=WRITER, event_time="2020-01-01T00:00:00")
    assert older.categories_skipped == ["user_features"]

    category = store_client.read_category("user-1", "user_features")
    assert (category.entity_type, category.entity_value, category.category) == ("bright_uid", "user-1", "user_features")
    assert category.data == {"age": 30, "city": "SF"}
    assert category.metadata.event_time == event_time and category.metadata.compute_id == "job-1"
    assert category.metadata.ttl == 3600 and category.metadata.expires_at is not None

    features = store_client.read_features(
        "user-1", ["user_features:age", "credit_features:*", "transaction_features:*"]
    )
    assert features.values == {"user_features": {"age": 30}, "credit_features": {"credit_score": 750}}
    assert features.get("user_features:age") == 30
    assert features.unavailable_feature_categories == ["transaction_features"]

    batch = store_client.read_batch(["nobody", "user-1"], ["user_features:age"])
    assert [result.entity_value for result in batch.results] == ["nobody", "user-1"]
    assert batch.results[0].items == {} and batch.results[1].get("user_features:age") == 30

    assert (
        store_client.write("acct-1", {"user_features": {"age": 5}}, "account_id", source=WRITER).entity_type
        == "account_id"
    )
    assert store_client.read_category("acct-1", "user_features", "account_id").entity_value == "acct-1"

    registry = store_client.registry()
    assert "user_features" in registry.categories and registry.etag
    assert store_client.registry_category("user_features").mode == "open"
    assert store_client.ready().ready
    assert store_client.limits().max_batch_entities == 1000

    with pytest.raises(NotFound):
        store_client.read_category("user-1", "transaction_features")
    with pytest.raises(ValidationError) as refused:
        store_client.read_category("user-1", "user_features", "no_such_type")
    assert refused.value.errors and refused.value.status_code == 422


@pytest.mark.backends("sqlite")
def test_an_entity_value_with_reserved_characters_round_trips(store_client: FeatureStoreClient) -> None:
    value = "a b?c#d%e&é"
    store_client.write(value, {"user_features": {"age": 1}}, source=WRITER)
    assert store_client.read_category(value, "user_features").entity_value == value


def test_the_async_client_does_the_same(client: AppClient) -> None:
    async def scenario() -> None:
        transport = httpx.ASGITransport(app=client.app)
        async with AsyncFeatureStoreClient("http://app", transport=transport) as store:
            written = await store.write("user-2", {"user_features": {"age": 41}}, source=WRITER)
            assert written.categories_updated == ["user_features"]
            assert (await store.read_category("user-2", "user_features")).data == {"age": 41}
            features = await store.read_features("user-2", ["user_features:*"])
            assert features.values == {"user_features": {"age": 41}}
            batch = await store.read_batch(["user-2", "nobody"], ["user_features:age"])
            assert [result.entity_value for result in batch.results] == ["user-2", "nobody"]
            assert "user_features" in (await store.registry()).categories
            assert (await store.registry_category("user_features")).features == {}
            assert (await store.ready()).ready
            assert (await store.limits()).max_feature_list == 1000
            with pytest.raises(NotFound):
                await store.read_category("nobody", "user_features")

    asyncio.run(scenario())


@pytest.mark.backends("sqlite")
def test_the_async_client_over_a_socket(start_service) -> None:
    server = start_service()

    async def scenario() -> None:
        async with AsyncFeatureStoreClient(server.url) as store:
            await store.write("user-3", {"user_features": {"age": 7}}, source=WRITER)
            assert (await store.read_features("user-3", ["user_features:age"])).get("user_features:age") == 7

    asyncio.run(scenario())

"""Every method of both clients against the real app, on both storage backends (over a real socket and
in-process)."""

import asyncio
from datetime import UTC, datetime

import httpx
import pytest

from feature_store_client import (
    AsyncFeatureStoreClient,
    EntityWrite,
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


RESERVED_VALUES = ["a b?c#d%e&é", "a/b", "/", "100%", "%2F", "q?x", "h#1", "sp ace", "ünï/码", "😀", ".", "..", "./.."]


@pytest.mark.backends("sqlite")
def test_an_entity_value_with_reserved_characters_is_read_and_erased_by_path(store_client: FeatureStoreClient) -> None:
    for value in RESERVED_VALUES:
        store_client.write(value, {"user_features": {"age": 1}}, source=WRITER)
        assert store_client.read_category(value, "user_features").entity_value == value, value
        assert store_client.delete(value).categories_deleted == ["user_features"], value
        with pytest.raises(NotFound):
            store_client.read_category(value, "user_features")


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


def test_write_batch_and_delete(store_client: FeatureStoreClient) -> None:
    older = "2020-01-01T00:00:00+00:00"
    store_client.write("user-b3", {"user_features": {"age": 9}}, source=WRITER, event_time="2024-01-01T00:00:00Z")
    result = store_client.write_batch(
        [
            EntityWrite("user-b1", {"user_features": {"age": 30}, "credit_features": {"credit_score": 750}}),
            {"entity_value": "user-b2", "categories": {"made_up": {"x": 1}}},
            {"entity_value": "user-b3", "feature_list": [{"category": "user_features", "features": {"age": 1}}]},
            {"entity_value": "user-b4", "categories": {"user_features": {"bad name": 1}}},
            EntityWrite("user-b5", {"user_features": {"age": 5}}, compute_id="own-job"),
        ],
        source=WRITER,
        compute_id="job-b",
        event_time=older,
    )
    assert [entity.entity_value for entity in result.results] == ["user-b1", "user-b2", "user-b3", "user-b4", "user-b5"]
    assert (result.entity_type, result.written, result.failed) == ("bright_uid", 3, 2)
    assert result.results[0].categories_updated == ["user_features", "credit_features"]
    assert result.results[2].categories_skipped == ["user_features"], "older than what is stored"
    refused = [result.results[1].error, result.results[3].error]  # a category not allowed; a name it cannot read
    assert [error.error if error else None for error in refused] == ["validation_error", "validation_error"]
    assert store_client.read_category("user-b1", "credit_features").metadata.compute_id == "job-b"
    assert store_client.read_category("user-b5", "user_features").metadata.compute_id == "own-job"
    assert store_client.read_category("user-b3", "user_features").data == {"age": 9}
    with pytest.raises(NotFound):
        store_client.read_category("user-b4", "user_features")

    deleted = store_client.delete("user-b1", ["credit_features"])
    assert (deleted.entity_value, deleted.entity_type, deleted.categories_deleted) == (
        "user-b1",
        "bright_uid",
        ["credit_features"],
    )
    assert deleted.timestamp.tzinfo is not None
    with pytest.raises(NotFound):
        store_client.read_category("user-b1", "credit_features")
    assert store_client.read_category("user-b1", "user_features").data == {"age": 30}
    assert store_client.delete("user-b1").categories_deleted == ["user_features"]
    assert store_client.delete("nobody").categories_deleted == []
    assert store_client.write(
        "user-b1", {"user_features": {"age": 1}}, source=WRITER, event_time=older
    ).categories_skipped == ["user_features"], "the deletion is newer: an older write cannot bring the data back"
    with pytest.raises(ValidationError):
        store_client.delete("user-b1", ["user_features"], "no_such_type")


@pytest.mark.backends("sqlite")
def test_write_batch_splits_at_the_published_maximum(start_service) -> None:
    server = start_service(MAX_BATCH_WRITE_ENTITIES="2")
    parts: list[tuple[int, int]] = []
    with FeatureStoreClient(server.url) as store:
        assert store.limits().max_batch_write_entities == 2
        entities = [
            {"entity_value": f"user-s{index}", "categories": {"user_features": {"n": index}}} for index in range(5)
        ]
        entities[3]["categories"] = {"user_features": {"bad name": 1}}
        result = store.write_batch(entities, source=WRITER, on_part=lambda done, failed: parts.append((done, failed)))
        assert sorted(parts) == [(1, 0), (2, 0), (2, 1)]
        assert [entity.ok for entity in result.results] == [True, True, True, False, True]
        assert [store.read_category(f"user-s{index}", "user_features").data for index in (0, 4)] == [{"n": 0}, {"n": 4}]


def test_the_async_client_writes_batches_and_deletes(client: AppClient) -> None:
    async def scenario() -> None:
        transport = httpx.ASGITransport(app=client.app)
        async with AsyncFeatureStoreClient("http://app", transport=transport) as store:
            result = await store.write_batch(
                [EntityWrite("user-a1", {"user_features": {"age": 1}}), EntityWrite("user-a2", {"nope": {"x": 1}})],
                source=WRITER,
            )
            assert (result.written, result.failed) == (1, 1)
            assert result.failures[0].entity_value == "user-a2"
            assert (await store.delete("user-a1", ["user_features"])).categories_deleted == ["user_features"]
            with pytest.raises(NotFound):
                await store.read_category("user-a1", "user_features")

    asyncio.run(scenario())

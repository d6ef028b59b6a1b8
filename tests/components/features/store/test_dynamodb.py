"""DynamoDB specifics beyond the shared contract, against a real Dynoxide server: item layout,
100-key chunks, unprocessed keys, projections, atomic transactions, concurrency, limits and errors."""

import asyncio
from typing import Any

import pytest

from components.features.store import create_store
from components.features.store.dynamodb import DynamoDBStore, create_tables
from core.dynamodb_client import DynamoDBClient, DynamoDBServiceError, get_client
from core.exceptions import FeatureStoreError, OutcomeUnknown, PayloadTooLarge, StoreUnavailable
from core.settings import Settings
from tests.components.features.store.conftest import client_error, spy, spy_operations
from tests.conftest import DYNAMODB_EMULATORS
from tests.factories import LATER, NOW, make_write

pytestmark = [pytest.mark.anyio, pytest.mark.backends(*DYNAMODB_EMULATORS)]


def dynamodb_store(settings: Settings) -> DynamoDBStore:
    """`create_store`, which these settings must point at DynamoDB."""
    store = create_store(settings)
    assert isinstance(store, DynamoDBStore)
    return store


async def test_item_layout_is_the_designed_one(store: DynamoDBStore, dynamo: DynamoDBClient, user) -> None:
    await store.write(user, "user-1", [make_write("user_features", {"age": 30}, expires_at=1_900_000_000.25)], NOW)
    item = (
        await dynamo.get_item(
            TableName=user.table, Key={"bright_uid": {"S": "user-1"}, "category": {"S": "user_features"}}
        )
    )["Item"]
    assert set(item) == {"bright_uid", "category", "features", "event_time", "expires_at", "last_event"}
    assert item["features"]["M"]["data"] == {"M": {"age": {"N": "30"}}}
    metadata = item["features"]["M"]["metadata"]["M"]
    assert metadata["created_at"] == {"S": NOW}
    assert metadata["version"] == {"N": "1"}
    assert metadata["source"] == {"S": "prediction_service"}
    assert metadata["ttl"] == {"NULL": True}
    assert float(item["expires_at"]["N"]) == 1_900_000_000.25
    ttl = (await dynamo.call("DescribeTimeToLive", {"TableName": user.table}))["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at"
    assert ttl["TimeToLiveStatus"] in ("ENABLED", "ENABLING")


async def test_items_without_event_time_are_overwritten_and_keep_created_at(
    store: DynamoDBStore, dynamo: DynamoDBClient, user
) -> None:
    """Items written before `event_time` existed (only the designed features map) stay writable."""
    await dynamo.put_item(
        TableName=user.table,
        Item={
            "bright_uid": {"S": "old"},
            "category": {"S": "user_features"},
            "features": {
                "M": {"data": {"M": {"age": {"N": "30"}}}, "metadata": {"M": {"created_at": {"S": "2024-01-01"}}}}
            },
        },
    )
    assert (await store.read(user, "old", {"user_features": None}))["user_features"].data == {"age": 30}
    assert await store.write(user, "old", [make_write("user_features", {"age": 31})], NOW) == []
    found = (await store.read(user, "old", {"user_features": None}))["user_features"]
    assert found.data == {"age": 31}
    assert found.metadata["created_at"] == "2024-01-01"


async def test_a_write_without_expiry_clears_it(store: DynamoDBStore, user) -> None:
    await store.write(user, "user-1", [make_write("user_features", {"a": 1}, expires_at=1_900_000_000.0)], NOW)
    await store.write(user, "user-1", [make_write("user_features", {"a": 2}, event_time=LATER)], LATER)
    assert (await store.read(user, "user-1", {"user_features": None}))["user_features"].expires_at_epoch is None


async def test_table_creation_is_idempotent(store: DynamoDBStore, settings: Settings) -> None:
    assert await create_tables(store.client, settings) == []


async def test_numbers_outside_dynamodbs_range_round_trip(store: DynamoDBStore, user) -> None:
    data = {"tiny": 1e-300, "huge": 1.5e300, "negative_tiny": -5e-324, "edge": 1e-130, "list": [1e200, {"x": 2e-200}]}
    await store.write(user, "user-1", [make_write("user_features", data)], NOW)
    assert (await store.read(user, "user-1", {"user_features": None}))["user_features"].data == data


async def test_empty_strings_lists_and_maps(store: DynamoDBStore, user) -> None:
    data = {"empty": "", "list": [], "map": {}, "nested": {"x": [[], {}], "y": {"z": ""}}}
    await store.write(user, "user-1", [make_write("user_features", data)], NOW)
    assert (await store.read(user, "user-1", {"user_features": None}))["user_features"].data == data


@pytest.mark.backends("dynamodb")
async def test_an_empty_object_key(store: DynamoDBStore, user) -> None:
    """DynamoDB (and Dynoxide) keep a map entry whose key is the empty string. Not run on moto 5.2,
    which answers `{"M": {"": {"S": ""}, "x": ...}}` as `{"M": {"S": "", "x": ...}}`, a different map."""
    data = {"nested": {"": "", "x": [[], {}]}}
    await store.write(user, "user-1", [make_write("user_features", data)], NOW)
    assert (await store.read(user, "user-1", {"user_features": None}))["user_features"].data == data


async def test_batch_read_fetches_at_most_100_keys_per_call(
    store: DynamoDBStore, dynamo: DynamoDBClient, user, monkeypatch
) -> None:
    values = [f"user-{index}" for index in range(150)]
    for value in values[:3]:
        await store.write(
            user, value, [make_write("user_features", {"id": value}), make_write("credit_features", {"v": 1})], NOW
        )
    calls = spy(monkeypatch, dynamo, "batch_get_item")
    batch = await store.read_batch(user, values, {"user_features": None, "credit_features": None})
    assert sorted(len(call["RequestItems"][user.table]["Keys"]) for call in calls) == [100, 100, 100]
    assert set(batch.found) == set(values[:3])
    assert batch.found["user-2"]["user_features"].data == {"id": "user-2"}
    assert not batch.failed


async def test_unprocessed_keys_are_retried(store: DynamoDBStore, dynamo: DynamoDBClient, user, monkeypatch) -> None:
    """DynamoDB may answer part of a batch; the rest comes back as UnprocessedKeys to ask again."""
    values = [f"user-{index}" for index in range(6)]
    for value in values:
        await store.write(user, value, [make_write("user_features", {"id": value})], NOW)
    real = dynamo.batch_get_item

    async def first_half_only(call: int, kwargs: dict) -> dict | None:
        if call > 1:
            return None
        request = kwargs["RequestItems"][user.table]
        keys = request["Keys"]
        answer = await real(RequestItems={user.table: {**request, "Keys": keys[:3]}})
        answer["UnprocessedKeys"] = {user.table: {**request, "Keys": keys[3:]}}
        return answer

    calls = spy(monkeypatch, dynamo, "batch_get_item", first_half_only)
    batch = await store.read_batch(user, values, {"user_features": None})
    assert len(calls) == 2
    assert len(calls[1]["RequestItems"][user.table]["Keys"]) == 3
    assert set(batch.found) == set(values)
    assert not batch.failed


async def test_keys_unprocessed_past_the_deadline_are_reported_failed(make_settings, user, monkeypatch) -> None:
    store = dynamodb_store(make_settings(dynamodb_read_deadline_seconds=0.2))
    for value in ("ok", "stuck"):
        await store.write(user, value, [make_write("user_features", {"id": value})], NOW)
    real = store.client.batch_get_item
    table = user.table

    async def never_stuck(call: int, kwargs: dict) -> dict:
        request = kwargs["RequestItems"][table]
        stuck = [key for key in request["Keys"] if key["bright_uid"]["S"] == "stuck"]
        rest = [key for key in request["Keys"] if key not in stuck]
        answer = await real(RequestItems={table: {**request, "Keys": rest}}) if rest else {"Responses": {table: []}}
        answer["UnprocessedKeys"] = {table: {**request, "Keys": stuck}}
        return answer

    calls = spy(monkeypatch, store.client, "batch_get_item", never_stuck)
    batch = await store.read_batch(user, ["ok", "stuck"], {"user_features": None})
    assert batch.failed == {"stuck"}
    assert set(batch.found) == {"ok"}
    assert len(calls) > 1, "unprocessed keys were not retried before the deadline"
    with pytest.raises(StoreUnavailable):
        await store.read(user, "stuck", {"user_features": None, "credit_features": None})
    await store.close()


async def test_projection_fetches_only_wanted_features(
    store: DynamoDBStore, dynamo: DynamoDBClient, user, monkeypatch
) -> None:
    await store.write(user, "user-1", [make_write("user_features", {"a": 1, "b.x": 2, "c-y": 3})], NOW)
    calls = spy(monkeypatch, dynamo, "get_item")
    found = (await store.read(user, "user-1", {"user_features": frozenset({"b.x", "missing"})}))["user_features"]
    assert "ProjectionExpression" in calls[0]
    assert found.data == {"b.x": 2}
    assert found.metadata["created_at"] == NOW
    many = frozenset(f"f{index}" for index in range(150)) | {"a"}
    found = (await store.read(user, "user-1", {"user_features": many}))["user_features"]
    assert "ProjectionExpression" not in calls[1], "a projection this long would pass DynamoDB's expression limit"
    assert found.data["a"] == 1


async def test_reads_are_eventually_consistent_unless_configured(make_settings, user, monkeypatch) -> None:
    for consistent in (False, True):
        store = dynamodb_store(make_settings(dynamodb_consistent_reads=consistent))
        await store.initialise()
        calls = spy(monkeypatch, store.client, "get_item")
        await store.read(user, "user-1", {"user_features": None})
        assert calls[0]["ConsistentRead"] is consistent
        await store.close()


async def test_one_invalid_category_writes_nothing(store: DynamoDBStore, user) -> None:
    """An empty sort key is refused by DynamoDB: the whole transaction must fail, events too, and the
    refusal is the service's error for a rejected call (500), not an outage."""
    writes = [make_write("user_features", {"ok": 1}), make_write("", {"b": 2})]
    with pytest.raises(FeatureStoreError) as caught:
        await store.write(user, "user-1", writes, NOW)
    assert type(caught.value) is FeatureStoreError
    assert await store.read(user, "user-1", {"user_features": None}) == {}
    assert (await store.outbox_stats()).pending == 0


@pytest.mark.backends("dynamodb")
async def test_nesting_past_dynamodbs_limit_writes_nothing(store: DynamoDBStore, user) -> None:
    """DynamoDB refuses nesting deeper than 32 levels: the whole transaction must fail, events too.
    Not run on moto 5.2, which stores any depth."""
    deep: Any = 1
    for _ in range(40):
        deep = [deep]
    writes = [make_write("user_features", {"ok": 1}), make_write("credit_features", {"deep": deep})]
    with pytest.raises(FeatureStoreError):
        await store.write(user, "user-1", writes, NOW)
    assert await store.read(user, "user-1", {"user_features": None, "credit_features": None}) == {}
    assert (await store.outbox_stats()).pending == 0


async def test_item_over_400_kb_is_refused_before_any_call(
    store: DynamoDBStore, dynamo: DynamoDBClient, user, monkeypatch
) -> None:
    calls = spy(monkeypatch, dynamo, "transact_write_items")
    writes = [
        make_write("user_features", {"a": 1}),
        make_write("credit_features", {f"f{i}": "x" * 60_000 for i in range(7)}),
    ]
    with pytest.raises(PayloadTooLarge, match="credit_features"):
        await store.write(user, "user-1", writes, NOW)
    assert calls == []
    await store.write(user, "user-1", [make_write("credit_features", {f"f{i}": "x" * 60_000 for i in range(6)})], NOW)


async def test_transaction_over_4_mb_is_refused_before_any_call(
    store: DynamoDBStore, dynamo: DynamoDBClient, user, monkeypatch
) -> None:
    calls = spy(monkeypatch, dynamo, "transact_write_items")
    writes = [make_write(f"c{index}", {f"f{i}": "x" * 60_000 for i in range(6)}) for index in range(12)]
    with pytest.raises(PayloadTooLarge, match="commits at most"):
        await store.write(user, "user-1", writes, NOW)
    assert calls == []


ISOLATED = pytest.mark.backends("dynamodb")
"""Races between concurrent calls run on Dynoxide only: moto's server answers concurrent requests on
threads, and its in-memory backend does not isolate them as DynamoDB isolates transactions and
conditional writes (seen: ten concurrent first writes, each acknowledged, leaving nine outbox events)."""


@ISOLATED
async def test_concurrent_upserts_keep_created_at(store: DynamoDBStore, user) -> None:
    await store.write(user, "hot", [make_write("user_features", {"writer": -1})], NOW)
    await store.delete_events([event.event_id for event in await store.claim_events(10, 30)])
    writes = [make_write("user_features", {"writer": index}, event_time=LATER, updated_at=LATER) for index in range(20)]
    skipped = await asyncio.gather(*(store.write(user, "hot", [write], LATER) for write in writes))
    assert skipped == [[]] * 20
    found = (await store.read(user, "hot", {"user_features": None}))["user_features"]
    assert found.metadata["created_at"] == NOW
    assert found.metadata["updated_at"] == LATER
    assert found.data in [write.data for write in writes]
    assert (await store.outbox_stats()).pending == 20


@ISOLATED
async def test_concurrent_first_writes_create_the_item_once(store: DynamoDBStore, user) -> None:
    """Writers racing to create a category: one creates it, the others find it and update it."""
    writes = [make_write("user_features", {"writer": index}) for index in range(10)]
    skipped = await asyncio.gather(
        *(store.write(user, "new", [writes[index]], f"2026-01-01T00:00:00.{index:06d}+00:00") for index in range(10))
    )
    assert skipped == [[]] * 10
    found = (await store.read(user, "new", {"user_features": None}))["user_features"]
    assert found.metadata["created_at"].startswith("2026-01-01T00:00:00.0000")
    assert (await store.outbox_stats()).pending == 10


@ISOLATED
async def test_two_replicas_never_claim_the_same_event(make_settings, settings: Settings, user) -> None:
    first, second = dynamodb_store(settings), dynamodb_store(settings)
    for index in range(60):
        await first.write(user, f"user-{index}", [make_write("user_features", {"i": index})], NOW)
    claimed: dict[str, list[str]] = {"first": [], "second": []}

    async def drain(name: str, store: DynamoDBStore) -> None:
        while events := await store.claim_events(7, lease_seconds=60):
            claimed[name] += [event.event_id for event in events]

    await asyncio.gather(drain("first", first), drain("second", second))
    everything = claimed["first"] + claimed["second"]
    assert len(everything) == len(set(everything)) == 60
    await first.close()
    await second.close()


async def test_conflicting_transactions_are_retried(
    store: DynamoDBStore, dynamo: DynamoDBClient, user, monkeypatch
) -> None:
    async def conflict_once(call: int, kwargs: dict) -> None:
        if call == 1:
            reasons = [{"Code": "TransactionConflict"}, {"Code": "None"}]
            raise client_error("TransactionCanceledException", "TransactWriteItems", CancellationReasons=reasons)

    calls = spy(monkeypatch, dynamo, "transact_write_items", conflict_once)
    assert await store.write(user, "user-1", [make_write("user_features", {"a": 1})], NOW) == []
    assert len(calls) == 2, "a conflict, then the create form again"
    assert (await store.read(user, "user-1", {"user_features": None}))["user_features"].data == {"a": 1}


@pytest.mark.parametrize(
    "error",
    [
        client_error("ProvisionedThroughputExceededException", "TransactWriteItems"),
        client_error("ThrottlingException", "TransactWriteItems"),
        client_error(
            "TransactionCanceledException",
            "TransactWriteItems",
            CancellationReasons=[{"Code": "ThrottlingError"}, {"Code": "None"}],
        ),
    ],
)
async def test_throttled_write_is_unavailable(
    store: DynamoDBStore, dynamo: DynamoDBClient, user, monkeypatch, error
) -> None:
    async def throttle(call: int, kwargs: dict) -> None:
        raise error

    spy(monkeypatch, dynamo, "transact_write_items", throttle)
    with pytest.raises(StoreUnavailable) as caught:
        await store.write(user, "user-1", [make_write("user_features", {"a": 1})], NOW)
    assert caught.value.retry_after >= 1


async def test_check_fails_when_tables_are_missing(make_settings) -> None:
    store = dynamodb_store(make_settings(dynamodb_create_tables=False))
    assert await store.initialise() == [f"DynamoDB client ready ({store.settings.dynamodb_endpoint_url})"]
    with pytest.raises(StoreUnavailable) as caught:
        await store.check()
    assert caught.value.message == "DynamoDB could not serve the request", "DynamoDB's own words stay in the log"
    await store.close()


async def test_stores_share_one_client(make_settings) -> None:
    stores = [dynamodb_store(make_settings()) for _ in range(3)]
    for store in stores:
        await store.initialise()
    assert len({id(store.client) for store in stores}) == 1
    assert stores[0].client is get_client(stores[0].settings)
    for store in stores:
        await store.close()


async def test_claims_read_the_due_index_not_the_whole_outbox(
    store: DynamoDBStore, dynamo: DynamoDBClient, user, monkeypatch
) -> None:
    """However long the outbox grows (a Kafka outage), a claim reads about `limit` items per shard."""
    writes = [make_write("user_features", {"i": index}) for index in range(40)]
    for index, write in enumerate(writes):
        await store.write(user, f"user-{index}", [write], NOW)
    queries = spy(monkeypatch, dynamo, "query")
    operations = spy_operations(monkeypatch, dynamo)
    claimed = await store.claim_events(5, lease_seconds=30)
    assert [event.event_id for event in claimed] == [write.event.event_id for write in writes[:5]], "soonest due first"
    assert all(query["IndexName"] == "due" and query["Limit"] == 5 for query in queries)
    await store.retry_events([claimed[0].event_id], delay_seconds=60, count_attempt=True)
    again = await store.claim_events(40, lease_seconds=30)
    assert claimed[0].event_id not in {event.event_id for event in again}, "a retried event waits for its due time"
    assert len(again) == 35
    assert "Scan" not in operations, "a claim scanned the outbox"


async def test_check_makes_one_attempt_per_call_and_probes_writes(
    store: DynamoDBStore, dynamo: DynamoDBClient, user, monkeypatch
) -> None:
    """DynamoDB failing (500s): the check gives up after one attempt of each call, where a write spends
    the retry budget (and, answered 500 each time, may have been applied: its outcome is unknown); the failed
    write makes the store unwritable until the check's write probe passes."""
    real = dynamo._attempt
    sent: list[str] = []

    async def failing(operation: str, body: bytes) -> dict[str, Any]:
        sent.append(operation)
        if operation == "BatchGetItem":
            return await real(operation, body)
        raise DynamoDBServiceError(operation, 500, {"__type": "InternalServerError", "message": "boom"})

    monkeypatch.setattr(dynamo, "_attempt", failing)
    with pytest.raises(OutcomeUnknown):
        await store.write(user, "user-1", [make_write("user_features", {"a": 1})], NOW)
    assert sent.count("TransactWriteItems") == dynamo.retry_policy.max_attempts > 1
    assert store.writable is False
    sent.clear()
    with pytest.raises(StoreUnavailable) as caught:
        await store.check()
    assert caught.value.message == "DynamoDB could not serve the request"
    tables = len({entity.table for entity in store.settings.entity_types.values()}) + 1
    assert sorted(sent) == ["BatchWriteItem"] + ["DescribeTable"] * tables, "one attempt each"
    assert store.writable is False
    monkeypatch.setattr(dynamo, "_attempt", real)
    await store.check()
    assert store.writable is True
    assert (await store.outbox_stats()).pending == 0, "the write probe leaves nothing behind"

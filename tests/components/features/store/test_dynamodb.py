"""DynamoDB specifics beyond the shared contract, against a real Dynoxide server: item layout,
100-key chunks, unprocessed keys, projections, atomic transactions, concurrency, limits and errors."""

import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import pytest
from botocore.exceptions import ClientError

from components.features.store import create_store
from components.features.store.dynamodb import DynamoDBStore, create_tables
from core.dynamodb import get_client
from core.exceptions import FeatureStoreError, PayloadTooLarge, StoreUnavailable
from core.settings import Settings
from tests.factories import LATER, NOW, make_write

pytestmark = pytest.mark.backends("dynamodb")


def dynamodb_store(settings: Settings) -> DynamoDBStore:
    """`create_store`, which these settings must point at DynamoDB."""
    store = create_store(settings)
    assert isinstance(store, DynamoDBStore)
    return store


@pytest.fixture
def user(settings: Settings):
    return settings.entity_types["bright_uid"]


@pytest.fixture
def dynamo(store: DynamoDBStore) -> Any:
    return store.client


def spy(
    monkeypatch: pytest.MonkeyPatch, client: Any, operation: str, before: Callable[..., Any] | None = None
) -> list[dict]:
    """Record each call's arguments; `before(call_number, kwargs)` may answer instead of the server."""
    calls: list[dict] = []
    real = getattr(client, operation)

    def wrapper(**kwargs: Any) -> Any:
        calls.append(kwargs)
        if before is not None:
            answer = before(len(calls), kwargs)
            if answer is not None:
                return answer
        return real(**kwargs)

    monkeypatch.setattr(client, operation, wrapper)
    return calls


def client_error(code: str, operation: str, **extra: Any) -> ClientError:
    return ClientError({"Error": {"Code": code, "Message": f"{code} for the test"}, **extra}, operation)


def test_item_layout_is_the_designed_one(store: DynamoDBStore, dynamo: Any, user) -> None:
    store.write(user, "user-1", [make_write("user_features", {"age": 30}, expires_at=1_900_000_000.25)], NOW)
    item = dynamo.get_item(
        TableName=user.table, Key={"bright_uid": {"S": "user-1"}, "category": {"S": "user_features"}}
    )["Item"]
    assert set(item) == {"bright_uid", "category", "features", "event_time", "expires_at"}
    assert item["features"]["M"]["data"] == {"M": {"age": {"N": "30"}}}
    metadata = item["features"]["M"]["metadata"]["M"]
    assert metadata["created_at"] == {"S": NOW}
    assert metadata["source"] == {"S": "prediction_service"}
    assert metadata["ttl"] == {"NULL": True}
    assert float(item["expires_at"]["N"]) == 1_900_000_000.25
    ttl = dynamo.describe_time_to_live(TableName=user.table)["TimeToLiveDescription"]
    assert ttl["AttributeName"] == "expires_at"
    assert ttl["TimeToLiveStatus"] in ("ENABLED", "ENABLING")


def test_items_without_event_time_are_overwritten_and_keep_created_at(store: DynamoDBStore, dynamo: Any, user) -> None:
    """Items written before `event_time` existed (only the designed features map) stay writable."""
    dynamo.put_item(
        TableName=user.table,
        Item={
            "bright_uid": {"S": "old"},
            "category": {"S": "user_features"},
            "features": {
                "M": {"data": {"M": {"age": {"N": "30"}}}, "metadata": {"M": {"created_at": {"S": "2024-01-01"}}}}
            },
        },
    )
    assert store.read(user, "old", {"user_features": None})["user_features"].data == {"age": 30}
    assert store.write(user, "old", [make_write("user_features", {"age": 31})], NOW) == []
    found = store.read(user, "old", {"user_features": None})["user_features"]
    assert found.data == {"age": 31}
    assert found.metadata["created_at"] == "2024-01-01"


def test_a_write_without_expiry_clears_it(store: DynamoDBStore, user) -> None:
    store.write(user, "user-1", [make_write("user_features", {"a": 1}, expires_at=1_900_000_000.0)], NOW)
    store.write(user, "user-1", [make_write("user_features", {"a": 2}, event_time=LATER)], LATER)
    assert store.read(user, "user-1", {"user_features": None})["user_features"].expires_at_epoch is None


def test_table_creation_is_idempotent(store: DynamoDBStore, settings: Settings) -> None:
    assert create_tables(store.client, settings) == []


def test_numbers_outside_dynamodbs_range_round_trip(store: DynamoDBStore, user) -> None:
    data = {"tiny": 1e-300, "huge": 1.5e300, "negative_tiny": -5e-324, "edge": 1e-130, "list": [1e200, {"x": 2e-200}]}
    store.write(user, "user-1", [make_write("user_features", data)], NOW)
    assert store.read(user, "user-1", {"user_features": None})["user_features"].data == data


def test_empty_strings_lists_maps_and_keys(store: DynamoDBStore, user) -> None:
    data = {"empty": "", "list": [], "map": {}, "nested": {"": "", "x": [[], {}]}}
    store.write(user, "user-1", [make_write("user_features", data)], NOW)
    assert store.read(user, "user-1", {"user_features": None})["user_features"].data == data


def test_batch_read_fetches_at_most_100_keys_per_call(store: DynamoDBStore, dynamo: Any, user, monkeypatch) -> None:
    values = [f"user-{index}" for index in range(150)]
    for value in values[:3]:
        store.write(
            user, value, [make_write("user_features", {"id": value}), make_write("credit_features", {"v": 1})], NOW
        )
    calls = spy(monkeypatch, dynamo, "batch_get_item")
    batch = store.read_batch(user, values, {"user_features": None, "credit_features": None})
    assert sorted(len(call["RequestItems"][user.table]["Keys"]) for call in calls) == [100, 100, 100]
    assert set(batch.found) == set(values[:3])
    assert batch.found["user-2"]["user_features"].data == {"id": "user-2"}
    assert not batch.failed


def test_unprocessed_keys_are_retried(store: DynamoDBStore, dynamo: Any, user, monkeypatch) -> None:
    """DynamoDB may answer part of a batch; the rest comes back as UnprocessedKeys to ask again."""
    values = [f"user-{index}" for index in range(6)]
    for value in values:
        store.write(user, value, [make_write("user_features", {"id": value})], NOW)
    real = dynamo.batch_get_item

    def first_half_only(call: int, kwargs: dict) -> dict | None:
        if call > 1:
            return None
        request = kwargs["RequestItems"][user.table]
        keys = request["Keys"]
        answer = real(RequestItems={user.table: {**request, "Keys": keys[:3]}})
        answer["UnprocessedKeys"] = {user.table: {**request, "Keys": keys[3:]}}
        return answer

    calls = spy(monkeypatch, dynamo, "batch_get_item", first_half_only)
    batch = store.read_batch(user, values, {"user_features": None})
    assert len(calls) == 2
    assert len(calls[1]["RequestItems"][user.table]["Keys"]) == 3
    assert set(batch.found) == set(values)
    assert not batch.failed


def test_keys_unprocessed_past_the_deadline_are_reported_failed(make_settings, user, monkeypatch) -> None:
    store = dynamodb_store(make_settings(dynamodb_read_deadline_seconds=0.2))
    for value in ("ok", "stuck"):
        store.write(user, value, [make_write("user_features", {"id": value})], NOW)
    real = store.client.batch_get_item
    table = user.table

    def never_stuck(call: int, kwargs: dict) -> dict:
        request = kwargs["RequestItems"][table]
        stuck = [key for key in request["Keys"] if key["bright_uid"]["S"] == "stuck"]
        rest = [key for key in request["Keys"] if key not in stuck]
        answer = real(RequestItems={table: {**request, "Keys": rest}}) if rest else {"Responses": {table: []}}
        answer["UnprocessedKeys"] = {table: {**request, "Keys": stuck}}
        return answer

    calls = spy(monkeypatch, store.client, "batch_get_item", never_stuck)
    batch = store.read_batch(user, ["ok", "stuck"], {"user_features": None})
    assert batch.failed == {"stuck"}
    assert set(batch.found) == {"ok"}
    assert len(calls) > 1, "unprocessed keys were not retried before the deadline"
    with pytest.raises(StoreUnavailable):
        store.read(user, "stuck", {"user_features": None, "credit_features": None})
    store.close()


def test_projection_fetches_only_wanted_features(store: DynamoDBStore, dynamo: Any, user, monkeypatch) -> None:
    store.write(user, "user-1", [make_write("user_features", {"a": 1, "b.x": 2, "c-y": 3})], NOW)
    calls = spy(monkeypatch, dynamo, "get_item")
    found = store.read(user, "user-1", {"user_features": frozenset({"b.x", "missing"})})["user_features"]
    assert "ProjectionExpression" in calls[0]
    assert found.data == {"b.x": 2}
    assert found.metadata["created_at"] == NOW
    many = frozenset(f"f{index}" for index in range(150)) | {"a"}
    found = store.read(user, "user-1", {"user_features": many})["user_features"]
    assert "ProjectionExpression" not in calls[1], "a projection this long would pass DynamoDB's expression limit"
    assert found.data["a"] == 1


def test_reads_are_eventually_consistent_unless_configured(make_settings, user, monkeypatch) -> None:
    for consistent in (False, True):
        store = dynamodb_store(make_settings(dynamodb_consistent_reads=consistent))
        calls = spy(monkeypatch, store.client, "get_item")
        store.read(user, "user-1", {"user_features": None})
        assert calls[0]["ConsistentRead"] is consistent
        store.close()


def test_one_invalid_category_writes_nothing(store: DynamoDBStore, user) -> None:
    """DynamoDB refuses nesting deeper than 32 levels: the whole transaction must fail, events too."""
    deep: Any = 1
    for _ in range(40):
        deep = [deep]
    writes = [make_write("user_features", {"ok": 1}), make_write("credit_features", {"deep": deep})]
    with pytest.raises(FeatureStoreError):
        store.write(user, "user-1", writes, NOW)
    assert store.read(user, "user-1", {"user_features": None, "credit_features": None}) == {}
    assert store.outbox_stats().pending == 0


def test_item_over_400_kb_is_refused_before_any_call(store: DynamoDBStore, dynamo: Any, user, monkeypatch) -> None:
    calls = spy(monkeypatch, dynamo, "transact_write_items")
    writes = [
        make_write("user_features", {"a": 1}),
        make_write("credit_features", {f"f{i}": "x" * 60_000 for i in range(7)}),
    ]
    with pytest.raises(PayloadTooLarge, match="credit_features"):
        store.write(user, "user-1", writes, NOW)
    assert calls == []
    store.write(user, "user-1", [make_write("credit_features", {f"f{i}": "x" * 60_000 for i in range(6)})], NOW)


def test_transaction_over_4_mb_is_refused_before_any_call(store: DynamoDBStore, dynamo: Any, user, monkeypatch) -> None:
    calls = spy(monkeypatch, dynamo, "transact_write_items")
    writes = [make_write(f"c{index}", {f"f{i}": "x" * 60_000 for i in range(6)}) for index in range(12)]
    with pytest.raises(PayloadTooLarge, match="commits at most"):
        store.write(user, "user-1", writes, NOW)
    assert calls == []


def test_concurrent_upserts_keep_created_at(store: DynamoDBStore, user) -> None:
    store.write(user, "hot", [make_write("user_features", {"writer": -1})], NOW)
    store.delete_events([event.event_id for event in store.claim_events(10, 30)])
    writes = [make_write("user_features", {"writer": index}, event_time=LATER, updated_at=LATER) for index in range(20)]
    barrier = threading.Barrier(20)

    def upsert(write) -> list[str]:
        barrier.wait()
        return store.write(user, "hot", [write], LATER)

    with ThreadPoolExecutor(20) as pool:
        skipped = list(pool.map(upsert, writes))
    assert skipped == [[]] * 20
    found = store.read(user, "hot", {"user_features": None})["user_features"]
    assert found.metadata["created_at"] == NOW
    assert found.metadata["updated_at"] == LATER
    assert found.data in [write.data for write in writes]
    assert store.outbox_stats().pending == 20


def test_concurrent_first_writes_create_the_item_once(store: DynamoDBStore, user) -> None:
    """Writers racing to create a category: one creates it, the others find it and update it."""
    writes = [make_write("user_features", {"writer": index}) for index in range(10)]
    barrier = threading.Barrier(10)

    def upsert(index: int) -> list[str]:
        barrier.wait()
        return store.write(user, "new", [writes[index]], f"2026-01-01T00:00:00.{index:06d}+00:00")

    with ThreadPoolExecutor(10) as pool:
        assert list(pool.map(upsert, range(10))) == [[]] * 10
    found = store.read(user, "new", {"user_features": None})["user_features"]
    assert found.metadata["created_at"].startswith("2026-01-01T00:00:00.0000")
    assert store.outbox_stats().pending == 10


def test_two_replicas_never_claim_the_same_event(make_settings, settings: Settings, user) -> None:
    first, second = create_store(settings), create_store(settings)
    for index in range(60):
        first.write(user, f"user-{index}", [make_write("user_features", {"i": index})], NOW)
    claimed: dict[str, list[str]] = {"first": [], "second": []}
    barrier = threading.Barrier(2)

    def drain(name: str, store: DynamoDBStore) -> None:
        barrier.wait()
        while events := store.claim_events(7, lease_seconds=60):
            claimed[name] += [event.event_id for event in events]

    threads = [threading.Thread(target=drain, args=item) for item in (("first", first), ("second", second))]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    everything = claimed["first"] + claimed["second"]
    assert len(everything) == len(set(everything)) == 60
    first.close()
    second.close()


def test_conflicting_transactions_are_retried(store: DynamoDBStore, dynamo: Any, user, monkeypatch) -> None:
    def conflict_once(call: int, kwargs: dict) -> None:
        if call == 1:
            reasons = [{"Code": "TransactionConflict"}, {"Code": "None"}]
            raise client_error("TransactionCanceledException", "TransactWriteItems", CancellationReasons=reasons)

    calls = spy(monkeypatch, dynamo, "transact_write_items", conflict_once)
    assert store.write(user, "user-1", [make_write("user_features", {"a": 1})], NOW) == []
    assert len(calls) == 3, "a conflict, then the update form on a missing item, then the create form"
    assert store.read(user, "user-1", {"user_features": None})["user_features"].data == {"a": 1}


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
def test_throttled_write_is_unavailable(store: DynamoDBStore, dynamo: Any, user, monkeypatch, error) -> None:
    def throttle(call: int, kwargs: dict) -> None:
        raise error

    spy(monkeypatch, dynamo, "transact_write_items", throttle)
    with pytest.raises(StoreUnavailable) as caught:
        store.write(user, "user-1", [make_write("user_features", {"a": 1})], NOW)
    assert caught.value.retry_after >= 1


def test_check_fails_when_tables_are_missing(make_settings) -> None:
    store = dynamodb_store(make_settings(dynamodb_create_tables=False))
    assert store.initialise() == [f"DynamoDB client ready ({store.settings.dynamodb_endpoint_url})"]
    with pytest.raises(StoreUnavailable, match="ResourceNotFoundException"):
        store.check()
    store.close()


def test_stores_share_one_client(make_settings) -> None:
    stores = [dynamodb_store(make_settings()) for _ in range(3)]
    assert len({id(store.client) for store in stores}) == 1
    assert stores[0].client is get_client(stores[0].settings)
    for store in stores:
        store.close()


def test_claims_read_the_due_index_not_the_whole_outbox(store: DynamoDBStore, dynamo: Any, user, monkeypatch) -> None:
    """However long the outbox grows (a Kafka outage), a claim reads about `limit` items per shard."""
    writes = [make_write("user_features", {"i": index}) for index in range(40)]
    for index, write in enumerate(writes):
        store.write(user, f"user-{index}", [write], NOW)
    queries = spy(monkeypatch, dynamo, "query")
    monkeypatch.setattr(dynamo, "scan", lambda **kwargs: pytest.fail("a claim scanned the outbox"))
    claimed = store.claim_events(5, lease_seconds=30)
    assert [event.event_id for event in claimed] == [write.event.event_id for write in writes[:5]], "soonest due first"
    assert all(query["IndexName"] == "due" and query["Limit"] == 5 for query in queries)
    store.retry_events([claimed[0].event_id], delay_seconds=60)
    again = store.claim_events(40, lease_seconds=30)
    assert claimed[0].event_id not in {event.event_id for event in again}, "a retried event waits for its due time"
    assert len(again) == 35

"""A bulk write's entities packed into shared DynamoDB transactions, against a real server: each entity
stays whole, a cancelled transaction's reasons are shared out per entity, and a failure with no reasons
fails or isolates the entities as it should."""

from typing import Any

import pytest

from components.features.store.base import EntityWrite
from components.features.store.dynamodb import DynamoDBStore
from components.features.store.dynamodb.transactions import MAX_TRANSACTION_ACTIONS, EntityCommit, pack
from core.dynamodb_client import DynamoDBClient, DynamoDBUnreachable
from core.exceptions import FeatureStoreError, StoreUnavailable
from tests.components.features.store.conftest import client_error, spy
from tests.conftest import DYNAMODB_EMULATORS
from tests.factories import LATER, NOW, make_write

pytestmark = [pytest.mark.anyio, pytest.mark.backends(*DYNAMODB_EMULATORS)]

CATEGORIES = ["user_features", "credit_features"]


def entities(count: int, prefix: str = "e") -> list[EntityWrite]:
    """`count` entities of two categories each (four actions a transaction)."""
    return [
        EntityWrite(f"{prefix}{index}", [make_write(category, {"i": index}) for category in CATEGORIES])
        for index in range(count)
    ]


def cancelled(reasons: list[dict[str, Any]]) -> Exception:
    return client_error("TransactionCanceledException", "TransactWriteItems", CancellationReasons=reasons)


async def test_entities_share_transactions_of_at_most_100_actions(
    store: DynamoDBStore, dynamo: DynamoDBClient, user, monkeypatch
) -> None:
    """30 new entities x 4 actions: two groups (25 + 5). Each group's first transaction guesses the
    items exist and is cancelled; the reasons switch every category to the create form at once."""
    calls = spy(monkeypatch, dynamo, "transact_write_items")
    assert await store.write_many(user, entities(30), NOW) == [[]] * 30
    assert sorted(len(call["TransactItems"]) for call in calls) == [20, 20, 100, 100]
    for index in (0, 24, 25, 29):
        found = await store.read(user, f"e{index}", dict.fromkeys(CATEGORIES))
        assert {category: stored.data for category, stored in found.items()} == dict.fromkeys(CATEGORIES, {"i": index})
        assert found["user_features"].metadata["created_at"] == NOW
    assert (await store.outbox_stats()).pending == 60


async def test_a_stale_category_is_skipped_and_the_rest_written_in_one_round(
    store: DynamoDBStore, dynamo: DynamoDBClient, user, monkeypatch
) -> None:
    await store.write_many(user, entities(3), NOW)
    await store.write(user, "e1", [make_write("credit_features", {"i": "newer"}, event_time=LATER)], LATER)
    calls = spy(monkeypatch, dynamo, "transact_write_items")
    again = [
        EntityWrite(entity.entity_value, [make_write(category, {"i": "again"}) for category in CATEGORIES])
        for entity in entities(3)
    ]
    assert await store.write_many(user, again, NOW) == [[], ["credit_features"], []]
    assert len(calls) == 2, "one cancelled by the stale category, one without it"
    assert (await store.read(user, "e1", {"credit_features": None}))["credit_features"].data == {"i": "newer"}
    assert (await store.read(user, "e1", {"user_features": None}))["user_features"].data == {"i": "again"}
    assert (await store.read(user, "e2", {"credit_features": None}))["credit_features"].data == {"i": "again"}


async def test_an_entity_doomed_by_its_own_reason_fails_alone(
    store: DynamoDBStore, dynamo: DynamoDBClient, user, monkeypatch
) -> None:
    """Throttling on one action of the second entity: that entity fails (503), the others go again without it."""
    await store.write_many(user, entities(3), NOW)

    async def throttle_second_entity(call: int, kwargs: dict) -> None:
        if call == 1:
            reasons = [{"Code": "None"}] * len(kwargs["TransactItems"])
            reasons[5] = {"Code": "ThrottlingError", "Message": "throttled for the test"}
            raise cancelled(reasons)

    calls = spy(monkeypatch, dynamo, "transact_write_items", throttle_second_entity)
    results = await store.write_many(user, entities(3), LATER)
    assert results[0] == [] and results[2] == []
    assert isinstance(results[1], StoreUnavailable)
    assert [len(call["TransactItems"]) for call in calls] == [12, 8]
    assert store.writable, "throttling is load, not an unwritable store"


async def test_an_outage_fails_every_entity_without_sending_each_alone(
    store: DynamoDBStore, dynamo: DynamoDBClient, user, monkeypatch
) -> None:
    async def unreachable(call: int, kwargs: dict) -> None:
        raise DynamoDBUnreachable("connection refused for the test")

    calls = spy(monkeypatch, dynamo, "transact_write_items", unreachable)
    results = await store.write_many(user, entities(30), NOW)
    assert all(isinstance(result, StoreUnavailable) for result in results)
    assert len(calls) == 2, "one attempt per group"
    assert not store.writable
    monkeypatch.undo()
    assert await store.write_many(user, entities(1), NOW) == [[]]
    assert store.writable


async def test_a_request_refused_whole_sends_each_entity_alone(
    store: DynamoDBStore, dynamo: DynamoDBClient, user, monkeypatch
) -> None:
    """A refusal with no reasons (a ValidationException) may be one entity's doing: each entity then goes
    alone and gets its own outcome."""

    async def refuse_the_shared_one(call: int, kwargs: dict) -> None:
        if call == 1:
            raise client_error("ValidationException", "TransactWriteItems")

    await store.write_many(user, entities(3), NOW)
    calls = spy(monkeypatch, dynamo, "transact_write_items", refuse_the_shared_one)
    assert await store.write_many(user, entities(3), LATER) == [[], [], []]
    assert [len(call["TransactItems"]) for call in calls] == [12, 4, 4, 4]


async def test_an_entity_over_4_mb_fails_before_anything_is_sent(
    store: DynamoDBStore, dynamo: DynamoDBClient, user, monkeypatch
) -> None:
    calls = spy(monkeypatch, dynamo, "transact_write_items")
    huge = [make_write(f"c{index}", {f"f{i}": "x" * 60_000 for i in range(6)}) for index in range(12)]
    results = await store.write_many(user, [entities(1)[0], EntityWrite("huge", huge)], NOW)
    assert results[0] == []
    assert isinstance(results[1], FeatureStoreError) and results[1].status_code == 413
    assert [len(call["TransactItems"]) for call in calls] == [4, 4]


def test_packing_keeps_each_transaction_within_its_limits(user) -> None:
    small = [EntityCommit(user, f"s{index}", [make_write("user_features", {"i": index})], NOW) for index in range(60)]
    assert [len(group) for group in pack(small)] == [50, 10]
    assert all(sum(entity.action_count for entity in group) <= MAX_TRANSACTION_ACTIONS for group in pack(small))
    large = [
        EntityCommit(user, f"l{index}", [make_write(f"c{c}", {"x": "x" * 300_000}) for c in range(5)], NOW)
        for index in range(5)
    ]
    assert [len(group) for group in pack(large)] == [2, 2, 1], "1.5 MB each, 4 MB a transaction"

"""A bulk write on DynamoDB, against a real server: one transaction per entity, a bounded number in
flight, and each entity's fate its own."""

import asyncio
import json
from typing import Any

import pytest

from components.features.store.base import EntityWrite
from components.features.store.dynamodb import DynamoDBStore
from core.dynamodb_client import DynamoDBClient, DynamoDBTimeout, DynamoDBUnreachable
from core.exceptions import FeatureStoreError, OutcomeUnknown, StoreUnavailable
from tests.components.features.store.conftest import client_error, spy
from tests.conftest import DYNAMODB_EMULATORS
from tests.factories import LATER, NOW, make_write

pytestmark = [pytest.mark.anyio, pytest.mark.backends(*DYNAMODB_EMULATORS)]

CATEGORIES = ["user_features", "credit_features"]


def entities(count: int) -> list[EntityWrite]:
    """`count` entities of two categories each (four actions a transaction)."""
    return [
        EntityWrite(f"e{index}", [make_write(category, {"i": index}) for category in CATEGORIES])
        for index in range(count)
    ]


async def test_one_transaction_per_entity_a_bounded_number_at_once(
    make_settings, dynamo: DynamoDBClient, user, monkeypatch
) -> None:
    """AWS advises against grouping writes that need not be atomic together: an entity's categories and
    events share a transaction, entities do not."""
    store = DynamoDBStore(make_settings(dynamodb_write_concurrency=3))
    await store.initialise()
    in_flight = peak = 0

    async def count(call: int, kwargs: dict) -> None:
        nonlocal in_flight, peak
        in_flight += 1
        peak = max(peak, in_flight)
        await asyncio.sleep(0.01)
        in_flight -= 1

    calls = spy(monkeypatch, store.client, "transact_write_items", count)
    await store.write_many(user, entities(10), NOW)
    calls.clear()
    assert await store.write_many(user, entities(10), LATER) == [[]] * 10
    assert [len(call["TransactItems"]) for call in calls] == [4] * 10
    assert {call["TransactItems"][0]["Update"]["Key"]["bright_uid"]["S"] for call in calls} == {
        f"e{index}" for index in range(10)
    }
    assert peak == 3
    await store.close()


async def test_a_process_that_never_wrote_an_entity_reads_its_versions_instead_of_guessing(
    make_settings, store: DynamoDBStore, user, monkeypatch
) -> None:
    """Another replica (a store that knows nothing) rewriting stored entities: one consistent read of their
    versions for the whole bulk, then one transaction each; a stale category is skipped without being sent."""
    await store.write_many(user, entities(3), NOW)
    replica = DynamoDBStore(make_settings())
    await replica.initialise()
    transactions = spy(monkeypatch, replica.client, "transact_write_items")
    reads = spy(monkeypatch, replica.client, "batch_get_item")
    assert await replica.write_many(user, entities(3), NOW) == [[]] * 3
    assert len(transactions) == 3 and len(reads) == 1
    (request,) = reads[0]["RequestItems"].values()
    assert request["ConsistentRead"] is True and len(request["Keys"]) == 6
    found = await replica.read(user, "e0", dict.fromkeys(CATEGORIES))
    assert {found[category].metadata["version"] for category in CATEGORIES} == {2}

    transactions.clear()
    other = DynamoDBStore(make_settings())
    await other.initialise()
    stale = [make_write(CATEGORIES[0], {"old": 1}, event_time="2025-12-31T00:00:00+00:00")]
    stale.append(make_write(CATEGORIES[1], {"new": 1}, event_time=LATER))
    assert await other.write(user, "e0", stale, LATER) == [CATEGORIES[0]]
    assert [len(call["TransactItems"]) for call in transactions] == [2], "the stale category was never sent"
    found = await other.read(user, "e0", dict.fromkeys(CATEGORIES))
    assert found[CATEGORIES[0]].data == {"i": 0} and found[CATEGORIES[1]].data == {"new": 1}
    assert found[CATEGORIES[1]].metadata["version"] == 3


async def test_a_throttled_entity_fails_alone(store: DynamoDBStore, dynamo: DynamoDBClient, user, monkeypatch) -> None:
    await store.write_many(user, entities(3), NOW)

    async def throttle_the_second(call: int, kwargs: dict[str, Any]) -> None:
        if kwargs["TransactItems"][0]["Update"]["Key"]["bright_uid"]["S"] == "e1":
            reasons = [{"Code": "ThrottlingError", "Message": "throttled for the test"}] + [{"Code": "None"}] * 3
            raise client_error("TransactionCanceledException", "TransactWriteItems", CancellationReasons=reasons)

    spy(monkeypatch, dynamo, "transact_write_items", throttle_the_second)
    results = await store.write_many(user, entities(3), LATER)
    assert results[0] == [] and results[2] == []
    assert isinstance(results[1], StoreUnavailable)
    assert store.writable, "throttling is load, not an unwritable store"


async def test_an_outage_fails_every_entity_and_makes_the_store_unwritable(
    store: DynamoDBStore, dynamo: DynamoDBClient, user, monkeypatch
) -> None:
    async def unreachable(call: int, kwargs: dict) -> None:
        raise DynamoDBUnreachable("connection refused for the test")

    spy(monkeypatch, dynamo, "transact_write_items", unreachable)
    results = await store.write_many(user, entities(5), NOW)
    assert all(isinstance(result, StoreUnavailable) for result in results)
    assert not store.writable


async def test_a_failed_version_read_fails_its_entities_before_any_transaction(
    store: DynamoDBStore, dynamo: DynamoDBClient, user, monkeypatch
) -> None:
    """The read of the stored versions fails: nothing is sent, and the entities fail with the read's error."""
    calls = spy(monkeypatch, dynamo, "transact_write_items")

    async def unreachable(call: int, kwargs: dict) -> None:
        raise DynamoDBUnreachable("connection refused for the test")

    spy(monkeypatch, dynamo, "batch_get_item", unreachable)
    results = await store.write_many(user, entities(3), NOW)
    assert all(isinstance(result, StoreUnavailable) for result in results)
    with pytest.raises(StoreUnavailable):
        await store.write(user, "e0", entities(1)[0].writes, NOW)
    assert calls == [] and not store.writable
    monkeypatch.undo()
    assert await store.write_many(user, entities(1), NOW) == [[]]
    assert store.writable


async def test_an_entity_over_4_mb_fails_before_anything_is_sent(
    store: DynamoDBStore, dynamo: DynamoDBClient, user, monkeypatch
) -> None:
    calls = spy(monkeypatch, dynamo, "transact_write_items")
    huge = [make_write(f"c{index}", {f"f{i}": "x" * 60_000 for i in range(6)}) for index in range(12)]
    results = await store.write_many(user, [entities(1)[0], EntityWrite("huge", huge)], NOW)
    assert results[0] == []
    assert isinstance(results[1], FeatureStoreError) and results[1].status_code == 413
    assert [call["TransactItems"][0]["Update"]["Key"]["bright_uid"]["S"] for call in calls] == ["e0"]


@pytest.mark.parametrize(("sent", "expected"), [(True, OutcomeUnknown), (False, StoreUnavailable)])
async def test_a_write_without_an_answer_has_an_unknown_outcome_unless_it_never_left(
    store: DynamoDBStore, dynamo: DynamoDBClient, user, monkeypatch, sent: bool, expected: type
) -> None:
    """Every attempt timed out once sent (it may have been applied): `outcome_unknown`, each attempt with the
    transaction's one `ClientRequestToken`. No connection made: nothing was written, `store_unavailable`."""
    bodies: list[bytes] = []
    answered = dynamo._attempt

    async def silent(operation: str, body: bytes) -> dict[str, Any]:
        if operation != "TransactWriteItems":
            return await answered(operation, body)
        bodies.append(body)
        raise DynamoDBTimeout("no answer for the test", sent=sent)

    monkeypatch.setattr(dynamo, "_attempt", silent)
    results = await store.write_many(user, entities(2), NOW)
    assert all(type(result) is expected for result in results), results
    tokens = {json.loads(body)["ClientRequestToken"] for body in bodies}
    assert len(bodies) == 2 * dynamo.retry_policy.max_attempts and len(tokens) == 2, "one token per transaction"
    assert not store.writable

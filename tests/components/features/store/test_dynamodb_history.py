"""The DynamoDB layout of history (components/features/store/dynamodb/history.py): what a write sends, with and
without history, and where the items go."""

import pytest

from components.features.store.base import KeepHistory
from components.features.store.dynamodb import DynamoDBStore
from core.dynamodb_client import DynamoDBClient
from core.exceptions import PayloadTooLarge
from tests.components.features.store.conftest import spy
from tests.components.features.store.test_contract_history import at, kept_write
from tests.conftest import DYNAMODB_EMULATORS
from tests.factories import NOW, make_write

pytestmark = [pytest.mark.anyio, pytest.mark.backends(*DYNAMODB_EMULATORS)]


async def test_a_category_without_history_costs_what_it_did(
    store: DynamoDBStore, dynamo: DynamoDBClient, user, monkeypatch
) -> None:
    await store.write(user, "user-1", [make_write("user_features", {"a": 1})], NOW)
    calls = spy(monkeypatch, dynamo, "transact_write_items")
    operations = spy(monkeypatch, dynamo, "query")
    await store.write(user, "user-1", [make_write("user_features", {"a": 2})], NOW)
    assert [len(call["TransactItems"]) for call in calls] == [2], "its update and its event, nothing more"
    assert operations == []


async def test_a_category_with_history_adds_its_copy_the_replaced_ones_expiry_and_the_pruning(
    store: DynamoDBStore, dynamo: DynamoDBClient, user, monkeypatch
) -> None:
    for second in range(1, 5):
        await store.write(user, "user-1", [kept_write({"a": second}, second=second, versions=2)], at(second))
    calls = spy(monkeypatch, dynamo, "transact_write_items")
    await store.write(user, "user-1", [kept_write({"a": 5}, second=5, versions=2)], at(5))
    (call,) = calls
    history = call["TransactItems"][2:]
    assert [next(iter(action)) for action in history] == ["Put", "Update", "Delete"]
    keys = [next(iter(action.values())).get("Key") or next(iter(action.values()))["Item"] for action in history]
    assert [key["category"]["S"] for key in keys] == [
        "~user_features#0000000005",
        "~user_features#0000000004",
        "~user_features#0000000002",
    ]
    answer = await dynamo.query(
        TableName=user.table,
        KeyConditionExpression="#k = :v",
        ExpressionAttributeNames={"#k": user.key_attribute},
        ExpressionAttributeValues={":v": {"S": "user-1"}},
    )
    sort_keys = [item["category"]["S"] for item in answer["Items"]]
    assert sort_keys == [
        "user_features",
        "~user_features#0000000003",
        "~user_features#0000000004",
        "~user_features#0000000005",
    ]
    current_copy = answer["Items"][-1]
    assert "expires_at" not in current_copy, "the current value's copy expires once replaced"
    assert all("expires_at" in item for item in answer["Items"][1:-1])


async def test_a_write_of_too_many_categories_with_history_is_refused_before_any_call(
    store: DynamoDBStore, dynamo: DynamoDBClient, user, monkeypatch
) -> None:
    calls = spy(monkeypatch, dynamo, "transact_write_items")
    writes = [make_write(f"c{index}", {"a": 1}) for index in range(20)]
    for write in writes:
        write.history = KeepHistory(3, 2e9, 1e9)
    with pytest.raises(PayloadTooLarge, match="with history"):
        await store.write(user, "user-1", writes, NOW)
    assert calls == []

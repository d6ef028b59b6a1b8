"""Deletions on DynamoDB beyond the shared contract: a write racing the deletion is never erased unseen,
and the tombstone carries the table's TTL attribute."""

from typing import Any

import pytest

from components.features.store.base import OnlineStore
from components.features.store.dynamodb import erase
from components.features.store.dynamodb.items import EXPIRES_AT
from tests.components.features.store.conftest import drain
from tests.conftest import DYNAMODB_EMULATORS
from tests.factories import LATER, NOW, make_erasure, make_write

pytestmark = [pytest.mark.anyio, pytest.mark.backends(*DYNAMODB_EMULATORS)]
NEWER = "2026-01-01T00:00:05.000000+00:00"


async def test_a_write_between_the_read_and_the_commit_is_not_erased(
    store: OnlineStore, user, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The deletion read the old data; a newer write lands before its transaction: the tombstone's
    condition fails, the deletion reads again, and leaves the newer data alone."""
    await store.write(user, "user-1", [make_write("user_features", {"a": 1})], NOW)
    read = erase._stored
    calls = 0

    async def racing(*args: Any) -> dict[str, dict[str, Any]]:
        nonlocal calls
        found = await read(*args)
        calls += 1
        if calls == 1:
            write = make_write("user_features", {"a": 2}, event_time=NEWER, updated_at=NEWER)
            assert await store.write(user, "user-1", [write], NEWER) == []
        return found

    monkeypatch.setattr(erase, "_stored", racing)
    assert await store.delete(user, "user-1", make_erasure("user_features", event_time=LATER)) == []
    assert calls == 2
    assert (await store.read(user, "user-1", {"user_features": None}))["user_features"].data == {"a": 2}
    events = await drain(store)
    assert [event.payload["event_type"] for event in events] == ["feature_available", "feature_available"]
    assert [event.payload["version"] for event in events] == [1, 2]


async def test_the_tombstone_expires_through_the_tables_ttl_attribute(store: OnlineStore, user, settings) -> None:
    await store.write(user, "user-1", [make_write("user_features", {"a": 1})], NOW)
    assert await store.delete(user, "user-1", make_erasure(expires_at=1_900_000_000.5)) == ["user_features"]
    item = await store.client.get_item(  # type: ignore[attr-defined]
        TableName=user.table, Key={user.key_attribute: {"S": "user-1"}, "category": {"S": "user_features"}}
    )
    assert float(item["Item"][EXPIRES_AT]["N"]) == 1_900_000_000.5
    assert item["Item"]["features"]["M"]["data"] == {"M": {}}

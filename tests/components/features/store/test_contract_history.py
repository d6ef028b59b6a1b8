"""History: the values a category's writes replace, kept by count and by age, and erased with the category.
Every backend passes the same suite."""

import time

import pytest

from components.features.store.base import CategoryWrite, EntityWrite, KeepHistory, KeptVersion, OnlineStore
from tests.components.features.store.conftest import drain
from tests.conftest import STORE_BACKENDS
from tests.factories import LATER, NOW, make_erasure, make_write

pytestmark = [pytest.mark.anyio, pytest.mark.backends(*STORE_BACKENDS)]


def at(second: int) -> str:
    return f"2026-01-01T00:00:{second:02d}.000000+00:00"


def kept_write(
    data: dict, *, second: int = 0, versions: int = 3, retention: float = 3600, now: float | None = None
) -> CategoryWrite:
    """A write of `user_features` that keeps what it replaces, with event time `at(second)`."""
    write = make_write("user_features", data, event_time=at(second), updated_at=at(second))
    now = time.time() if now is None else now
    write.history = KeepHistory(versions, now + retention, now)
    return write


async def kept(store: OnlineStore, user, category: str = "user_features") -> list[KeptVersion]:
    return (await store.read_history(user, "user-1", [category])).get(category, [])


async def test_a_write_keeps_the_value_it_replaces_with_its_metadata(store: OnlineStore, user) -> None:
    await store.write(user, "user-1", [kept_write({"a": 1}, second=1)], at(1))
    assert await kept(store, user) == [], "nothing replaced yet"
    await store.write(user, "user-1", [kept_write({"a": 2}, second=2)], at(2))
    (first,) = await kept(store, user)
    assert first.stored.data == {"a": 1}
    metadata = first.stored.metadata
    assert (metadata["version"], metadata["event_time"], metadata["updated_at"]) == (1, at(1), at(1))
    assert (metadata["source"], metadata["compute_id"]) == ("prediction_service", "job-1")
    assert first.kept_until > time.time() + 3000
    current = (await store.read(user, "user-1", {"user_features": None}))["user_features"]
    assert (current.data, current.metadata["version"]) == ({"a": 2}, 2), "the current value is not history"


async def test_versions_are_kept_up_to_the_count_newest_first(store: OnlineStore, user) -> None:
    for second in range(1, 7):
        await store.write(user, "user-1", [kept_write({"a": second}, second=second, versions=3)], at(second))
    versions = await kept(store, user)
    assert [version.version for version in versions] == [5, 4, 3]
    assert [version.stored.data for version in versions] == [{"a": 5}, {"a": 4}, {"a": 3}]


async def test_versions_past_their_retention_are_pruned_or_past_their_time(store: OnlineStore, user) -> None:
    """The embedded store prunes them on write; DynamoDB's TTL deletes them within days, so they may still be
    listed, but with `kept_until` in the past: readers judge it."""
    start = time.time()
    for second in range(1, 4):
        write = kept_write({"a": second}, second=second, retention=10, now=start + 10 * (second - 1))
        await store.write(user, "user-1", [write], at(second))
    now = start + 25
    versions = await kept(store, user)
    assert [version.version for version in versions if version.kept_until > now] == [2]
    assert all(version.version in (1, 2) for version in versions)


async def test_a_write_older_than_the_stored_one_is_skipped_and_never_enters_history(store: OnlineStore, user) -> None:
    await store.write(user, "user-1", [kept_write({"a": 1}, second=5)], at(5))
    assert await store.write(user, "user-1", [kept_write({"a": 0}, second=1)], at(6)) == ["user_features"]
    assert await kept(store, user) == []
    await store.write(user, "user-1", [kept_write({"a": 2}, second=7)], at(7))
    assert [(version.version, version.stored.data) for version in await kept(store, user)] == [(1, {"a": 1})]


async def test_a_category_without_history_keeps_nothing(store: OnlineStore, user) -> None:
    for number in range(3):
        await store.write(user, "user-1", [make_write("credit_features", {"b": number})], NOW)
    assert await store.read_history(user, "user-1", ["credit_features", "user_features"]) == {}


async def test_history_is_not_listed_as_a_category(store: OnlineStore, user) -> None:
    for second in range(1, 4):
        await store.write(user, "user-1", [kept_write({"a": second}, second=second)], at(second))
    assert sorted(await store.read_entity(user, "user-1")) == ["user_features"]


async def test_an_erasure_removes_the_history_and_its_event_counts_the_versions(store: OnlineStore, user) -> None:
    for second in range(1, 4):
        await store.write(user, "user-1", [kept_write({"a": second}, second=second)], at(second))
    await store.write(user, "user-1", [make_write("credit_features", {"b": 1})], NOW)
    erasure = make_erasure(event_time=at(30))
    assert sorted(await store.delete(user, "user-1", erasure)) == ["credit_features", "user_features"]
    assert await store.read_history(user, "user-1", ["user_features", "credit_features"]) == {}
    deleted = {
        event.payload["resource_name"]: event.payload["erased_versions"]
        for event in await drain(store)
        if event.payload["event_type"] == "feature_deleted"
    }
    assert deleted == {"user_features": 2, "credit_features": 0}


async def test_a_tombstone_never_enters_history(store: OnlineStore, user) -> None:
    await store.write(user, "user-1", [kept_write({"a": 1}, second=1)], at(1))
    await store.write(user, "user-1", [kept_write({"a": 2}, second=2)], at(2))
    await store.delete(user, "user-1", make_erasure("user_features", event_time=at(3)))
    await store.write(user, "user-1", [kept_write({"a": 4}, second=4)], at(4))
    assert await kept(store, user) == []
    await store.write(user, "user-1", [kept_write({"a": 5}, second=5)], at(5))
    assert [(version.version, version.stored.data) for version in await kept(store, user)] == [(4, {"a": 4})]


async def test_histories_of_two_categories_stay_apart(store: OnlineStore, user) -> None:
    for number in range(3):
        first = kept_write({"a": number}, second=number)
        second = make_write("credit_features", {"b": number}, event_time=at(number), updated_at=at(number))
        second.history = first.history
        await store.write(user, "user-1", [first, second], at(number))
    found = await store.read_history(user, "user-1", ["user_features", "credit_features"])
    assert {category: [version.version for version in versions] for category, versions in found.items()} == {
        "user_features": [2, 1],
        "credit_features": [2, 1],
    }
    assert [version.stored.data for version in found["credit_features"]] == [{"b": 1}, {"b": 0}]


async def test_a_bulk_write_keeps_history_per_entity(store: OnlineStore, user) -> None:
    await store.write(user, "user-1", [kept_write({"a": 1}, second=1)], NOW)
    results = await store.write_many(user, [EntityWrite("user-1", [kept_write({"a": 2}, second=2)])], LATER)
    assert results == [[]]
    assert [version.stored.data for version in await kept(store, user)] == [{"a": 1}]

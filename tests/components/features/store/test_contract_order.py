"""Versions and per-category event order: every backend passes the same suite."""

import pytest

from components.features.store import create_store
from components.features.store.base import TOMBSTONE, OnlineStore
from tests.components.features.store.conftest import drain
from tests.conftest import STORE_BACKENDS
from tests.factories import LATER, NOW, make_erasure, make_write

pytestmark = [pytest.mark.anyio, pytest.mark.backends(*STORE_BACKENDS)]
NEWEST = "2026-01-01T00:00:02.000000+00:00"


async def version_of(store: OnlineStore, user, category: str = "user_features") -> int:
    return (await store.read(user, "user-1", {category: None}))[category].metadata["version"]


async def test_every_change_is_one_version_on_and_its_event_carries_it(store: OnlineStore, user) -> None:
    first = make_write("user_features", {"a": 1})
    await store.write(user, "user-1", [first, make_write("credit_features", {"b": 1})], NOW)
    assert await version_of(store, user) == 1
    second = make_write("user_features", {"a": 2})
    await store.write(user, "user-1", [second], NOW)
    assert await version_of(store, user) == 2
    assert await version_of(store, user, "credit_features") == 1, "versions count per category"
    assert (first.event.payload["version"], second.event.payload["version"]) == (1, 2)


async def test_a_skipped_write_changes_no_version(store: OnlineStore, user) -> None:
    await store.write(user, "user-1", [make_write("user_features", {"a": 1}, event_time=LATER)], LATER)
    assert await store.write(user, "user-1", [make_write("user_features", {"a": 0})], NOW) == ["user_features"]
    assert await version_of(store, user) == 1


async def test_a_tombstone_keeps_the_version_and_a_later_write_continues_from_it(store: OnlineStore, user) -> None:
    await store.write(user, "user-1", [make_write("user_features", {"a": 1})], NOW)
    await store.write(user, "user-1", [make_write("user_features", {"a": 2})], NOW)
    assert await store.delete(user, "user-1", make_erasure("user_features")) == ["user_features"]
    stored = (await store.read(user, "user-1", {"user_features": None}))["user_features"]
    assert TOMBSTONE in stored.metadata and stored.metadata["version"] == 3
    published = await drain(store)
    assert [(event.payload["event_type"], event.payload["version"]) for event in published] == [
        ("feature_available", 1),
        ("feature_available", 2),
        ("feature_deleted", 3),
    ]
    restore = make_write("user_features", {"a": 3}, event_time=NEWEST, updated_at=NEWEST)
    await store.write(user, "user-1", [restore], NEWEST)
    assert await version_of(store, user) == 4
    assert restore.event.payload["version"] == 4


async def test_a_versions_guess_from_another_writer_is_corrected(store: OnlineStore, user, settings) -> None:
    """Two store objects on the same backend (two replicas): each learns the other's versions."""
    other = create_store(settings)
    await other.initialise()
    try:
        await store.write(user, "user-1", [make_write("user_features", {"a": 1})], NOW)
        await other.write(user, "user-1", [make_write("user_features", {"a": 2})], NOW)
        await store.write(user, "user-1", [make_write("user_features", {"a": 3})], NOW)
        assert await version_of(store, user) == 3
    finally:
        await other.close()


async def test_a_categorys_events_are_claimed_one_at_a_time_in_version_order(store: OnlineStore, user) -> None:
    writes = [make_write("user_features", {"a": number}) for number in range(3)]
    for write in writes:
        await store.write(user, "user-1", [write], NOW)
    other = make_write("credit_features", {"b": 1})
    await store.write(user, "user-1", [other], NOW)
    ids = [write.event.event_id for write in writes]

    claimed = await store.claim_events(10, lease_seconds=30)
    assert {event.event_id for event in claimed} == {ids[0], other.event.event_id}, "the head of each category"
    await store.retry_events([ids[0]], 60, count_attempt=False)
    await store.delete_events([other.event.event_id])
    assert await store.claim_events(10, 30) == [], "a later version waits while an earlier one is retried"

    await store.dead_letter_events({ids[0]: "rejected"})
    assert [event.event_id for event in await store.claim_events(10, 30)] == [ids[1]], "a dead letter holds none back"
    await store.retry_events([ids[1]], 0, count_attempt=False)
    assert await store.redrive_dead_letters([ids[0]], 10) == [ids[0]]
    assert [event.event_id for event in await store.claim_events(10, 30)] == [ids[0]], "re-driven: first again"
    await store.delete_events([ids[0]])
    assert [event.event_id for event in await store.claim_events(10, 30)] == [ids[1]]
    await store.delete_events([ids[1]])
    assert [event.event_id for event in await store.claim_events(10, 30)] == [ids[2]]

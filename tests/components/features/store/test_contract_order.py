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


async def test_a_categorys_events_are_claimed_in_version_order_and_never_past_a_pending_one(
    store: OnlineStore, user
) -> None:
    """A claim holds a category's events from its oldest pending one on, in version order: the embedded store
    one at a time, DynamoDB the run it claimed together. A later version is never claimed while an earlier one
    waits outside the claim (for its retry, or re-driven), and a dead letter holds none back."""
    writes = [make_write("user_features", {"a": number}) for number in range(3)]
    for write in writes:
        await store.write(user, "user-1", [write], NOW)
    other = make_write("credit_features", {"b": 1})
    await store.write(user, "user-1", [other], NOW)
    ids = [write.event.event_id for write in writes]

    async def claim(expected_from: int) -> list[str]:
        """The category's events claimed: a run of `ids` from `expected_from`, in order."""
        claimed = [event.event_id for event in await store.claim_events(10, 30) if event.event_id in ids]
        assert claimed and claimed == ids[expected_from : expected_from + len(claimed)], claimed
        return claimed

    first = await claim(0)
    await store.delete_events([other.event.event_id])
    await store.retry_events([ids[0]], 60, count_attempt=False)
    await store.retry_events(first[1:], 0, count_attempt=False)
    assert await store.claim_events(10, 30) == [], "later versions wait while an earlier one is retried"

    await store.dead_letter_events({ids[0]: "rejected"})
    await store.retry_events(await claim(1), 0, count_attempt=False)
    assert await store.redrive_dead_letters([ids[0]], 10) == [ids[0]]
    claimed = await claim(0)
    await store.delete_events(claimed)
    assert [event.event_id for event in await drain(store)] == ids[len(claimed) :]

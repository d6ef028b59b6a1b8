"""The storage contract: every backend passes the same suite (parametrised in tests/conftest.py)."""

import time
from datetime import UTC, datetime, timedelta, timezone

import anyio
import pytest

from components.features.store import create_store
from components.features.store.base import TOMBSTONE, EntityWrite, OnlineStore
from core.exceptions import FeatureStoreError, StoreUnavailable
from core.settings import Settings
from core.timeutils import epoch_to_iso, isoformat
from devservers import free_port
from tests.conftest import STORE_BACKENDS
from tests.factories import LATER, NOW, make_erasure, make_write

pytestmark = [pytest.mark.anyio, pytest.mark.backends(*STORE_BACKENDS)]


@pytest.fixture
def user(settings: Settings):
    return settings.entity_types["bright_uid"]


async def test_absent_entity_reads_empty(store: OnlineStore, user) -> None:
    assert await store.read(user, "nobody", {"user_features": None}) == {}


async def test_write_then_read_round_trips_json_types(store: OnlineStore, user, expected_type) -> None:
    data = {
        "int": 30,
        "float": 150.5,
        "integral_float": 2.5e10,
        "negative": -7,
        "big": 2**63 - 1,
        "bool": True,
        "null": None,
        "text": "São Paulo ✓",
        "list": [1, "a", None, [2.5]],
        "object": {"nested": {"deep": [True, False]}},
    }
    assert await store.write(user, "user-1", [make_write("user_features", data)], NOW) == []
    found = (await store.read(user, "user-1", {"user_features": None}))["user_features"]
    assert found.data == data
    for key, value in data.items():
        assert type(found.data[key]) is expected_type(value), key
    assert found.metadata["created_at"] == NOW
    assert found.metadata["updated_at"] == NOW
    assert found.metadata["source"] == "prediction_service"
    assert found.metadata["compute_id"] == "job-1"


async def test_rewrite_replaces_data_and_keeps_created_at(store: OnlineStore, user) -> None:
    await store.write(user, "user-1", [make_write("user_features", {"a": 1, "b": 2})], NOW)
    await store.write(
        user, "user-1", [make_write("user_features", {"c": 3}, event_time=LATER, updated_at=LATER)], LATER
    )
    found = (await store.read(user, "user-1", {"user_features": None}))["user_features"]
    assert found.data == {"c": 3}
    assert found.metadata["created_at"] == NOW
    assert found.metadata["updated_at"] == LATER


async def test_read_returns_only_requested_categories(store: OnlineStore, user) -> None:
    await store.write(
        user, "user-1", [make_write("user_features", {"a": 1}), make_write("credit_features", {"score": 700})], NOW
    )
    found = await store.read(user, "user-1", {"credit_features": None, "trans_features": None})
    assert set(found) == {"credit_features"}
    assert found["credit_features"].data == {"score": 700}


async def test_entity_types_are_separate(store: OnlineStore, settings: Settings, user) -> None:
    await store.write(user, "same-id", [make_write("user_features", {"a": 1})], NOW)
    assert await store.read(settings.entity_types["account_id"], "same-id", {"user_features": None}) == {}


async def test_failed_write_leaves_nothing(store: OnlineStore, user) -> None:
    """Two categories carrying the same event id cannot both commit: the whole write must roll back,
    and every backend reports the rejection as the service's error for a call it refused (500), not
    as its own exception nor as an outage."""
    writes = [
        make_write("user_features", {"a": 1}, event_id="dup"),
        make_write("credit_features", {"b": 2}, event_id="dup"),
    ]
    with pytest.raises(FeatureStoreError) as caught:
        await store.write(user, "user-1", writes, NOW)
    assert type(caught.value) is FeatureStoreError
    assert (caught.value.status_code, caught.value.retry_after) == (500, None)
    assert await store.read(user, "user-1", {"user_features": None, "credit_features": None}) == {}
    assert (await store.outbox_stats()).pending == 0


async def test_events_are_committed_with_the_write(store: OnlineStore, user) -> None:
    writes = [make_write("user_features", {"a": 1}), make_write("credit_features", {"b": 2})]
    await store.write(user, "user-1", writes, NOW)
    claimed = await store.claim_events(10, lease_seconds=30)
    assert {event.event_id for event in claimed} == {write.event.event_id for write in writes}
    assert {event.payload["resource_name"] for event in claimed} == {"user_features", "credit_features"}
    assert all(event.key == "bright_uid:user-1" for event in claimed)


async def test_write_many_commits_each_entity_on_its_own(store: OnlineStore, user) -> None:
    """The middle entity cannot commit (two of its categories carry one event id): it fails alone, whole."""
    entities = [
        EntityWrite("e1", [make_write("user_features", {"a": 1}), make_write("credit_features", {"b": 1})]),
        EntityWrite(
            "e2",
            [
                make_write("user_features", {"a": 2}, event_id="dup"),
                make_write("credit_features", {"b": 2}, event_id="dup"),
            ],
        ),
        EntityWrite("e3", [make_write("user_features", {"a": 3})]),
    ]
    results = await store.write_many(user, entities, NOW)
    assert results[0] == [] and results[2] == []
    assert isinstance(results[1], FeatureStoreError) and results[1].status_code == 500
    assert await store.read(user, "e2", {"user_features": None, "credit_features": None}) == {}
    assert (await store.read(user, "e3", {"user_features": None}))["user_features"].data == {"a": 3}
    assert len(await store.read(user, "e1", {"user_features": None, "credit_features": None})) == 2
    assert (await store.outbox_stats()).pending == 3


async def test_write_many_orders_each_entity_by_event_time(store: OnlineStore, user) -> None:
    await store.write(user, "e1", [make_write("user_features", {"v": "new"}, event_time=LATER)], LATER)
    entities = [
        EntityWrite("e1", [make_write("user_features", {"v": "old"}), make_write("credit_features", {"v": "old"})]),
        EntityWrite("e2", [make_write("user_features", {"v": "old"})]),
    ]
    assert await store.write_many(user, entities, NOW) == [["user_features"], []]
    assert (await store.read(user, "e1", {"user_features": None}))["user_features"].data == {"v": "new"}


async def test_delete_leaves_a_tombstone_with_its_event(store: OnlineStore, user) -> None:
    await store.write(
        user, "user-1", [make_write("user_features", {"a": 1, "b": 2}), make_write("credit_features", {"c": 3})], NOW
    )
    assert await store.delete(user, "user-1", make_erasure("user_features", "trans_features")) == ["user_features"]
    found = await store.read(user, "user-1", {"user_features": None, "credit_features": None})
    assert found["user_features"].data == {}
    assert found["user_features"].metadata[TOMBSTONE] == LATER
    assert found["credit_features"].data == {"c": 3}
    deletions = [
        event for event in await store.claim_events(10, 30) if event.payload["event_type"] == "feature_deleted"
    ]
    assert [(event.payload["resource_name"], event.payload["features"]) for event in deletions] == [
        ("user_features", ["a", "b"])
    ]
    assert await store.delete(user, "user-1", make_erasure("user_features")) == [], "a tombstone is deleted again"


async def test_a_tombstone_skips_older_writes_and_yields_to_newer(store: OnlineStore, user) -> None:
    await store.write(user, "user-1", [make_write("user_features", {"a": 1})], NOW)
    await store.delete(user, "user-1", make_erasure("user_features", event_time=LATER))
    assert await store.write(user, "user-1", [make_write("user_features", {"a": 2})], NOW) == ["user_features"]
    newest = "2026-01-01T00:00:02.000000+00:00"
    write = make_write("user_features", {"a": 3}, event_time=newest, updated_at=newest)
    assert await store.write(user, "user-1", [write], newest) == []
    found = (await store.read(user, "user-1", {"user_features": None}))["user_features"]
    assert found.data == {"a": 3}
    assert TOMBSTONE not in found.metadata
    assert found.metadata["created_at"] == newest, "a category written after its deletion starts afresh"


async def test_delete_every_category_spares_newer_data_and_other_entities(store: OnlineStore, user) -> None:
    newest = "2026-01-01T00:00:02.000000+00:00"
    await store.write(
        user, "user-1", [make_write("user_features", {"a": 1}), make_write("trans_features", {"t": 1})], NOW
    )
    await store.write(user, "user-1", [make_write("credit_features", {"b": 1}, event_time=newest)], NOW)
    await store.write(user, "user-2", [make_write("user_features", {"a": 2})], NOW)
    assert await store.delete(user, "user-1", make_erasure()) == ["trans_features", "user_features"]
    assert (await store.read(user, "user-1", {"credit_features": None}))["credit_features"].data == {"b": 1}
    assert (await store.read(user, "user-2", {"user_features": None}))["user_features"].data == {"a": 2}
    assert await store.delete(user, "nobody", make_erasure()) == []


async def test_older_event_time_is_skipped_without_event(store: OnlineStore, user) -> None:
    await store.write(user, "user-1", [make_write("user_features", {"v": "new"}, event_time=LATER)], NOW)
    await store.delete_events([event.event_id for event in await store.claim_events(10, 30)])
    stale = make_write("user_features", {"v": "old"}, event_time=NOW)
    fresh = make_write("credit_features", {"v": "fresh"}, event_time=NOW)
    assert await store.write(user, "user-1", [stale, fresh], LATER) == ["user_features"]
    found = await store.read(user, "user-1", {"user_features": None, "credit_features": None})
    assert found["user_features"].data == {"v": "new"}
    assert found["credit_features"].data == {"v": "fresh"}
    assert [event.payload["resource_name"] for event in await store.claim_events(10, 30)] == ["credit_features"]


async def test_equal_event_time_overwrites(store: OnlineStore, user) -> None:
    await store.write(user, "user-1", [make_write("user_features", {"v": 1}, event_time=LATER)], NOW)
    assert await store.write(user, "user-1", [make_write("user_features", {"v": 2}, event_time=LATER)], NOW) == []
    assert (await store.read(user, "user-1", {"user_features": None}))["user_features"].data == {"v": 2}


async def test_expiry_is_stored(store: OnlineStore, user) -> None:
    expires = time.time() + 60.123456
    await store.write(user, "user-1", [make_write("user_features", {"a": 1}, expires_at=expires)], NOW)
    found = (await store.read(user, "user-1", {"user_features": None}))["user_features"]
    assert found.expires_at_epoch == pytest.approx(expires, abs=1e-6)
    assert found.metadata["expires_at"] == epoch_to_iso(expires)


@pytest.mark.parametrize("count", [1, 100, 101, 250])
async def test_batch_read_across_chunk_boundaries(store: OnlineStore, user, count: int) -> None:
    values = [f"user-{index}" for index in range(count)]
    for value in values[::2]:
        await store.write(user, value, [make_write("user_features", {"id": value})], NOW)
    batch = await store.read_batch(user, values, {"user_features": None, "credit_features": None})
    assert not batch.failed
    assert set(batch.found) == set(values[::2])
    assert all(batch.found[value]["user_features"].data == {"id": value} for value in values[::2])


async def test_claimed_events_are_leased(store: OnlineStore, user) -> None:
    await store.write(user, "user-1", [make_write("user_features", {"a": 1})], NOW)
    first = await store.claim_events(10, lease_seconds=30)
    assert len(first) == 1
    assert await store.claim_events(10, lease_seconds=30) == []
    await store.retry_events([first[0].event_id], delay_seconds=0)
    again = await store.claim_events(10, lease_seconds=30)
    assert [event.event_id for event in again] == [first[0].event_id]
    assert again[0].attempts == 1
    assert again[0].payload == first[0].payload


async def test_retry_delay_and_delete(store: OnlineStore, user) -> None:
    await store.write(user, "user-1", [make_write("user_features", {"a": 1})], NOW)
    (event,) = await store.claim_events(10, lease_seconds=30)
    await store.retry_events([event.event_id], delay_seconds=60)
    assert await store.claim_events(10, lease_seconds=30) == []
    stats = await store.outbox_stats()
    assert stats.pending == 1
    assert stats.oldest_age_seconds >= 0
    await store.delete_events([event.event_id])
    assert (await store.outbox_stats()).pending == 0


async def test_expired_lease_is_claimable_again(store: OnlineStore, user) -> None:
    await store.write(user, "user-1", [make_write("user_features", {"a": 1})], NOW)
    assert len(await store.claim_events(10, lease_seconds=0.05)) == 1
    await anyio.sleep(0.1)
    assert len(await store.claim_events(10, lease_seconds=30)) == 1


async def test_check_passes_on_a_working_store(store: OnlineStore) -> None:
    await store.check()


@pytest.fixture
def unreachable(backend: str, make_settings, tmp_path) -> Settings:
    """Settings whose store cannot be reached: a file under a file, a closed port."""
    if backend == "sqlite":
        (tmp_path / "not-a-directory").write_text("")
        return make_settings(sqlite_path=tmp_path / "not-a-directory" / "features.db")
    return make_settings(
        dynamodb_endpoint_url=f"http://127.0.0.1:{free_port()}",
        dynamodb_create_tables=False,
        dynamodb_connect_timeout_seconds=0.3,
        dynamodb_max_attempts=1,
    )


async def test_an_unreachable_store_is_unavailable_for_every_call(unreachable: Settings, user) -> None:
    """Every backend reports an outage the same way: `StoreUnavailable`, with a time to retry after."""
    store = create_store(unreachable)
    calls = [
        store.check(),
        store.read(user, "user-1", {"user_features": None}),
        store.read_batch(user, ["user-1", "user-2"], {"user_features": None, "credit_features": None}),
        store.write(user, "user-1", [make_write("user_features", {"a": 1})], NOW),
        store.delete(user, "user-1", make_erasure()),
        store.claim_events(10, 30),
    ]
    for call in calls:
        with pytest.raises(StoreUnavailable) as caught:
            await call
        assert caught.value.retry_after >= 1
    entities = [EntityWrite(value, [make_write("user_features", {"a": 1})]) for value in ("user-1", "user-2")]
    results = await store.write_many(user, entities, NOW)
    assert [type(result) for result in results] == [StoreUnavailable, StoreUnavailable], results
    await store.close()


def test_timestamps_compare_as_strings() -> None:
    """Stores order event times as strings; the fixed-width UTC format makes that correct. Neighbours a
    microsecond apart, a whole second (no fraction to print) and clocks on other offsets (naive = UTC)
    must sort as strings exactly as they do in time."""
    in_time_order = [
        datetime(2026, 3, 1, 9, 59, 59, 999_999),
        datetime(2026, 3, 1, 12, 0, 0, tzinfo=timezone(timedelta(hours=2))),
        datetime(2026, 3, 1, 10, 0, 0, 1, tzinfo=UTC),
        datetime(2026, 3, 1, 5, 0, 0, 500_000, tzinfo=timezone(timedelta(hours=-5))),
        datetime(2026, 3, 1, 10, 0, 1, tzinfo=UTC),
        datetime(2026, 3, 2, 0, 0, 0, tzinfo=UTC),
    ]
    rendered = [isoformat(moment) for moment in in_time_order]
    assert rendered[1] == "2026-03-01T10:00:00.000000+00:00"
    assert all(earlier < later for earlier, later in zip(rendered, rendered[1:], strict=False)), rendered

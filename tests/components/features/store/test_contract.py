"""The storage contract: every backend passes the same suite (parametrised in tests/conftest.py)."""

import time
from dataclasses import replace
from datetime import UTC, datetime, timedelta, timezone

import anyio
import pytest

from components.features.store import create_store
from components.features.store.base import TOMBSTONE, EntityWrite, OnlineStore
from core.exceptions import FeatureStoreError, StoreUnavailable
from core.settings import Settings
from core.timeutils import epoch_to_iso, isoformat
from devservers import free_port
from tests.components.features.store.conftest import drain
from tests.conftest import STORE_BACKENDS
from tests.factories import LATER, NOW, make_erasure, make_write

pytestmark = [pytest.mark.anyio, pytest.mark.backends(*STORE_BACKENDS)]
TRACEPARENT = "00-0af7651916cd43dd8448eb211c80319c-b7ad6b7169203331-01"


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


async def test_read_entity_returns_every_stored_category(store: OnlineStore, settings: Settings, user) -> None:
    await store.write(
        user, "user-1", [make_write("user_features", {"a": 1}), make_write("credit_features", {"score": 700})], NOW
    )
    await store.write(user, "user-10", [make_write("trans_features", {"b": 2})], NOW)
    await store.write(settings.entity_types["account_id"], "user-1", [make_write("trans_features", {"c": 3})], NOW)
    await store.delete(user, "user-1", make_erasure("credit_features"))
    found = await store.read_entity(user, "user-1")
    assert sorted(found) == ["credit_features", "user_features"]
    assert found["user_features"].data == {"a": 1}
    assert found["credit_features"].metadata[TOMBSTONE] == LATER, "a tombstone is listed too"
    assert await store.read_entity(user, "nobody") == {}


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


async def test_events_keep_the_trace_context_of_their_write(store: OnlineStore, user) -> None:
    traced = make_write("user_features", {"a": 1})
    traced = replace(traced, event=replace(traced.event, traceparent=TRACEPARENT))
    untraced = make_write("credit_features", {"b": 2})
    await store.write(user, "user-1", [traced, untraced], NOW)
    claimed = {event.payload["resource_name"]: event.traceparent for event in await store.claim_events(10, 30)}
    assert claimed == {"user_features": TRACEPARENT, "credit_features": None}


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
    deletions = [event for event in await drain(store) if event.payload["event_type"] == "feature_deleted"]
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


async def test_a_named_category_without_data_is_kept_out_all_the_same(store: OnlineStore, user) -> None:
    """Nothing removed, so no event and not listed; older writes arriving later are skipped all the same."""
    assert await store.delete(user, "user-1", make_erasure("trans_features")) == []
    assert await store.claim_events(10, 30) == []
    late = make_write("trans_features", {"t": 1}, event_time=NOW)
    assert await store.write(user, "user-1", [late], NOW) == ["trans_features"]
    assert (await store.read(user, "user-1", {"trans_features": None}))["trans_features"].data == {}
    newest = "2026-01-01T00:00:02.000000+00:00"
    fresh = make_write("trans_features", {"t": 2}, event_time=newest, updated_at=newest)
    assert await store.write(user, "user-1", [fresh], newest) == []
    assert (await store.read(user, "user-1", {"trans_features": None}))["trans_features"].data == {"t": 2}


async def test_a_second_deletion_moves_the_tombstone_forward(store: OnlineStore, user) -> None:
    await store.write(user, "user-1", [make_write("user_features", {"a": 1})], NOW)
    assert await store.delete(user, "user-1", make_erasure("user_features")) == ["user_features"]
    await drain(store)
    second = "2026-01-01T00:00:03.000000+00:00"
    assert await store.delete(user, "user-1", make_erasure(event_time=second)) == []
    assert await store.claim_events(10, 30) == [], "nothing was removed the second time"
    between = "2026-01-01T00:00:02.000000+00:00"
    late = make_write("user_features", {"a": 2}, event_time=between)
    assert await store.write(user, "user-1", [late], between) == ["user_features"]
    found = (await store.read(user, "user-1", {"user_features": None}))["user_features"]
    assert (found.data, found.metadata["event_time"]) == ({}, second)


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
    await store.retry_events([first[0].event_id], delay_seconds=0, count_attempt=True)
    again = await store.claim_events(10, lease_seconds=30)
    assert [event.event_id for event in again] == [first[0].event_id]
    assert again[0].attempts == 1
    assert again[0].payload == first[0].payload


async def test_retry_delay_and_delete(store: OnlineStore, user) -> None:
    await store.write(user, "user-1", [make_write("user_features", {"a": 1})], NOW)
    (event,) = await store.claim_events(10, lease_seconds=30)
    await store.retry_events([event.event_id], delay_seconds=60, count_attempt=True)
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
        store.read_entity(user, "user-1"),
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


async def test_a_pipeline_failure_counts_no_attempt(store: OnlineStore, user) -> None:
    await store.write(user, "user-1", [make_write("user_features", {"a": 1})], NOW)
    (event,) = await store.claim_events(10, lease_seconds=30)
    await store.retry_events([event.event_id], delay_seconds=0, count_attempt=False)
    (again,) = await store.claim_events(10, lease_seconds=30)
    assert again.attempts == 0


async def _claimed(store: OnlineStore, user, categories: list[str]) -> list[str]:
    await store.write(user, "user-1", [make_write(category, {"a": 1}) for category in categories], NOW)
    claimed = await store.claim_events(10, lease_seconds=30)
    assert len(claimed) == len(categories)
    return [event.event_id for event in claimed]


async def test_dead_letters_leave_the_retry_loop_and_are_kept(store: OnlineStore, user) -> None:
    ids = await _claimed(store, user, ["user_features", "credit_features", "trans_features"])
    await store.retry_events(ids[:1], delay_seconds=0, count_attempt=True)
    assert [event.event_id for event in await store.claim_events(10, lease_seconds=30)] == ids[:1]
    before = time.time()
    await store.dead_letter_events({ids[0]: "failed 2 times; last: nope", ids[1]: "too large"})
    await store.dead_letter_events({"no-such-event": "gone"})
    # A late release of a dead letter (another replica's) does not put it back among the due events.
    await store.retry_events(ids[:2], delay_seconds=0, count_attempt=False)
    stats = await store.outbox_stats()
    assert (stats.pending, stats.dead_letters) == (1, 2)
    await store.retry_events(ids[2:], delay_seconds=0, count_attempt=False)
    assert [event.event_id for event in await store.claim_events(10, lease_seconds=30)] == ids[2:]

    page = await store.list_dead_letters(10, None)
    assert page.next is None
    letters = {letter.event.event_id: letter for letter in page.dead_letters}
    assert set(letters) == set(ids[:2])
    assert (letters[ids[0]].reason, letters[ids[0]].event.attempts) == ("failed 2 times; last: nope", 2)
    assert (letters[ids[1]].reason, letters[ids[1]].event.attempts) == ("too large", 1)
    assert letters[ids[1]].event.payload["resource_name"] == "credit_features"
    assert letters[ids[1]].event.key == "bright_uid:user-1"
    assert all(before - 1 <= letter.dead_at_epoch <= time.time() + 1 for letter in page.dead_letters)


async def test_dead_letters_are_listed_in_pages(store: OnlineStore, user) -> None:
    ids = await _claimed(store, user, ["user_features", "credit_features", "trans_features"])
    for event_id in ids:
        await store.dead_letter_events({event_id: "too large"})
    first = await store.list_dead_letters(2, None)
    assert len(first.dead_letters) == 2 and first.next is not None
    second = await store.list_dead_letters(2, first.next)
    assert second.next is None
    listed = [letter.event.event_id for letter in first.dead_letters + second.dead_letters]
    assert listed == ids, "the longest dead first, each once"


async def test_redrive_makes_dead_letters_due_with_no_attempts(store: OnlineStore, user) -> None:
    ids = await _claimed(store, user, ["user_features", "credit_features", "trans_features"])
    await store.retry_events(ids, delay_seconds=0, count_attempt=True)
    await store.claim_events(10, lease_seconds=30)
    for event_id in ids:
        await store.dead_letter_events({event_id: "too large"})
    assert sorted(await store.redrive_dead_letters([ids[1], "no-such-event", ids[1]], 100)) == [ids[1]]
    assert await store.redrive_dead_letters([ids[1]], 100) == [], "no longer a dead letter"
    (event,) = await store.claim_events(10, lease_seconds=30)
    assert (event.event_id, event.attempts) == (ids[1], 0)
    assert event.payload["resource_name"] == "credit_features"
    assert await store.redrive_dead_letters(None, 1) == [ids[0]], "the longest dead first"
    assert await store.redrive_dead_letters(None, 100) == [ids[2]]
    assert (await store.outbox_stats()).dead_letters == 0
    assert (await store.list_dead_letters(10, None)).dead_letters == []
    assert {event.event_id for event in await store.claim_events(10, lease_seconds=30)} == {ids[0], ids[2]}


async def test_a_dead_letter_keeps_the_trace_context_of_its_write(store: OnlineStore, user) -> None:
    traced = make_write("user_features", {"a": 1})
    traced = replace(traced, event=replace(traced.event, traceparent=TRACEPARENT))
    await store.write(user, "user-1", [traced], NOW)
    (event,) = await store.claim_events(10, lease_seconds=30)
    await store.dead_letter_events({event.event_id: "too large"})
    (letter,) = (await store.list_dead_letters(10, None)).dead_letters
    assert letter.event.traceparent == TRACEPARENT
    assert await store.redrive_dead_letters(None, 10) == [event.event_id]
    (again,) = await store.claim_events(10, lease_seconds=30)
    assert again.traceparent == TRACEPARENT, "a re-driven event is still the write's"

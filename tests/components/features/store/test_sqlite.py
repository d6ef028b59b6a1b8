"""The embedded store's group commit (many writers share one transaction; a savepoint each once one fails)
and its scheduling: what runs on the event loop and what in a worker thread."""

import asyncio
import sqlite3
import threading
from collections.abc import AsyncIterator
from dataclasses import replace
from pathlib import Path

import pytest

from components.features.store.base import EntityWrite
from components.features.store.sqlite import SQLiteStore
from core.exceptions import FeatureStoreError
from core.settings import Settings
from tests.factories import NOW, make_write

pytestmark = pytest.mark.anyio
USER = Settings(_env_file=None).entity_types["bright_uid"]


@pytest.fixture
async def sqlite_store(tmp_path: Path) -> AsyncIterator[SQLiteStore]:
    store = SQLiteStore(tmp_path / "features.db")
    await store.initialise()
    yield store
    await store.close()


async def test_a_failing_request_in_a_group_rolls_back_alone(sqlite_store: SQLiteStore) -> None:
    """Requests whose events collide fail; every other request of the same groups commits."""
    user = USER

    async def write(index: int) -> str:
        event_id = "shared" if index % 4 == 0 else None
        writes = [
            make_write("user_features", {"i": index}, event_id=event_id),
            make_write("credit_features", {"i": index}),
        ]
        try:
            await sqlite_store.write(user, f"user-{index}", writes, NOW)
        except Exception:
            return "failed"
        return "ok"

    outcomes = await asyncio.gather(*(write(index) for index in range(24)))
    assert outcomes.count("failed") == 5, "of the six requests sharing an event id only the first commits"
    for index, outcome in enumerate(outcomes):
        found = await sqlite_store.read(user, f"user-{index}", {"user_features": None, "credit_features": None})
        if outcome == "ok":
            assert {name: stored.data for name, stored in found.items()} == {
                "user_features": {"i": index},
                "credit_features": {"i": index},
            }
        else:
            assert found == {}, "a failed request leaves nothing, not even its other category"
    assert (await sqlite_store.outbox_stats()).pending == 2 * outcomes.count("ok")


async def test_a_group_takes_savepoints_only_once_a_request_fails(tmp_path: Path, monkeypatch) -> None:
    """Savepoints cost a bulk write ~14% of its store time: a batch that commits takes none; a batch
    with a failing request is applied again, each request in its own savepoint."""
    store = SQLiteStore(tmp_path / "features.db")
    statements: list[str] = []
    connect = store._connect

    def traced(*args: object, **kwargs: object) -> sqlite3.Connection:
        connection = connect(*args, **kwargs)  # type: ignore[arg-type]
        connection.set_trace_callback(statements.append)
        return connection

    monkeypatch.setattr(store, "_connect", traced)
    await store.initialise()
    entities = [EntityWrite(f"e{index}", [make_write("user_features", {"i": index})]) for index in range(3)]
    assert await store.write_many(USER, entities, NOW) == [[], [], []]
    assert not [statement for statement in statements if "SAVEPOINT" in statement]
    colliding = [
        EntityWrite("a", [make_write("user_features", {"i": 1}, event_id="same")]),
        EntityWrite("b", [make_write("user_features", {"i": 2}, event_id="same")]),
        EntityWrite("c", [make_write("user_features", {"i": 3})]),
    ]
    results = await store.write_many(USER, colliding, NOW)
    assert results[0] == [] and results[2] == [] and isinstance(results[1], FeatureStoreError)
    assert len([statement for statement in statements if statement.startswith("SAVEPOINT")]) == 3
    assert (await store.read(USER, "b", {"user_features": None})) == {}
    assert (await store.read(USER, "c", {"user_features": None}))["user_features"].data == {"i": 3}
    await store.close()


def threads_used(monkeypatch: pytest.MonkeyPatch, store: SQLiteStore) -> list[str]:
    """Record the thread each SQL statement of `store` runs on."""
    used: list[str] = []
    connect = store._connect

    def traced(*args: object, **kwargs: object) -> sqlite3.Connection:
        connection = connect(*args, **kwargs)  # type: ignore[arg-type]
        connection.set_trace_callback(lambda _: used.append(threading.current_thread().name))
        return connection

    monkeypatch.setattr(store, "_connect", traced)
    return used


async def test_single_reads_run_on_the_loop_and_writes_in_a_worker_thread(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    store = SQLiteStore(tmp_path / "features.db")
    await store.initialise()
    used = threads_used(monkeypatch, store)
    loop_thread = threading.current_thread().name
    await store.write(USER, "user-1", [make_write("user_features", {"a": 1})], NOW)
    assert used and loop_thread not in used, "a write ran on the event loop"
    used.clear()
    assert (await store.read(USER, "user-1", {"user_features": None}))["user_features"].data == {"a": 1}
    assert set(used) == {loop_thread}, "a single read left the event loop"
    used.clear()
    small = await store.read_batch(USER, [f"user-{index}" for index in range(50)], {"user_features": None})
    assert set(used) == {loop_thread} and set(small.found) == {"user-1"}
    used.clear()
    large = await store.read_batch(USER, [f"user-{index}" for index in range(500)], {"user_features": None})
    assert used and loop_thread not in used, "a large batch read ran on the event loop"
    assert set(large.found) == {"user-1"}
    await store.close()


async def test_a_read_that_would_wait_for_a_lock_goes_to_a_worker_thread(
    sqlite_store: SQLiteStore, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The loop's connection never waits (busy_timeout 0): a read that finds the file busy is retried
    in a worker thread, which may wait as long as the store's busy timeout allows."""
    await sqlite_store.write(USER, "user-1", [make_write("user_features", {"a": 1})], NOW)
    await sqlite_store.read(USER, "user-1", {"user_features": None})
    loop_connection = sqlite_store._loop_connection()
    assert loop_connection is not None
    assert loop_connection.execute("PRAGMA busy_timeout").fetchone() == (0,)
    loop_thread = threading.current_thread().name
    readers: list[str] = []

    class Busy:
        def execute(self, *args: object) -> None:
            readers.append(threading.current_thread().name)
            error = sqlite3.OperationalError("database is locked")
            error.sqlite_errorcode = sqlite3.SQLITE_BUSY
            raise error

    monkeypatch.setattr(sqlite_store, "_loop_connection", Busy)
    assert (await sqlite_store.read(USER, "user-1", {"user_features": None}))["user_features"].data == {"a": 1}
    assert readers == [loop_thread], "the busy loop connection was tried once, then a worker thread read"


async def test_a_file_from_before_trace_contexts_gains_their_column(tmp_path: Path) -> None:
    """An outbox written by an earlier version, with an event still pending, keeps working after an upgrade."""
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE outbox (event_id TEXT PRIMARY KEY, key TEXT NOT NULL, payload BLOB NOT NULL,"
        " created_at REAL NOT NULL, attempts INTEGER NOT NULL DEFAULT 0, due_at REAL NOT NULL,"
        " lease_until REAL NOT NULL DEFAULT 0);"
        "INSERT INTO outbox (event_id, key, payload, created_at, due_at) VALUES ('old-1', 'k', '{}', 1, 0);"
    )
    old.close()
    store = SQLiteStore(path)
    try:
        await store.initialise()
        write = make_write("user_features", {"a": 1})
        write = replace(write, event=replace(write.event, traceparent="00-" + "1" * 32 + "-" + "2" * 16 + "-01"))
        await store.write(USER, "user-1", [write], NOW)
        claimed = {event.event_id: event.traceparent for event in await store.claim_events(10, 30)}
        assert claimed == {"old-1": None, write.event.event_id: write.event.traceparent}
    finally:
        await store.close()
    # A second process opening the upgraded file finds the column there and leaves it alone.
    again = SQLiteStore(path)
    await again.initialise()
    await again.close()


async def test_a_file_from_before_versions_gains_them_and_counts_from_its_rows(tmp_path: Path) -> None:
    """Rows written before versions read as version 0: their next change is version 1."""
    path = tmp_path / "old.db"
    old = sqlite3.connect(path)
    old.executescript(
        "CREATE TABLE features (entity_type TEXT NOT NULL, entity_value TEXT NOT NULL, category TEXT NOT NULL,"
        " data BLOB NOT NULL, created_at TEXT NOT NULL, metadata BLOB NOT NULL, event_time TEXT NOT NULL,"
        " expires_at REAL, PRIMARY KEY (entity_type, entity_value, category)) WITHOUT ROWID;"
        "INSERT INTO features VALUES ('bright_uid', 'user-1', 'user_features', '{}', 'x', '{}', '', NULL);"
        "CREATE TABLE dead_letters (event_id TEXT PRIMARY KEY, key TEXT NOT NULL, payload BLOB NOT NULL,"
        " created_at REAL NOT NULL, attempts INTEGER NOT NULL, reason TEXT NOT NULL, dead_at REAL NOT NULL,"
        " traceparent TEXT);"
    )
    old.close()
    store = SQLiteStore(path)
    try:
        await store.initialise()
        write = make_write("user_features", {"a": 1})
        await store.write(USER, "user-1", [write], NOW)
        stored = (await store.read(USER, "user-1", {"user_features": None}))["user_features"]
        assert (stored.metadata["version"], write.event.payload["version"]) == (1, 1)
        await store.dead_letter_events({write.event.event_id: "for the test"})
        assert await store.redrive_dead_letters(None, 10) == [write.event.event_id]
    finally:
        await store.close()


async def test_a_fresh_stores_first_read_waits_out_a_lock_taken_while_its_loop_connection_opens(
    tmp_path: Path,
) -> None:
    """Opening the loop's connection reads the schema (`PRAGMA synchronous`), which a lock can refuse at
    once: the read then goes to a worker thread and waits, rather than failing with a 503."""
    path = tmp_path / "features.db"
    first = SQLiteStore(path)
    await first.write(USER, "user-1", [make_write("user_features", {"a": 1})], NOW)
    await first.close()
    store = SQLiteStore(path)
    await store.initialise()
    blocker = sqlite3.connect(path, isolation_level=None, check_same_thread=False)
    blocker.execute("PRAGMA locking_mode = EXCLUSIVE")
    blocker.execute("BEGIN EXCLUSIVE")
    blocker.execute("INSERT INTO probe (id, at) VALUES (2, 0)")

    def unlock() -> None:
        blocker.execute("COMMIT")
        blocker.close()

    release = threading.Timer(0.3, unlock)
    release.start()
    try:
        found = await store.read(USER, "user-1", {"user_features": None})
        assert found["user_features"].data == {"a": 1}
        assert not release.is_alive(), "the read waited for the lock to go"
        assert store._loop_connection() is not None, "once the lock is gone the loop gets its connection"
    finally:
        release.join()
        await store.close()

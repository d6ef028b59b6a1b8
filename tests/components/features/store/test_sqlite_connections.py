"""The embedded store's connections are bounded: bursts served by worker threads that then retire leave no
connection (nor file descriptor) behind, and a store that cannot open one more connection is not ready."""

import asyncio
import functools
import os
import sqlite3
import threading
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from components.features.store.base import EntityWrite
from components.features.store.sqlite import SQLiteStore
from components.features.store.sqlite.connections import ConnectionPool
from components.features.store.sqlite.store import MAX_IDLE_CONNECTIONS
from core.exceptions import StoreUnavailable
from core.settings import Settings
from tests.factories import NOW, make_write

USER = Settings(_env_file=None).entity_types["bright_uid"]
CLIENTS = 16
CYCLES = 8


def open_files(path: Path) -> list[str]:
    """The store's files (the database, its log, its shared memory) as often as this process holds them open."""
    targets = []
    for descriptor in os.listdir("/proc/self/fd"):
        try:
            target = os.readlink(f"/proc/self/fd/{descriptor}")
        except OSError:
            continue
        if target.startswith(str(path)):
            targets.append(os.path.basename(target))
    return sorted(targets)


def open_descriptors(path: Path) -> int:
    return len(open_files(path))


async def burst(store: SQLiteStore, cycle: int) -> None:
    """CLIENTS clients at once, each a bulk write of 50 entities then a batch read of 200 (a worker thread each)."""

    async def one_client(client: int) -> None:
        values = [f"user-{cycle}-{client}-{index}" for index in range(50)]
        entities = [EntityWrite(value, [make_write("user_features", {"i": 1})]) for value in values]
        await store.write_many(USER, entities, NOW)
        read = await store.read_batch(
            USER, [*values, *(f"absent-{index}" for index in range(150))], {"user_features": None}
        )
        assert len(read.found) == 50

    await asyncio.gather(*(one_client(client) for client in range(CLIENTS)))


def in_a_thread_of_its_own(work: Callable[[], None]) -> None:
    """Run `work` in a thread that then ends, as the thread pool's idle workers and a restarted loop do, and
    wait for every thread it started to end too."""
    before = threading.active_count()
    thread = threading.Thread(target=work)
    thread.start()
    thread.join()
    deadline = time.monotonic() + 10
    while threading.active_count() > before:
        assert time.monotonic() < deadline, "the burst's worker threads did not end"
        time.sleep(0.01)


def test_bursts_from_retiring_threads_leave_a_bounded_number_of_descriptors(tmp_path: Path, report) -> None:
    store = SQLiteStore(tmp_path / "features.db")
    counts = []
    for cycle in range(CYCLES):
        # Each cycle on an event loop of its own, in a thread of its own: its worker threads stop with it.
        in_a_thread_of_its_own(functools.partial(asyncio.run, burst(store, cycle)))
        counts.append(open_descriptors(store.path))
    report(f"descriptors open on the store's files after each burst: {counts}")
    # A connection holds the database and its log open (a closed one's database descriptor SQLite may keep
    # for the next to reuse); one kept per ended thread would add 2 x CLIENTS a burst.
    assert max(counts) <= 2 * CLIENTS + 8, f"descriptors grew burst after burst: {counts}"
    assert len(store._connections) <= 1 + MAX_IDLE_CONNECTIONS, "the relay's and the idle ones, none per ended thread"
    asyncio.run(store.close())
    left = open_files(store.path)
    alive = sorted(thread.name for thread in threading.enumerate())
    assert not left, f"open after close: {left}; threads alive: {alive}; connections: {len(store._connections)}"


def test_a_thread_gets_its_connection_back_until_it_ends_and_the_next_reuses_it() -> None:
    opened: list[sqlite3.Connection] = []

    def connect() -> sqlite3.Connection:
        opened.append(sqlite3.connect(":memory:", check_same_thread=False))
        return opened[-1]

    pool = ConnectionPool(connect, max_idle=1)
    seen: list[sqlite3.Connection] = []
    for _ in range(3):
        in_a_thread_of_its_own(lambda: seen.extend([pool.thread_connection(), pool.thread_connection()]))
    assert len(opened) == 1 and all(connection is opened[0] for connection in seen)

    held = threading.Event()
    release = threading.Event()

    def hold() -> None:
        pool.thread_connection()
        held.set()
        release.wait()

    holders = [threading.Thread(target=hold) for _ in range(3)]
    for holder in holders:
        held.clear()
        holder.start()
        held.wait()
    assert len(pool.connections) == 3
    release.set()
    for holder in holders:
        holder.join()
    assert len(pool.connections) == 1, "one kept idle, the others closed with their threads"
    pool.close()
    assert pool.connections == []


def test_ready_fails_when_no_connection_can_be_opened(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    store = SQLiteStore(tmp_path / "features.db")

    async def scenario() -> None:
        await store.initialise()
        await store.check()  # the worker threads' connections are open now and keep working

        def refuse(*args: object, **kwargs: object) -> sqlite3.Connection:
            raise sqlite3.OperationalError("unable to open database file")

        monkeypatch.setattr(store, "_connect", refuse)
        with pytest.raises(StoreUnavailable):
            await store.check()
        await store.close()

    asyncio.run(scenario())

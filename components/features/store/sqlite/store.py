"""Embedded online store: one SQLite file in WAL mode, a connection per thread (`connections.py`).

Scheduling is decided here. A single entity's read runs on the event loop: from the OS page cache
it takes tens of microseconds, less than a hand-off to a worker thread. Its connection waits for no
lock (`busy_timeout` 0): in WAL mode a reader is only ever kept waiting by recovery or a checkpoint
restarting the log, and then the read is retried in a worker thread, where waiting is harmless.
Writes, the outbox's bookkeeping, batch reads of more than `INLINE_BATCH_KEYS` keys, schema creation
and the readiness check run in a worker thread (anyio's, sized by `THREADPOOL_SIZE`): they can wait
on fsync, on the write lock, or read many pages.

WAL lets readers run while one writer commits. Writers of this process queue on a lock of their
own (the group commit, `commit.py`): SQLite's busy handler sleeps in growing steps (up to 100 ms) while it waits for the file's
write lock, which under concurrent writes turns into tail latencies of a second. `BEGIN IMMEDIATE`
still takes the file's lock up front, so writers of other processes on the same file wait on
`busy_timeout` instead of failing half-way through a transaction.
"""

import errno
import logging
import os
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import ParamSpec, TypeVar

import anyio.to_thread

from components.events.events import OutboxEvent
from components.events.outbox import DeadLetterCursor, DeadLetterPage, OutboxStats
from components.features.store.base import (
    BatchRead,
    CategoryWrite,
    EntityWrite,
    Erasure,
    Idempotency,
    KeptVersion,
    StoredCategory,
    Wanted,
    chunks,
)
from components.features.store.sqlite.commit import GroupCommit, rollback
from components.features.store.sqlite.connections import ConnectionPool
from components.features.store.sqlite.history import SCHEMA as HISTORY_SCHEMA
from components.features.store.sqlite.history import list_history
from components.features.store.sqlite.outbox import ORDER_INDEX as OUTBOX_ORDER_INDEX
from components.features.store.sqlite.outbox import SCHEMA as OUTBOX_SCHEMA
from components.features.store.sqlite.outbox import SQLiteOutbox
from components.features.store.sqlite.write import IDEMPOTENCY_SCHEMA, PendingWrite, outcome
from core.exceptions import FeatureStoreError, StoreFull, StoreUnavailable
from core.metrics import metrics
from core.settings import EntityType

logger = logging.getLogger("feature_store.sqlite")

SCHEMA = """
CREATE TABLE IF NOT EXISTS features (
    entity_type TEXT NOT NULL,
    entity_value TEXT NOT NULL,
    category TEXT NOT NULL,
    data BLOB NOT NULL,
    created_at TEXT NOT NULL,
    metadata BLOB NOT NULL,
    event_time TEXT NOT NULL,
    expires_at REAL,
    version INTEGER NOT NULL DEFAULT 0,
    PRIMARY KEY (entity_type, entity_value, category)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS probe (id INTEGER PRIMARY KEY, at REAL NOT NULL);
"""
ADDED_COLUMNS = {
    "features": {"version": "INTEGER NOT NULL DEFAULT 0"},
    "outbox": {"traceparent": "TEXT", "stream": "TEXT NOT NULL DEFAULT ''", "version": "INTEGER NOT NULL DEFAULT 0"},
    "dead_letters": {"stream": "TEXT NOT NULL DEFAULT ''", "version": "INTEGER NOT NULL DEFAULT 0"},
}
"""Columns added since a table's first version: files created before them gain them at start-up."""

SQLITE_MAX_VARIABLES = 900
BUSY_TIMEOUT_MS = 5000
INLINE_BATCH_KEYS = 100
"""Batch reads of at most this many keys (entities x categories) run on the event loop (a few
hundred microseconds); larger ones in a worker thread, so one request never stalls the others."""
_BUSY = (sqlite3.SQLITE_BUSY, sqlite3.SQLITE_LOCKED)
MIN_FREE_BYTES = 1 << 20
"""The write probe reports the store full below this much free space on its file system: a write
can need new pages in the log and the database file, and the probe's own write may fit in log
space SQLite reuses."""
FULL_RETRY_AFTER = 30
"""Seconds a client is told to wait after a write refused for a full disk: freeing space takes an operator."""
MAX_IDLE_CONNECTIONS = 4
"""Connections of ended worker threads kept for the next ones; the others are closed."""
SCAN_CATEGORIES = 3
"""Reading at least this many categories of an entity, its rows (adjacent in the primary key) are read in one
scan and filtered by category rather than found by a seek each: 50 entities of 6 categories, 5 read: 759 us a
query instead of 921; 1 read: 503 instead of 396 (the break-even was at 2-3 of 6)."""


def _is_full(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno == errno.ENOSPC
    code = getattr(exc, "sqlite_errorcode", None)
    if code is not None:
        return code & 0xFF == sqlite3.SQLITE_FULL
    return "database or disk is full" in str(exc)


def _is_read_only(exc: BaseException) -> bool:
    if isinstance(exc, OSError):
        return exc.errno == errno.EROFS
    code = getattr(exc, "sqlite_errorcode", None)
    return code is not None and code & 0xFF == sqlite3.SQLITE_READONLY


P = ParamSpec("P")
R = TypeVar("R")


def _add_columns(connection: sqlite3.Connection) -> None:
    """Bring a file written by an earlier version up to `SCHEMA` (another process may be doing the same)."""
    for table, columns in ADDED_COLUMNS.items():
        present = {row[1] for row in connection.execute(f"PRAGMA table_info({table})")}
        for column, kind in columns.items():
            if column not in present:
                try:
                    connection.execute(f"ALTER TABLE {table} ADD COLUMN {column} {kind}")
                except sqlite3.OperationalError as exc:
                    if "duplicate column" not in str(exc):
                        raise


def _stored(row: tuple) -> StoredCategory:
    """The features and their metadata stay JSON until something needs their values (a projection, a
    history lookup): a whole category is served as stored. A tombstone's row has no `created_at`
    (`erase.PUT_TOMBSTONE`); `event_time` is the time the data is of, as the metadata says."""
    _, data, created_at, metadata, expires_at, event_time = row
    return StoredCategory(
        None,
        None,
        expires_at,
        data_json=data,
        metadata_json=metadata,
        created_at=created_at,
        event_time=event_time,
        erased=created_at == "",
    )


def _category_in(count: int) -> str:
    """The condition on `count` categories; `+category` keeps SQLite from seeking each (`SCAN_CATEGORIES`)."""
    column = "+category" if count >= SCAN_CATEGORIES else "category"
    return f"{column} IN ({','.join('?' * count)})"


async def _in_thread(call: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    return await anyio.to_thread.run_sync(lambda: call(*args, **kwargs))


class SQLiteStore:
    name = "sqlite"
    max_categories_per_write = 1000

    def __init__(self, path: Path, synchronous: str = "FULL") -> None:
        self.path = path
        self.synchronous = synchronous
        self._workers = ConnectionPool(lambda: self._connect(self.synchronous), MAX_IDLE_CONNECTIONS)
        self._loop = ConnectionPool(lambda: self._connect(self.synchronous, busy_timeout_ms=0), max_idle=0)
        self._lock = threading.Lock()
        self._write_lock = threading.Lock()
        self._outbox: sqlite3.Connection | None = None
        self._schema_ready = False
        self._group = GroupCommit(lambda: self._connection, self._write_lock, self._translate_errors)
        self.outbox = SQLiteOutbox(
            lambda: self._outbox_connection, lambda: self._connection, self._write_lock, self._translate_errors
        )

    def _connect(self, synchronous: str, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> sqlite3.Connection:
        connection = sqlite3.connect(
            self.path, isolation_level=None, check_same_thread=False, timeout=busy_timeout_ms / 1000
        )
        try:
            connection.execute(f"PRAGMA busy_timeout = {busy_timeout_ms}")
            # Reads the schema, so it can meet a lock: with busy_timeout 0 it fails at once.
            connection.execute(f"PRAGMA synchronous = {synchronous}")
        except BaseException:
            connection.close()
            raise
        return connection

    @property
    def _connections(self) -> list[sqlite3.Connection]:
        """Every open connection: the worker threads', the event loop's and the relay's."""
        outbox = [self._outbox] if self._outbox is not None else []
        return [*self._workers.connections, *self._loop.connections, *outbox]

    @property
    def _connection(self) -> sqlite3.Connection:
        """This thread's connection, for work that may wait (worker threads)."""
        self._create_schema()
        return self._workers.thread_connection()

    def _loop_connection(self) -> sqlite3.Connection | None:
        """The event loop thread's connection, which never waits for a lock; None until the schema is
        ready (creating it may wait: the caller goes to a worker thread instead)."""
        return self._loop.thread_connection() if self._schema_ready else None

    async def _run_inline(self, call: Callable[[sqlite3.Connection], R]) -> R:
        """`call(connection)` on the event loop, or in a worker thread when it would have to wait (opening
        the loop's connection included: its first statement reads the schema and may meet a lock)."""
        try:
            connection = self._loop_connection()
            if connection is not None:
                return call(connection)
        except sqlite3.OperationalError as exc:
            if exc.sqlite_errorcode & 0xFF not in _BUSY:
                raise
        return await _in_thread(lambda: call(self._connection))

    @property
    def _outbox_connection(self) -> sqlite3.Connection:
        """The relay's bookkeeping (leases, deletions of delivered events) commits without waiting
        for the disk: losing it to a power cut only means publishing an event again, which
        at-least-once delivery allows. Used under `_write_lock` only."""
        if self._outbox is None:
            self._create_schema()
            self._outbox = self._connect("NORMAL" if self.synchronous != "OFF" else "OFF")
        return self._outbox

    @contextmanager
    def _translate_errors(self) -> Iterator[None]:
        """SQLite's errors in the service's terms, with stable messages: SQLite's own words (paths,
        SQL) go to the log only."""
        try:
            yield
        except (sqlite3.OperationalError, OSError) as exc:
            logger.warning("embedded store failed: %s", exc)
            if _is_full(exc):
                raise StoreFull(
                    "the embedded store is full: writes are refused until disk space is freed",
                    retry_after=FULL_RETRY_AFTER,
                ) from exc
            if _is_read_only(exc):
                raise StoreUnavailable("the embedded store is read-only", retry_after=FULL_RETRY_AFTER) from exc
            # The file cannot be opened, created or locked in time: like DynamoDB unreachable (503).
            raise StoreUnavailable("embedded store unavailable") from exc
        except sqlite3.IntegrityError as exc:
            # Like DynamoDB's rejections: a bug of ours (500); the log keeps the constraint that failed.
            logger.warning("embedded store rejected a write: %s", exc)
            raise FeatureStoreError("embedded store rejected the write") from exc

    async def initialise(self) -> list[str]:
        if self._schema_ready:
            return []
        return await _in_thread(self._create_schema)

    def _create_schema(self) -> list[str]:
        if self._schema_ready:
            return []
        with self._lock, self._translate_errors():
            if self._schema_ready:
                return []
            self.path.parent.mkdir(parents=True, exist_ok=True)
            connection = sqlite3.connect(self.path, isolation_level=None, timeout=BUSY_TIMEOUT_MS / 1000)
            try:
                connection.execute("PRAGMA journal_mode = WAL")
                connection.executescript(SCHEMA + OUTBOX_SCHEMA + IDEMPOTENCY_SCHEMA + HISTORY_SCHEMA)
                _add_columns(connection)
                connection.execute(OUTBOX_ORDER_INDEX)
            finally:
                connection.close()
            self._schema_ready = True
        return [f"opened embedded store {self.path}"]

    async def check(self) -> None:
        """A read on a new connection (so a process that can open no more, out of file descriptors, is not
        ready), then the write probe: one attempt each (the caller bounds the time)."""

        def check() -> None:
            with self._translate_errors():
                self._create_schema()
                connection = self._connect(self.synchronous)
                try:
                    connection.execute("SELECT count(*) FROM sqlite_master").fetchone()
                finally:
                    connection.close()
            self._probe_write()

        await _in_thread(check)

    def _free_bytes(self) -> int:
        stat = os.statvfs(self.path.parent)
        return stat.f_bavail * stat.f_frsize

    def _probe_write(self) -> None:
        """Commit one small row in a transaction of its own, and look for free space: `writable` again
        when both pass. On the relay's connection, which commits without waiting for the disk."""
        with self._write_lock, self._translate_errors():
            if self._free_bytes() < MIN_FREE_BYTES:
                raise OSError(errno.ENOSPC, "less free space than the write probe asks for")
            connection = self._outbox_connection
            try:
                connection.execute("BEGIN IMMEDIATE")
                connection.execute("INSERT OR REPLACE INTO probe (id, at) VALUES (1, ?)", (time.time(),))
                connection.execute("COMMIT")
            except BaseException:
                rollback(connection)
                raise
        self.writable = True

    @property
    def writable(self) -> bool:
        return self._group.writable

    @writable.setter
    def writable(self, value: bool) -> None:
        self._group.writable = value

    async def read(self, entity_type: EntityType, entity_value: str, wanted: Wanted) -> dict[str, StoredCategory]:
        categories = list(wanted)
        query = (
            "SELECT category, data, created_at, metadata, expires_at, event_time FROM features "
            f"WHERE entity_type = ? AND entity_value = ? AND {_category_in(len(categories))}"
        )
        parameters = (entity_type.name, entity_value, *categories)
        with metrics.timer("sqlite.read", entity_type=entity_type.name), self._translate_errors():
            rows = await self._run_inline(lambda connection: connection.execute(query, parameters).fetchall())
        return {row[0]: _stored(row) for row in rows}

    async def read_entity(self, entity_type: EntityType, entity_value: str) -> dict[str, StoredCategory]:
        query = (
            "SELECT category, data, created_at, metadata, expires_at, event_time FROM features "
            "WHERE entity_type = ? AND entity_value = ?"
        )
        parameters = (entity_type.name, entity_value)
        with metrics.timer("sqlite.read_entity", entity_type=entity_type.name), self._translate_errors():
            rows = await self._run_inline(lambda connection: connection.execute(query, parameters).fetchall())
        return {row[0]: _stored(row) for row in rows}

    async def read_batch(self, entity_type: EntityType, entity_values: Sequence[str], wanted: Wanted) -> BatchRead:
        values = list(dict.fromkeys(entity_values))
        with metrics.timer("sqlite.read_batch", entity_type=entity_type.name), self._translate_errors():
            if len(values) * len(wanted) <= INLINE_BATCH_KEYS:
                found = await self._run_inline(
                    lambda connection: self._read_batch(connection, entity_type, values, wanted)
                )
            else:
                found = await _in_thread(lambda: self._read_batch(self._connection, entity_type, values, wanted))
        return BatchRead(found=found)

    @staticmethod
    def _read_batch(
        connection: sqlite3.Connection, entity_type: EntityType, values: Sequence[str], wanted: Wanted
    ) -> dict[str, dict[str, StoredCategory]]:
        categories = list(wanted)
        category_in = _category_in(len(categories))
        found: dict[str, dict[str, StoredCategory]] = {}
        for chunk in chunks(values, SQLITE_MAX_VARIABLES - len(categories)):
            rows = connection.execute(
                "SELECT entity_value, category, data, created_at, metadata, expires_at, event_time FROM features "
                f"WHERE entity_type = ? AND entity_value IN ({','.join('?' * len(chunk))}) "
                f"AND {category_in}",
                (entity_type.name, *chunk, *categories),
            ).fetchall()
            for row in rows:
                found.setdefault(row[0], {})[row[1]] = _stored(row[1:])
        return found

    async def read_history(
        self, entity_type: EntityType, entity_value: str, categories: Sequence[str]
    ) -> dict[str, list[KeptVersion]]:
        with metrics.timer("sqlite.read_history", entity_type=entity_type.name), self._translate_errors():
            return await self._run_inline(
                lambda connection: list_history(connection, entity_type.name, entity_value, categories)
            )

    async def write(
        self,
        entity_type: EntityType,
        entity_value: str,
        writes: Sequence[CategoryWrite],
        now_iso: str,
        idempotency: Idempotency | None = None,
    ) -> list[str]:
        pending = PendingWrite(entity_type.name, entity_value, writes, now_iso, idempotency=idempotency)
        with metrics.timer("sqlite.write", entity_type=entity_type.name):  # a failed write counts as the call's error
            await _in_thread(self._group.run, [pending])
            if pending.error is not None:
                raise pending.error
        return pending.skipped

    async def write_many(
        self, entity_type: EntityType, entities: Sequence[EntityWrite], now_iso: str
    ) -> list[list[str] | FeatureStoreError]:
        """Every entity queued at once, so one group commit holds them all, each atomic on its own."""
        pending = [
            PendingWrite(entity_type.name, entity.entity_value, entity.writes, now_iso, idempotency=entity.idempotency)
            for entity in entities
        ]
        with metrics.timer("sqlite.write_many", entity_type=entity_type.name):
            await _in_thread(self._group.run, pending)
        return [outcome(one) for one in pending]

    async def delete(self, entity_type: EntityType, entity_value: str, erasure: Erasure) -> list[str]:
        pending = PendingWrite(
            entity_type.name, entity_value, (), erasure.metadata["updated_at"], erasure, erasure.idempotency
        )
        with metrics.timer("sqlite.delete", entity_type=entity_type.name):
            await _in_thread(self._group.run, [pending])
        if pending.error is not None:
            raise pending.error
        return pending.skipped

    # --- outbox: outbox.py ---

    async def claim_events(self, limit: int, lease_seconds: float) -> list[OutboxEvent]:
        return await self.outbox.claim_events(limit, lease_seconds)

    async def delete_events(self, event_ids: Sequence[str]) -> None:
        await self.outbox.delete_events(event_ids)

    async def retry_events(self, event_ids: Sequence[str], delay_seconds: float, *, count_attempt: bool) -> None:
        await self.outbox.retry_events(event_ids, delay_seconds, count_attempt=count_attempt)

    async def dead_letter_events(self, reasons: Mapping[str, str]) -> None:
        await self.outbox.dead_letter_events(reasons)

    async def list_dead_letters(self, limit: int, after: DeadLetterCursor | None) -> DeadLetterPage:
        return await self.outbox.list_dead_letters(limit, after)

    async def redrive_dead_letters(self, event_ids: Sequence[str] | None, limit: int) -> list[str]:
        return await self.outbox.redrive_dead_letters(event_ids, limit)

    async def outbox_stats(self) -> OutboxStats:
        return await self.outbox.outbox_stats()

    async def close(self) -> None:
        # Closing the last connection checkpoints the log into the database file: a worker thread's job.
        await _in_thread(self._close)

    def _close(self) -> None:
        self._workers.close()
        self._loop.close()
        with self._lock:
            if self._outbox is not None:
                self._outbox.close()
            self._outbox = None

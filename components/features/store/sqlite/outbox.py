"""The embedded store's outbox: events committed with the features they announce (the write itself is
`store.py`'s), leased to one relay at a time, deleted once delivered, and the dead letters.

A dead letter moves to a table of its own in one transaction with its removal from the outbox, so the
relay's claims and the backlog count never read it, and nothing is lost between the two.

The relay's bookkeeping runs on one connection that commits without waiting for the disk: losing a
lease or a deletion to a power cut only means publishing an event again, which at-least-once delivery
allows; a transaction that moves an event between the two tables is atomic either way.
"""

import sqlite3
import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager
from typing import ParamSpec, TypeVar

import anyio.to_thread

from components.events.events import OutboxEvent
from components.events.outbox import DeadLetter, DeadLetterCursor, DeadLetterPage, OutboxStats
from components.features.store.base import chunks
from core.metrics import metrics
from core.serialization import loads

SCHEMA = """
CREATE TABLE IF NOT EXISTS outbox (
    event_id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL DEFAULT 0,
    due_at REAL NOT NULL,
    lease_until REAL NOT NULL DEFAULT 0,
    traceparent TEXT,
    stream TEXT NOT NULL DEFAULT '',
    version INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS outbox_due ON outbox (due_at, created_at);
CREATE TABLE IF NOT EXISTS dead_letters (
    event_id TEXT PRIMARY KEY,
    key TEXT NOT NULL,
    payload BLOB NOT NULL,
    created_at REAL NOT NULL,
    attempts INTEGER NOT NULL,
    reason TEXT NOT NULL,
    dead_at REAL NOT NULL,
    traceparent TEXT,
    stream TEXT NOT NULL DEFAULT '',
    version INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS dead_letters_dead_at ON dead_letters (dead_at, event_id);
"""
ORDER_INDEX = "CREATE INDEX IF NOT EXISTS outbox_stream ON outbox (stream, version)"
"""Created once the columns are there (a file from before them gains them at start-up first)."""

MAX_VARIABLES = 900

HEAD = "NOT EXISTS (SELECT 1 FROM outbox AS earlier WHERE earlier.stream = outbox.stream AND earlier.version < outbox.version)"
"""An event is claimed only once no earlier version of its entity's category is left in the outbox (due, leased,
waiting for a retry or re-driven), so the relay publishes each category's events in version order, one at a
time, whatever the batching, retries and replicas. Events from before versions (stream '') order nothing."""
CLAIM = (
    "UPDATE outbox SET lease_until = ?1 WHERE event_id IN ("
    " SELECT event_id FROM ("
    "  SELECT * FROM (SELECT event_id, created_at FROM outbox"
    f"   WHERE due_at = 0 AND lease_until <= ?2 AND {HEAD} ORDER BY created_at LIMIT ?3)"
    "  UNION ALL"
    "  SELECT * FROM (SELECT event_id, created_at FROM outbox"
    f"   WHERE due_at > 0 AND due_at <= ?2 AND lease_until <= ?2 AND {HEAD} ORDER BY created_at LIMIT ?3)"
    " ) ORDER BY created_at LIMIT ?3"
    ") RETURNING event_id, key, payload, created_at, attempts, traceparent"
)
"""The `limit` oldest due events that no relay holds and that head their category (`HEAD`). `due_at` is 0 for
an event that never failed and the time it is due again for one that did. Asked as one range (`due_at <= now
ORDER BY created_at`), SQLite reads every due event and sorts them, so each claim's cost grows with the backlog
a bulk write leaves. Asked in two parts, the events that never failed come in `created_at` order straight from
the index, and only events waiting for a retry are sorted; the answer is the same (figures:
docs/performance.md, "Figures behind the code")."""

P = ParamSpec("P")
R = TypeVar("R")


async def _in_thread(call: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    return await anyio.to_thread.run_sync(lambda: call(*args, **kwargs))


def _marks(values: Sequence[object]) -> str:
    return ",".join("?" * len(values))


@contextmanager
def _transaction(connection: sqlite3.Connection) -> Iterator[None]:
    connection.execute("BEGIN IMMEDIATE")
    try:
        yield
        connection.execute("COMMIT")
    except BaseException:
        # After some errors (disk full, I/O) SQLite has rolled back already; a second ROLLBACK would
        # only hide the first error.
        if connection.in_transaction:
            connection.execute("ROLLBACK")
        raise


class SQLiteOutbox:
    """`bookkeeping` is the relay's connection, used under `lock` (the store's write lock);
    `reader` is the calling worker thread's own connection; `translated` turns SQLite's errors into
    the service's."""

    def __init__(
        self,
        bookkeeping: Callable[[], sqlite3.Connection],
        reader: Callable[[], sqlite3.Connection],
        lock: threading.Lock,
        translated: Callable[[], AbstractContextManager[None]],
    ) -> None:
        self._bookkeeping = bookkeeping
        self._reader = reader
        self._lock = lock
        self._translated = translated

    async def claim_events(self, limit: int, lease_seconds: float) -> list[OutboxEvent]:
        return await _in_thread(self._claim_events, limit, lease_seconds)

    def _claim_events(self, limit: int, lease_seconds: float) -> list[OutboxEvent]:
        now = time.time()
        with metrics.timer("sqlite.claim_events"), self._lock, self._translated():
            rows = self._bookkeeping().execute(CLAIM, (now + lease_seconds, now, limit)).fetchall()
        events = [
            OutboxEvent(event_id, key, loads(payload), created, attempts, traceparent)
            for event_id, key, payload, created, attempts, traceparent in rows
        ]
        events.sort(key=lambda event: event.created_at_epoch)
        return events

    async def delete_events(self, event_ids: Sequence[str]) -> None:
        await _in_thread(self._delete_events, event_ids)

    def _delete_events(self, event_ids: Sequence[str]) -> None:
        with metrics.timer("sqlite.delete_events"), self._lock, self._translated():
            for chunk in chunks(event_ids, MAX_VARIABLES):
                self._bookkeeping().execute(f"DELETE FROM outbox WHERE event_id IN ({_marks(chunk)})", tuple(chunk))

    async def retry_events(self, event_ids: Sequence[str], delay_seconds: float, *, count_attempt: bool) -> None:
        await _in_thread(self._retry_events, event_ids, delay_seconds, count_attempt)

    def _retry_events(self, event_ids: Sequence[str], delay_seconds: float, count_attempt: bool) -> None:
        due = time.time() + delay_seconds
        with metrics.timer("sqlite.retry_events"), self._lock, self._translated():
            for chunk in chunks(event_ids, MAX_VARIABLES):
                self._bookkeeping().execute(
                    "UPDATE outbox SET attempts = attempts + ?, due_at = ?, lease_until = 0 "
                    f"WHERE event_id IN ({_marks(chunk)})",
                    (int(count_attempt), due, *chunk),
                )

    async def dead_letter_events(self, reasons: Mapping[str, str]) -> None:
        await _in_thread(self._dead_letter_events, dict(reasons))

    def _dead_letter_events(self, reasons: dict[str, str]) -> None:
        now = time.time()
        with metrics.timer("sqlite.dead_letter_events"), self._lock, self._translated():
            connection = self._bookkeeping()
            with _transaction(connection):
                for event_id, reason in reasons.items():
                    connection.execute(
                        "INSERT OR REPLACE INTO dead_letters "
                        "(event_id, key, payload, created_at, attempts, reason, dead_at, traceparent, stream, version) "
                        "SELECT event_id, key, payload, created_at, attempts + 1, ?, ?, traceparent, stream, version "
                        "FROM outbox WHERE event_id = ?",
                        (reason, now, event_id),
                    )
                    connection.execute("DELETE FROM outbox WHERE event_id = ?", (event_id,))

    async def list_dead_letters(self, limit: int, after: DeadLetterCursor | None) -> DeadLetterPage:
        return await _in_thread(self._list_dead_letters, limit, after)

    def _list_dead_letters(self, limit: int, after: DeadLetterCursor | None) -> DeadLetterPage:
        start = (after.dead_at_epoch, after.event_id) if after else (-1.0, "")
        with metrics.timer("sqlite.list_dead_letters"), self._translated():
            rows = (
                self._reader()
                .execute(
                    "SELECT event_id, key, payload, created_at, attempts, reason, dead_at, traceparent FROM dead_letters "
                    "WHERE (dead_at, event_id) > (?, ?) ORDER BY dead_at, event_id LIMIT ?",
                    (*start, limit + 1),
                )
                .fetchall()
            )
        letters = [
            DeadLetter(OutboxEvent(event_id, key, loads(payload), created, attempts, traceparent), reason, dead_at)
            for event_id, key, payload, created, attempts, reason, dead_at, traceparent in rows[:limit]
        ]
        last = letters[-1] if len(rows) > limit else None
        return DeadLetterPage(letters, DeadLetterCursor(last.dead_at_epoch, last.event.event_id) if last else None)

    async def redrive_dead_letters(self, event_ids: Sequence[str] | None, limit: int) -> list[str]:
        return await _in_thread(self._redrive_dead_letters, event_ids, limit)

    def _redrive_dead_letters(self, event_ids: Sequence[str] | None, limit: int) -> list[str]:
        redriven: list[str] = []
        with metrics.timer("sqlite.redrive_dead_letters"), self._lock, self._translated():
            connection = self._bookkeeping()
            with _transaction(connection):
                if event_ids is None:
                    selections = [
                        connection.execute(
                            "DELETE FROM dead_letters WHERE event_id IN ("
                            " SELECT event_id FROM dead_letters ORDER BY dead_at, event_id LIMIT ?"
                            ") RETURNING event_id, key, payload, created_at, traceparent, stream, version",
                            (limit,),
                        ).fetchall()
                    ]
                else:
                    selections = [
                        connection.execute(
                            f"DELETE FROM dead_letters WHERE event_id IN ({_marks(chunk)}) "
                            "RETURNING event_id, key, payload, created_at, traceparent, stream, version",
                            tuple(chunk),
                        ).fetchall()
                        for chunk in chunks(list(dict.fromkeys(event_ids)), MAX_VARIABLES)
                    ]
                for rows in selections:
                    connection.executemany(
                        "INSERT OR REPLACE INTO outbox "
                        "(event_id, key, payload, created_at, traceparent, stream, version, attempts, due_at, lease_until) "
                        "VALUES (?, ?, ?, ?, ?, ?, ?, 0, 0, 0)",
                        rows,
                    )
                    redriven += [row[0] for row in rows]
        return redriven

    async def outbox_stats(self) -> OutboxStats:
        return await _in_thread(self._outbox_stats)

    def _outbox_stats(self) -> OutboxStats:
        with metrics.timer("sqlite.outbox_stats"), self._translated():
            # fetchall, not fetchone: the statements end here, so this connection keeps no read snapshot open.
            ((pending, oldest, dead),) = (
                self._reader()
                .execute(
                    "SELECT (SELECT count(*) FROM outbox), (SELECT min(created_at) FROM outbox), "
                    "(SELECT count(*) FROM dead_letters)"
                )
                .fetchall()
            )
        return OutboxStats(
            pending=pending,
            oldest_age_seconds=max(0.0, time.time() - oldest) if oldest else 0.0,
            dead_letters=dead,
        )

"""The embedded store's group commit: writers queue their requests, and whichever holds the write lock
next commits every queued request in one transaction (one fsync); most writers find their requests
already committed. A request is a write (`write.py`) or a deletion (`erase.py`)."""

import logging
import sqlite3
import threading
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

from components.features.store.sqlite.erase import erase
from components.features.store.sqlite.write import PendingWrite, apply_writes, recall, remember
from core.exceptions import StoreUnavailable

logger = logging.getLogger("feature_store.sqlite")


def rollback(connection: sqlite3.Connection) -> None:
    """Roll back what is still open: after some errors (disk full, I/O) SQLite has already rolled
    the transaction back, and a second ROLLBACK would only hide the first error."""
    if connection.in_transaction:
        try:
            connection.execute("ROLLBACK")
        except sqlite3.Error:
            logger.warning("embedded store could not roll back", exc_info=True)


class GroupCommit:
    """`connection()`: the calling worker thread's connection; `write_lock`: the store's, which the relay's
    bookkeeping and the write probe take too; `translated`: SQLite's errors as the service's.
    `writable` is False from a commit that failed because the store could not write until one succeeds."""

    def __init__(
        self,
        connection: Callable[[], sqlite3.Connection],
        write_lock: threading.Lock,
        translated: Callable[[], AbstractContextManager[None]],
    ) -> None:
        self._connection = connection
        self._write_lock = write_lock
        self._translated = translated
        self._queue_lock = threading.Lock()
        self._queue: list[PendingWrite] = []
        self.writable = True

    def run(self, requests: Sequence[PendingWrite]) -> None:
        """Queue `requests` and return once they are committed (or failed: see each one's `error`)."""
        with self._queue_lock:
            self._queue.extend(requests)
        with self._write_lock:
            if not all(pending.done for pending in requests):
                with self._queue_lock:
                    batch, self._queue = self._queue, []
                self._commit(batch)

    def _commit(self, batch: list[PendingWrite]) -> None:
        """One transaction for the whole batch. Every request is applied straight into it first; only
        when one fails is the batch applied again, each request in a savepoint of its own, so the
        failing one rolls back alone. Savepoints are not taken up front: they are a measurable share of a bulk
        write's store time (docs/performance.md, "Figures behind the code")."""
        try:
            with self._translated():
                connection = self._connection()
                connection.execute("BEGIN IMMEDIATE")
                try:
                    if not self._apply_together(connection, batch):
                        connection.execute("ROLLBACK")
                        connection.execute("BEGIN IMMEDIATE")
                        self._apply_apart(connection, batch)
                    connection.execute("COMMIT")
                except BaseException:
                    rollback(connection)
                    raise
            # Writable again, unless a request failed because the store could not write its part.
            self.writable = not any(isinstance(pending.error, StoreUnavailable) for pending in batch)
        except BaseException as exc:
            for pending in batch:
                pending.error = exc
            if isinstance(exc, StoreUnavailable):
                self.writable = False
        finally:
            for pending in batch:
                pending.done = True

    def _apply_together(self, connection: sqlite3.Connection, batch: list[PendingWrite]) -> bool:
        """Every request without savepoints; False as soon as one fails (the caller rolls back)."""
        for pending in batch:
            try:
                pending.skipped = self.apply_one(connection, pending)
            except Exception:
                if not connection.in_transaction:
                    raise  # SQLite rolled the whole transaction back (disk full, I/O): all fail
                return False
        return True

    def _apply_apart(self, connection: sqlite3.Connection, batch: list[PendingWrite]) -> None:
        for pending in batch:
            connection.execute("SAVEPOINT request")
            try:
                # Translated here too: this request's error is raised to its own caller.
                with self._translated():
                    pending.skipped = self.apply_one(connection, pending)
            except Exception as exc:
                if not connection.in_transaction:
                    raise
                connection.execute("ROLLBACK TO request")
                pending.error = exc
            connection.execute("RELEASE request")

    @staticmethod
    def apply_one(connection: sqlite3.Connection, pending: PendingWrite) -> list[str]:
        """What one request does inside the group commit: a write's upserts, or a deletion; with an
        `Idempotency-Key` used before, nothing but the first outcome recalled."""
        record = pending.idempotency
        if record is not None:
            record.replayed = recall(connection, record)
            if record.replayed is not None:
                replayed: list[str] = record.replayed["result"]
                return replayed
        result = (apply_writes if pending.erasure is None else erase)(connection, pending)
        if record is not None:
            remember(connection, record, result, pending.now_iso)
        return result

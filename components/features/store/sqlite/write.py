"""What one request does inside the embedded store's group commit (`commit.py`): the
queued request, its categories' upserts with their outbox rows, and a bulk write's per-entity outcome.
A deletion's part is `erase.py`."""

import logging
import sqlite3
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

from components.events.events import OutboxEvent, ordering_key, set_version
from components.features.store.base import CategoryWrite, Erasure, Idempotency
from components.features.store.base import outcome as idempotent_outcome
from components.features.store.sqlite.history import CURRENT_WHOLE, keep_replaced
from core.exceptions import IDEMPOTENCY_CONFLICT, FeatureStoreError, IdempotencyConflict
from core.serialization import dumps, loads

logger = logging.getLogger("feature_store.sqlite")

CURRENT = "SELECT version, event_time FROM features WHERE entity_type = ? AND entity_value = ? AND category = ?"
UPSERT = """
INSERT INTO features
    (entity_type, entity_value, category, data, created_at, metadata, event_time, expires_at, version)
VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (entity_type, entity_value, category) DO UPDATE SET
    data = excluded.data, metadata = excluded.metadata,
    created_at = CASE features.created_at WHEN '' THEN excluded.created_at ELSE features.created_at END,
    event_time = excluded.event_time, expires_at = excluded.expires_at, version = excluded.version
"""
PUT_EVENT = (
    "INSERT INTO outbox (event_id, key, payload, created_at, due_at, traceparent, stream, version) "
    "VALUES (?, ?, ?, ?, 0, ?, ?, ?)"
)


def put_event(connection: sqlite3.Connection, event: OutboxEvent, version: int) -> None:
    """Queue `event`, announcing the category's `version`, in the transaction that applies the change."""
    set_version(event, version)
    connection.execute(
        PUT_EVENT,
        (
            event.event_id,
            event.key,
            dumps(event.payload),
            event.created_at_epoch,
            event.traceparent,
            ordering_key(event),
            version,
        ),
    )


IDEMPOTENCY_SCHEMA = """
CREATE TABLE IF NOT EXISTS idempotency (
    key TEXT PRIMARY KEY,
    fingerprint TEXT NOT NULL,
    outcome BLOB NOT NULL,
    expires_at REAL NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS idempotency_expires ON idempotency (expires_at);
"""
RECALL = "SELECT fingerprint, outcome FROM idempotency WHERE key = ? AND expires_at > ?"
REMEMBER = "INSERT OR REPLACE INTO idempotency (key, fingerprint, outcome, expires_at) VALUES (?, ?, ?, ?)"
FORGET_EXPIRED = (
    "DELETE FROM idempotency WHERE key IN (SELECT key FROM idempotency WHERE expires_at <= ? ORDER BY expires_at "
    "LIMIT 2)"
)
"""Two expired records go with each one stored, so the table holds about a TTL's worth of keys."""


@dataclass(slots=True)
class PendingWrite:
    """One request's write, waiting in the group-commit queue."""

    entity_type: str
    entity_value: str
    writes: Sequence[CategoryWrite]
    now_iso: str
    """The time the change is stamped with (a deletion's too)."""
    erasure: Erasure | None = None
    """Set for a deletion (then `writes` is empty and `skipped` lists the categories deleted)."""
    idempotency: Idempotency | None = None
    skipped: list[str] = field(default_factory=list)
    error: BaseException | None = None
    done: bool = False


def apply_writes(connection: sqlite3.Connection, pending: PendingWrite) -> list[str]:
    """Upsert each category not older than what is stored, one version on, with its event; return the
    skipped ones. The version is read under the write lock the whole group commit holds."""
    skipped = []
    entity_type, entity_value = pending.entity_type, pending.entity_value
    for write in pending.writes:
        history = write.history
        lookup = CURRENT if history is None else CURRENT_WHOLE
        current = connection.execute(lookup, (entity_type, entity_value, write.category)).fetchone()
        if write.replaces_version is not None:
            if current is None or current[0] != write.replaces_version:
                skipped.append(write.category)
                continue
        elif current is not None and current[1] > write.event_time:
            skipped.append(write.category)
            continue
        version = current[0] + 1 if current is not None else 1
        write.metadata["version"] = version
        connection.execute(
            UPSERT,
            (
                entity_type,
                entity_value,
                write.category,
                dumps(write.data),
                pending.now_iso,
                dumps(write.metadata),
                write.event_time,
                write.expires_at_epoch,
                version,
            ),
        )
        put_event(connection, write.event, version)
        if history is not None and current is not None:
            keep_replaced(connection, entity_type, entity_value, write.category, current, history)
    return skipped


def recall(connection: sqlite3.Connection, record: Idempotency) -> dict[str, Any] | None:
    """The first outcome of a request stored under `record.key` (None: not used yet, or expired); raise
    `IdempotencyConflict` when it was used for another request."""
    row = connection.execute(RECALL, (record.key, time.time())).fetchone()
    if row is None:
        return None
    if row[0] != record.fingerprint:
        raise IdempotencyConflict(IDEMPOTENCY_CONFLICT)
    stored: dict[str, Any] = loads(row[1])
    return stored


def remember(connection: sqlite3.Connection, record: Idempotency, result: list[str], timestamp: str) -> None:
    connection.execute(FORGET_EXPIRED, (time.time(),))
    connection.execute(
        REMEMBER,
        (record.key, record.fingerprint, dumps(idempotent_outcome(result, timestamp)), record.expires_at_epoch),
    )


def outcome(pending: PendingWrite) -> list[str] | FeatureStoreError:
    """One entity of a bulk write: its skipped categories, or the error that kept it out. An unexpected
    error (a bug) fails that entity only, with a fixed message; the log keeps the error."""
    error = pending.error
    if error is None:
        return pending.skipped
    if isinstance(error, FeatureStoreError):
        return error
    logger.error("embedded store failed a bulk write's entity", exc_info=error)
    return FeatureStoreError("the store could not write this entity")

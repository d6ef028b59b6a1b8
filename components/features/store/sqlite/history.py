"""The embedded store's history: the values a category's writes replaced, for the categories that keep them.

A table of its own, one row per kept version (its data, metadata and event time as they were current), with
`expires_at` the time it may be forgotten (the replacing write's time plus the category's retention). A write
that replaces a value keeps it and prunes the category's versions past the count or the retention, in its own
transaction; an erasure deletes them in the transaction of its tombstone. Categories without history never
touch the table.
"""

import sqlite3
from collections.abc import Sequence

from components.features.store.base import TOMBSTONE, KeepHistory, KeptVersion, StoredCategory
from core.serialization import dumps, loads

SCHEMA = """
CREATE TABLE IF NOT EXISTS history (
    entity_type TEXT NOT NULL,
    entity_value TEXT NOT NULL,
    category TEXT NOT NULL,
    version INTEGER NOT NULL,
    data BLOB NOT NULL,
    metadata BLOB NOT NULL,
    event_time TEXT NOT NULL,
    expires_at REAL NOT NULL,
    PRIMARY KEY (entity_type, entity_value, category, version)
) WITHOUT ROWID;
"""
CURRENT_WHOLE = (
    "SELECT version, event_time, data, metadata FROM features "
    "WHERE entity_type = ? AND entity_value = ? AND category = ?"
)
"""`write.CURRENT` with what a kept version needs: only categories with history read it."""
KEEP = (
    "INSERT OR REPLACE INTO history (entity_type, entity_value, category, version, data, metadata, event_time, "
    "expires_at) VALUES (?, ?, ?, ?, ?, ?, ?, ?)"
)
PRUNE = (
    "DELETE FROM history WHERE entity_type = ? AND entity_value = ? AND category = ? "
    "AND (version <= ? OR expires_at <= ?)"
)
ERASE = "DELETE FROM history WHERE entity_type = ? AND entity_value = ? AND category = ?"
LIST = (
    "SELECT category, data, metadata, expires_at FROM history WHERE entity_type = ? AND entity_value = ? "
    "AND category IN ({marks}) ORDER BY category, version DESC"
)


def keep_replaced(
    connection: sqlite3.Connection,
    entity_type: str,
    entity_value: str,
    category: str,
    current: Sequence,
    history: KeepHistory,
) -> None:
    """Keep `current` (a `CURRENT_WHOLE` row, about to be replaced) unless it is a tombstone, then forget the
    category's versions beyond `history.versions` or past their retention."""
    version, event_time, data, metadata = current
    stored = loads(metadata)
    if TOMBSTONE not in stored:
        kept = {**stored, "version": version}
        parameters = (entity_type, entity_value, category, version, data, dumps(kept), event_time)
        connection.execute(KEEP, (*parameters, history.expires_at_epoch))
    connection.execute(PRUNE, (entity_type, entity_value, category, version - history.versions, history.now_epoch))


def erase_history(connection: sqlite3.Connection, entity_type: str, entity_value: str, category: str) -> int:
    """Delete every kept version of the category; return how many there were."""
    return connection.execute(ERASE, (entity_type, entity_value, category)).rowcount


def list_history(
    connection: sqlite3.Connection, entity_type: str, entity_value: str, categories: Sequence[str]
) -> dict[str, list[KeptVersion]]:
    """Each category's kept versions, newest first, expired ones included (the caller judges expiry by its own
    clock); categories keeping none are left out."""
    query = LIST.format(marks=",".join("?" * len(categories)))
    found: dict[str, list[KeptVersion]] = {}
    for category, data, metadata, kept_until in connection.execute(query, (entity_type, entity_value, *categories)):
        stored = StoredCategory(None, loads(metadata), data_json=data)
        found.setdefault(category, []).append(KeptVersion(stored, kept_until))
    return found

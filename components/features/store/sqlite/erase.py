"""The embedded store's deletions, applied inside its group commit (`commit.py`).

A deleted category keeps its row as a tombstone: no features, the deletion's metadata and event_time,
`created_at` empty (so the next write that stores data sets it afresh, see `UPSERT`), and `expires_at`
when the tombstone may be forgotten. Until a write overwrites it, it keeps writes with an older
`event_time` out, like any stored category does. The category's kept versions (`history.py`) are deleted
in the same transaction.
"""

import logging
import sqlite3
from collections.abc import Sequence

from components.events.events import set_erased_versions
from components.features.store.base import TOMBSTONE
from components.features.store.sqlite.history import erase_history
from components.features.store.sqlite.write import PendingWrite, put_event
from core.serialization import dumps, loads

logger = logging.getLogger("feature_store.sqlite")

EMPTY_DATA = dumps({})
PUT_TOMBSTONE = """
INSERT INTO features (entity_type, entity_value, category, data, created_at, metadata, event_time, expires_at, version)
VALUES (?, ?, ?, ?, '', ?, ?, ?, ?)
ON CONFLICT (entity_type, entity_value, category) DO UPDATE SET
    data = excluded.data, created_at = '', metadata = excluded.metadata,
    event_time = excluded.event_time, expires_at = excluded.expires_at, version = excluded.version
"""


def erase(connection: sqlite3.Connection, pending: PendingWrite) -> list[str]:
    """Replace each asked category holding data not newer than the erasure with a tombstone one version
    on, and queue its event; return the categories deleted, in the order asked (stored order when all).

    A category named that holds nothing yet, or only an older tombstone, gets the erasure's
    tombstone too (a version on as well), without an event (nothing was removed): a late write older than
    the deletion is kept out all the same."""
    erasure = pending.erasure
    assert erasure is not None
    query = (
        "SELECT category, data, metadata, event_time, version FROM features WHERE entity_type = ? AND entity_value = ?"
    )
    parameters: Sequence[str] = (pending.entity_type, pending.entity_value)
    if erasure.categories is not None:
        query += f" AND category IN ({','.join('?' * len(erasure.categories))})"
        parameters = (*parameters, *erasure.categories)
    rows = {row[0]: row for row in connection.execute(query + " ORDER BY category", parameters)}
    order = erasure.categories if erasure.categories is not None else list(rows)
    deleted = []
    for category in order:
        row = rows.get(category)
        event_time = row[3] if row is not None else ""
        removed = list(loads(row[1])) if row is not None and TOMBSTONE not in loads(row[2]) else None
        if event_time > erasure.event_time or (event_time == erasure.event_time and removed is None):
            continue  # newer data, or the same deletion again
        version = row[4] + 1 if row is not None else 1
        connection.execute(
            PUT_TOMBSTONE,
            (
                pending.entity_type,
                pending.entity_value,
                category,
                EMPTY_DATA,
                dumps({**erasure.metadata, "version": version}),
                erasure.event_time,
                erasure.expires_at_epoch,
                version,
            ),
        )
        erased_versions = erase_history(connection, pending.entity_type, pending.entity_value, category)
        if removed is not None:
            event = erasure.event(category, removed)
            set_erased_versions(event, erased_versions)
            put_event(connection, event, version)
            deleted.append(category)
    return deleted

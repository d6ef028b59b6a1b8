"""The embedded online store, split by concern: `store` (connections, reads, the readiness probe),
`commit` (the group commit), `write` (a write's upserts and events in it), `erase` (a deletion's),
`outbox` (the outbox and dead letters)."""

from components.features.store.sqlite.store import SQLiteStore

__all__ = ["SQLiteStore"]

"""The storage interface both backends implement, and the records that cross it.

Stores own storage detail only: layout, expressions, batching, retries, and turning storage
errors into `StoreUnavailable`. Rules (TTL, projection, metadata) live in the flows.
"""

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

from core.events import OutboxEvent
from core.outbox import OutboxStore
from core.settings import EntityType

Wanted = Mapping[str, frozenset[str] | None]
"""Categories to read, each with the feature names wanted (None: every feature)."""


@dataclass(frozen=True, slots=True)
class StoredCategory:
    """One category of one entity as stored: its features and their metadata."""

    data: dict[str, Any]
    metadata: dict[str, Any]
    """created_at, updated_at, source, compute_id, ttl, expires_at, event_time."""
    expires_at_epoch: float | None = None


@dataclass(frozen=True, slots=True)
class CategoryWrite:
    """A whole-category replacement and the event announcing it, committed together."""

    category: str
    data: dict[str, Any]
    metadata: dict[str, Any]
    """Everything but created_at, which the store keeps from the first write."""
    event_time: str
    """Ordering key: the write is skipped when the stored event_time is newer."""
    expires_at_epoch: float | None
    event: OutboxEvent


@dataclass(frozen=True, slots=True)
class BatchRead:
    found: dict[str, dict[str, StoredCategory]] = field(default_factory=dict)
    """entity value -> category -> stored category."""
    failed: frozenset[str] = frozenset()
    """Entity values the store could not read in time."""


class OnlineStore(OutboxStore, Protocol):
    """Features and their outbox in one store, so a write and its events commit together. The outbox
    side (claim leases due events to one replica for a while, retry makes failed ones due again after
    a delay, delete, stats) is `core.outbox.OutboxStore`, which the relay needs and nothing more."""

    name: str
    max_categories_per_write: int
    """The most categories one atomic write may hold on this backend."""
    reads_in_process: bool
    """Single-entity reads are in-process lookups, cheaper than a threadpool hand-off (no network)."""

    def initialise(self) -> list[str]:
        """Open clients and create the schema where allowed; say what was done. Idempotent."""

    def check(self) -> None:
        """Raise `StoreUnavailable` unless reads and writes can be served."""

    def read(self, entity_type: EntityType, entity_value: str, wanted: Wanted) -> dict[str, StoredCategory]:
        """The stored categories among `wanted`, in one round trip; absent ones are left out."""

    def read_batch(self, entity_type: EntityType, entity_values: Sequence[str], wanted: Wanted) -> BatchRead: ...

    def write(
        self, entity_type: EntityType, entity_value: str, writes: Sequence[CategoryWrite], now_iso: str
    ) -> list[str]:
        """Commit every write whose event_time is not older than the stored one, with its event,
        atomically; `now_iso` becomes created_at of new categories. Return the skipped categories."""

    def close(self) -> None: ...

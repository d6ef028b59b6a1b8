"""The storage interface both backends implement, and the records that cross it.

Stores own storage detail only: layout, expressions, batching, retries, and turning storage
errors into the service's own (`core.exceptions`: `StoreUnavailable` when the store cannot serve,
`PayloadTooLarge` for what it can never hold, a plain `FeatureStoreError` for a rejected call).
Rules (TTL, projection, metadata) live in the flows.

Every call is a coroutine, and each store decides how it runs without blocking the event loop:
DynamoDB's calls are network I/O on the loop; SQLite runs single-entity reads on the loop (tens of
microseconds from the page cache) and sends writes, large batch reads and schema work, which can
wait on fsync or locks, to a worker thread.

The write records (`CategoryWrite`, `EntityWrite`, `components.events.events.OutboxEvent`,
`records.EntityInput`) are slotted dataclasses that nothing changes once built, but not frozen ones: a frozen
dataclass sets each field through `object.__setattr__`, several times the cost, and a bulk write builds a
dozen per entity (figures: docs/performance.md, "Figures behind the code").
"""

from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol, TypeVar

from components.events.events import OutboxEvent
from components.events.outbox import DeadLetterStore, OutboxStore
from core.exceptions import FeatureStoreError
from core.serialization import RawJSON, dumps, loads
from core.settings import EntityType

Wanted = Mapping[str, frozenset[str] | None]
"""Categories to read, each with the feature names wanted (None: every feature)."""


class StoredCategory:
    """One category of one entity as stored: its features and their metadata.

    A store that keeps a category as JSON may hand it over undecoded: `data_json`, decoded by `data` on
    first use, and `metadata_json` (with `created_at` beside it), decoded by `metadata` on first use. Served
    undecoded, they are written into the answer as they are (`response_data`, `response_metadata`, the
    metadata with `created_at` and `age_seconds` spliced in), which spares decoding and encoding every value
    of a category a read serves whole. What the flows decide freshness by is at hand either way: `event_time`
    and `erased`. A read's records are its caller's: the flows add to them in place instead of copying.
    """

    __slots__ = (
        "_data",
        "_json",
        "_metadata",
        "_metadata_json",
        "_created_at",
        "_age",
        "event_time",
        "erased",
        "expires_at_epoch",
    )

    def __init__(
        self,
        data: dict[str, Any] | None,
        metadata: dict[str, Any] | None,
        expires_at_epoch: float | None = None,
        *,
        data_json: bytes | str | None = None,
        metadata_json: bytes | str | None = None,
        created_at: str | None = None,
        event_time: str | None = None,
        erased: bool = False,
    ) -> None:
        """With `metadata_json`, the store gives `created_at`, `event_time` and `erased` from its own columns."""
        if data is None and data_json is None:
            raise ValueError("a stored category needs its data, decoded or as JSON")
        if metadata is None and metadata_json is None:
            raise ValueError("a stored category needs its metadata, decoded or as JSON")
        self._data = data
        self._json = data_json
        self._metadata = metadata
        self._metadata_json = metadata_json
        self._created_at = created_at
        self._age: float | None | _NotAged = NOT_AGED
        self.expires_at_epoch = expires_at_epoch
        if metadata is not None:
            event_time = metadata.get("event_time") or metadata.get("updated_at")
            erased = TOMBSTONE in metadata
        self.event_time = event_time if type(event_time) is str else None
        """The time the data is of: its `event_time`, else the time it was written; None if unknown."""
        self.erased = erased
        """A tombstone (`TOMBSTONE`): the category was deleted."""

    @property
    def data(self) -> dict[str, Any]:
        if self._data is None:
            assert self._json is not None  # one of the two is always set
            self._data = loads(self._json)
        return self._data

    @property
    def metadata(self) -> dict[str, Any]:
        """created_at, updated_at, source, compute_id, ttl, expires_at, event_time, written_by, version, and
        `age_seconds` once a read set it."""
        if self._metadata is None:
            assert self._metadata_json is not None
            self._metadata = {"created_at": self._created_at, **loads(self._metadata_json)}
            if not isinstance(self._age, _NotAged):
                self._metadata["age_seconds"] = self._age
        return self._metadata

    @property
    def age_seconds(self) -> float | None:
        """Seconds since `event_time` as the read that served it saw them; None when unknown or not set."""
        return None if isinstance(self._age, _NotAged) else self._age

    def set_age(self, age_seconds: float | None) -> None:
        """Served with the metadata as `age_seconds`."""
        self._age = age_seconds
        if self._metadata is not None:
            self._metadata["age_seconds"] = age_seconds

    def with_data(self, data: dict[str, Any]) -> "StoredCategory":
        """The same category with other data (a projection of its features), sharing its metadata."""
        picked = StoredCategory(
            data,
            self._metadata,
            self.expires_at_epoch,
            metadata_json=self._metadata_json,
            created_at=self._created_at,
            event_time=self.event_time,
            erased=self.erased,
        )
        picked._age = self._age
        return picked

    @property
    def response_data(self) -> Any:
        """The features ready for `core.serialization.dumps`: the stored JSON itself while undecoded."""
        if self._data is not None:
            return self._data
        assert self._json is not None
        return RawJSON(self._json)

    @property
    def response_metadata(self) -> Any:
        """The metadata ready for `core.serialization.dumps`: while undecoded, the stored JSON (an object,
        as stored) with `created_at` first and `age_seconds` last, as `metadata` would hold them."""
        if self._metadata is not None:
            return self._metadata
        stored = self._metadata_json
        assert stored is not None
        inner = (stored.encode() if isinstance(stored, str) else stored)[1:-1].strip()
        created_at = dumps(self._created_at)
        if isinstance(self._age, _NotAged):
            return RawJSON(
                b'{"created_at":%b,%b}' % (created_at, inner) if inner else b'{"created_at":%b}' % created_at
            )
        # One format per category of an answer: a list joined costs a third more (1.1 against 0.8 us).
        spliced = b'{"created_at":%b,%b,"age_seconds":%b}' if inner else b'{"created_at":%b%b,"age_seconds":%b}'
        return RawJSON(spliced % (created_at, inner, dumps(self._age)))

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, StoredCategory):
            return NotImplemented
        return (self.data, self.metadata, self.expires_at_epoch) == (
            other.data,
            other.metadata,
            other.expires_at_epoch,
        )

    __hash__ = None  # type: ignore[assignment]  # mutable: metadata is added to in place

    def __repr__(self) -> str:
        return f"StoredCategory(data={self.data!r}, metadata={self.metadata!r}, expires_at_epoch={self.expires_at_epoch!r})"


class _NotAged:
    """No read has set the category's age: its metadata has no `age_seconds`."""


NOT_AGED = _NotAged()


@dataclass(slots=True)
class Idempotency:
    """A write's `Idempotency-Key`, stored with the change in its transaction: the same key with the same
    fingerprint answers the first outcome instead of applying anything; with another, `IdempotencyConflict`."""

    key: str
    fingerprint: str
    expires_at_epoch: float
    replayed: dict[str, Any] | None = None
    """Set by the store when the key was used before for the same request: its outcome (`outcome`), applied
    then; nothing was applied now."""


def outcome(result: list[str], timestamp: str) -> dict[str, Any]:
    """What an `Idempotency` record keeps of a change: the store's result (skipped or deleted categories) and
    the time the change was stamped with."""
    return {"result": result, "timestamp": timestamp}


@dataclass(frozen=True, slots=True)
class KeepHistory:
    """A write that keeps the value it replaces: at most `versions` replaced values, each until `expires_at_epoch`
    (the write's time plus the category's retention)."""

    versions: int
    expires_at_epoch: float
    now_epoch: float
    """The write's time: kept values expired by then are pruned."""


@dataclass(slots=True)
class KeptVersion:
    """A value a write replaced, as the category's history keeps it: its features and metadata as they were
    current (`version`, `event_time`, `source`, `compute_id`, `updated_at` among them), and when it is forgotten."""

    stored: StoredCategory
    kept_until: float
    """Epoch seconds: the replacing write's time plus the category's retention."""

    @property
    def version(self) -> int:
        version: int = self.stored.metadata.get("version") or 0
        return version


@dataclass(slots=True)
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
    history: KeepHistory | None = None
    """Set for a category that keeps history: the replaced value is kept in the same transaction."""
    replaces_version: int | None = None
    """Set for a rollback's restore: applied only over this version of the category, whatever the event times
    (the restored value's is older); skipped when the category changed since."""


@dataclass(slots=True)
class EntityWrite:
    """One entity's categories in a bulk write: committed together, independently of the other entities."""

    entity_value: str
    writes: Sequence[CategoryWrite]
    idempotency: Idempotency | None = None


TOMBSTONE = "deleted_at"
"""The metadata field that marks a deleted category's record: no features, kept until it expires so
that a write with an older `event_time` is skipped. Reads treat it as absent."""


ERASED_BY = "erased_by"
"""A tombstone's field: the actor who asked for the deletion."""
ERASURE_REQUEST_ID = "request_id"
"""A tombstone's field: the id of the request that deleted the category."""
ERASURE_FIELDS = (TOMBSTONE, ERASED_BY, ERASURE_REQUEST_ID)
"""What only a tombstone's metadata holds: a write that brings the data back drops them."""


@dataclass(frozen=True, slots=True)
class Erasure:
    """A deletion of an entity's categories: what each deleted category's record becomes, and its event."""

    categories: Sequence[str] | None
    """The categories to delete; None: every category the entity has."""
    event_time: str
    """Ordering key: a category holding data with a newer event_time is left alone."""
    metadata: dict[str, Any]
    """The tombstone's metadata (with `TOMBSTONE`)."""
    expires_at_epoch: float
    """When the tombstone is forgotten."""
    event: Callable[[str, list[str]], OutboxEvent]
    """The event announcing one category deleted, from the category and the feature names it held."""
    idempotency: Idempotency | None = None


@dataclass(frozen=True, slots=True)
class BatchRead:
    found: dict[str, dict[str, StoredCategory]] = field(default_factory=dict)
    """entity value -> category -> stored category."""
    failed: frozenset[str] = frozenset()
    """Entity values the store could not read in time."""


class OnlineStore(OutboxStore, DeadLetterStore, Protocol):
    """Features and their outbox in one store, so a write and its events commit together. The outbox
    side (claim leases due events to one replica for a while, retry makes failed ones due again after
    a delay, dead letters take events out of the retry loop, delete, stats) is
    `components.events.outbox.OutboxStore`, which the relay needs and nothing more; listing and re-driving
    dead letters, `DeadLetterStore`."""

    name: str
    max_categories_per_write: int
    """The most categories one atomic write may hold on this backend."""
    writable: bool
    """False from a write that failed because the store could not write (disk full, read-only file
    system, DynamoDB failing writes) until a write succeeds again or `check`'s write probe passes."""

    async def initialise(self) -> list[str]:
        """Open clients and create the schema where allowed; say what was done. Idempotent."""

    async def check(self) -> None:
        """Raise `StoreUnavailable` (or `StoreFull`) unless reads and writes can be served: one attempt,
        with a write probe; the caller bounds how long it may take."""

    async def read(self, entity_type: EntityType, entity_value: str, wanted: Wanted) -> dict[str, StoredCategory]:
        """The stored categories among `wanted`, in one round trip; absent ones are left out."""

    async def read_batch(self, entity_type: EntityType, entity_values: Sequence[str], wanted: Wanted) -> BatchRead:
        """Every wanted category of each entity; duplicates are read once."""

    async def read_entity(self, entity_type: EntityType, entity_value: str) -> dict[str, StoredCategory]:
        """Every category stored for the entity, whatever it holds (expired data and tombstones too): what an
        open registry, which declares no categories per entity type, shows a person inspecting it."""

    async def write(
        self,
        entity_type: EntityType,
        entity_value: str,
        writes: Sequence[CategoryWrite],
        now_iso: str,
        idempotency: Idempotency | None = None,
    ) -> list[str]:
        """Commit every write whose event_time is not older than the stored one, with its event (and
        `idempotency`'s record), atomically; `now_iso` becomes created_at of new categories. Return the
        skipped categories (for a replay, `idempotency.replayed` holds the first outcome)."""

    async def write_many(
        self, entity_type: EntityType, entities: Sequence[EntityWrite], now_iso: str
    ) -> list[list[str] | FeatureStoreError]:
        """`write` for each entity, each atomic on its own: per entity, in order, its skipped categories
        or the error that kept all of it from being written. The store may commit them together."""

    async def read_history(
        self, entity_type: EntityType, entity_value: str, categories: Sequence[str]
    ) -> dict[str, list[KeptVersion]]:
        """Each category's kept versions (the values its writes replaced, for categories with history), newest
        first, those past their retention included: the caller judges them by its clock. Categories keeping
        none are left out."""

    async def delete(self, entity_type: EntityType, entity_value: str, erasure: Erasure) -> list[str]:
        """Replace each stored category of `erasure` that holds data not newer than the erasure with a
        tombstone, together with its event and the removal of its history, atomically per category. Return the
        categories deleted."""

    async def close(self) -> None:
        """Release what this store holds (connections, sessions of the running loop)."""


T = TypeVar("T")


def chunks(items: Sequence[T], size: int) -> Iterator[Sequence[T]]:
    """`items` in consecutive slices of at most `size` (a backend's per-call limit)."""
    for start in range(0, len(items), size):
        yield items[start : start + size]

"""The records that cross controller -> service -> flows: what a read selects and finds, what a write
carries, and what a write or a deletion did.

Plain slotted dataclasses, since every request builds some. Those built per entity or per category
(`EntityInput`, `CategoryInput`, `EntityFeatures`) are not frozen: a frozen dataclass sets each field
through `object.__setattr__` (see store/base.py), and a bulk write builds thousands.
"""

from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any, Literal

from components.features.store.base import KeptVersion, StoredCategory, Wanted
from core.exceptions import FeatureStoreError
from core.settings import CategoryHistory


@dataclass(frozen=True, slots=True)
class FeatureSelection:
    """What a read asks for: the categories to fetch, and those reported unavailable without a read."""

    wanted: Wanted
    not_whitelisted: tuple[str, ...] = ()
    """Requested categories off the whitelist."""


@dataclass(slots=True)
class EntityFeatures:
    """What one entity has of the requested features."""

    items: dict[str, StoredCategory] = field(default_factory=dict)
    unavailable_categories: list[str] = field(default_factory=list)
    unavailable_features: list[str] = field(default_factory=list)
    error: str | None = None
    unavailable_reasons: dict[str, str] | None = None
    """Read `as_of` a time only: why a category holding data has none for that time (`older_than_history`,
    `no_history`)."""


@dataclass(frozen=True, slots=True)
class Provenance:
    """Where written data comes from and how long it holds: the same for every category of the write."""

    source: str | None
    """The writer; None until the service settles it (from the API key when keys are on)."""
    compute_id: str | None
    ttl: int | None
    """Seconds; None for each category's default."""
    event_time: datetime | None
    """When the data was true; None for the write's own time."""
    actor: str | None = None
    """Who wrote, for the audit trail (`Principal.actor`); None while keys are off."""


@dataclass(slots=True)
class CategoryInput:
    """One category of a write, and where it sits in the request, for error messages."""

    category: str
    features: dict[str, Any]
    loc: tuple[str | int, ...]


@dataclass(slots=True)
class EntityInput:
    """One entity of a write: its categories, in the request's order, and their provenance (a bulk write's
    entity: the request's meta fields overridden by its own)."""

    entity_value: str
    categories: Sequence[CategoryInput]
    provenance: Provenance
    loc: tuple[str | int, ...] = ("body", "data")
    """Where the entity sits in the body."""
    ttl_loc: tuple[str | int, ...] = ("body", "meta", "ttl")
    """Where its ttl came from: its own `meta`, or the request's."""
    event_time_loc: tuple[str | int, ...] = ("body", "meta", "event_time")
    """Where its event_time came from: its own `meta`, the request's, or the query string."""


@dataclass(frozen=True, slots=True)
class WriteOutcome:
    categories_updated: list[str]
    categories_skipped: list[str]
    timestamp: str


@dataclass(frozen=True, slots=True)
class DeleteOutcome:
    categories_deleted: list[str]
    timestamp: str


CategoryState = Literal["fresh", "stale", "expired", "erased", "absent"]


@dataclass(frozen=True, slots=True)
class InspectedCategory:
    """One category of one entity as a person debugging a read sees it: its state and what is stored,
    including data a read would not serve (expired, older than the registry's `max_age_seconds`)."""

    state: CategoryState
    stored: StoredCategory | None
    max_age_seconds: int | None


@dataclass(frozen=True, slots=True)
class HistoryPage:
    """A page of a category's kept versions, newest first, and the cursor of the next page (None: the last)."""

    versions: Sequence[KeptVersion]
    next_cursor: int | None
    kept: CategoryHistory | None
    """The category's history in the registry; None: it keeps none."""


@dataclass(frozen=True, slots=True)
class Rollback:
    """What a rollback did to one entity: per category, the version restored, or why it was left alone."""

    entity_value: str
    restored: Sequence[tuple[str, int, int, int]]
    """(category, the version the restore made, the version it undid, the kept version whose value it restored)."""
    untouched: Sequence[tuple[str, str]]
    """(category, reason): `written_by_other`, `no_history`, `no_earlier_version`, `changed`."""
    error: FeatureStoreError | None = None

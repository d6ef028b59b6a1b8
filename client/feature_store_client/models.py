"""The service's answers as typed models. Fields the service adds later are kept (`extra="allow"`), so
an older client still reads a newer service."""

from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field


class _Model(BaseModel):
    model_config = ConfigDict(extra="allow")


class FeatureMetadata(_Model):
    created_at: datetime | None = None
    updated_at: datetime | None = None
    source: str | None = None
    compute_id: str | None = None
    ttl: int | None = None
    expires_at: datetime | None = None
    event_time: datetime | None = None
    age_seconds: float | None = None
    """Seconds from `event_time` to the read; None when no time is recorded."""


class FeatureBlock(_Model):
    data: dict[str, Any]
    metadata: FeatureMetadata


class CategoryItem(_Model):
    features: FeatureBlock


class CategoryResult(_Model):
    """One category of one entity (`read_category`). The service names the entity by its type
    (`"bright_uid": "user-123"`); the client also sets `entity_type` and `entity_value`."""

    entity_type: str
    entity_value: str
    category: str
    features: FeatureBlock

    @property
    def data(self) -> dict[str, Any]:
        return self.features.data

    @property
    def metadata(self) -> FeatureMetadata:
        return self.features.metadata


class EntityFeatures(_Model):
    """The features read for one entity across categories."""

    entity_value: str
    items: dict[str, CategoryItem]
    unavailable_feature_categories: list[str] = Field(default_factory=list)
    unavailable_features: list[str] = Field(default_factory=list)
    error: str | None = None
    """Set in a batch answer when this entity's data could not be fetched (e.g. `store_unavailable`)."""

    @property
    def values(self) -> dict[str, dict[str, Any]]:
        """category -> its features' values."""
        return {category: item.features.data for category, item in self.items.items()}

    def get(self, reference: str, default: Any = None) -> Any:
        """The value of `category:feature`, or `default` when it was not served."""
        category, _, feature = reference.partition(":")
        item = self.items.get(category)
        return default if item is None else item.features.data.get(feature, default)


class FeaturesResult(EntityFeatures):
    """`read_features`: one entity's features across categories."""

    entity_type: str


class BatchResult(_Model):
    """`read_batch`: one `EntityFeatures` per requested entity, in request order."""

    entity_type: str
    results: list[EntityFeatures]


class WriteResult(_Model):
    entity_value: str
    entity_type: str
    categories_updated: list[str]
    categories_skipped: list[str] = Field(default_factory=list)
    """Categories left alone because the stored data has a newer `event_time`."""
    timestamp: datetime


@dataclass(frozen=True)
class EntityWrite:
    """One entity of `write_batch`: `{category: {feature: value}}`, written atomically; the meta fields
    given here replace the call's shared ones for this entity only."""

    entity_value: str
    categories: Mapping[str, Mapping[str, Any]]
    source: str | None = None
    compute_id: str | None = None
    ttl: int | None = None
    event_time: datetime | str | None = None


class EntityWriteError(_Model):
    """Why nothing of one entity of a bulk write was written: the service's error code (or the client's:
    `timeout`, `transport_error`, `invalid_input`) and its detail (a message, or field errors)."""

    error: str
    detail: Any = None


class EntityWriteResult(_Model):
    """One entity of `write_batch`: what was written, or its `error` (then nothing of it was)."""

    entity_value: str
    categories_updated: list[str] = Field(default_factory=list)
    categories_skipped: list[str] = Field(default_factory=list)
    """Categories left alone because the stored data (or a deletion) has a newer `event_time`."""
    error: EntityWriteError | None = None

    @property
    def ok(self) -> bool:
        return self.error is None


class BatchWriteResult(_Model):
    """`write_batch`: one result per entity, in the order given; `written` + `failed` = all of them."""

    entity_type: str
    results: list[EntityWriteResult]
    written: int
    failed: int

    @property
    def failures(self) -> list[EntityWriteResult]:
        return [result for result in self.results if result.error is not None]


class RowFailure(_Model):
    """One row of `write_dataframe` that was not written: its position in the input (0-based, across all
    its batches), its entity value when it had one, the error code and its detail."""

    row: int
    entity_value: str | None = None
    error: str
    detail: Any = None


class FrameWriteResult(_Model):
    """`write_dataframe`: rows read (after `skip_rows`), rows written and failed, each failed row, and the
    seconds the load took. `written` + `failed` = `rows`."""

    entity_type: str
    rows: int
    written: int
    failed: int
    failures: list[RowFailure]
    elapsed_seconds: float


@dataclass(frozen=True)
class FrameProgress:
    """Passed to `on_progress` after each part is answered, in input order: every row before `rows_done`
    is answered (so a resumed load may start there); `failures` are this part's."""

    rows_done: int
    written: int
    failed: int
    failures: list[RowFailure]


class RollbackEntityResult(_Model):
    entity_value: str
    restored: list[dict[str, Any]]
    """`{"category", "version", "undone_version", "restored_version"}` per category restored."""
    untouched: list[dict[str, Any]]
    """`{"category", "reason"}` per category holding data left alone: `written_by_other`, `no_history`,
    `no_earlier_version`, `changed`."""
    error: dict[str, Any] | None = None


class RollbackResult(_Model):
    """`POST /api/v1/admin/rollback`, merged over the parts a long list of entities was sent in."""

    entity_type: str
    compute_id: str
    results: list[RollbackEntityResult]
    restored: int
    failed: int


class DeleteResult(_Model):
    entity_value: str
    entity_type: str
    categories_deleted: list[str]
    """Categories whose data was removed; empty when there was none."""
    timestamp: datetime


class RegistryFeature(_Model):
    type: str
    nullable: bool
    description: str | None = None


class RegistryCategory(_Model):
    description: str | None = None
    owner: str | None = None
    entity_types: list[str]
    default_ttl_seconds: int | None = None
    writers: list[str] | None = None
    mode: Literal["strict", "open"]
    features: dict[str, RegistryFeature]


class Registry(_Model):
    entity_types: list[str]
    categories: dict[str, RegistryCategory]
    etag: str | None = None
    """The answer's `ETag`."""


class Readiness(_Model):
    status: str
    timestamp: datetime
    checks: dict[str, dict[str, Any]]

    @property
    def ready(self) -> bool:
        return self.status == "ready"


class Limits(_Model):
    """`GET /api/v1/limits`: what one request may hold."""

    max_batch_entities: int
    max_feature_list: int
    max_categories_per_write: int
    max_features_per_category: int
    max_features_per_write: int
    max_body_bytes: int
    max_string_bytes: int | None = None
    max_json_depth: int | None = None
    max_ttl_seconds: int | None = None
    max_entity_value_bytes: int | None = None
    max_batch_write_entities: int | None = None
    """Most entities in one bulk write; None from a service that does not publish it."""
    max_batch_write_body_bytes: int | None = None
    """Largest bulk-write body; None from a service that does not publish it (`max_body_bytes` then holds)."""
    max_event_time_ahead_seconds: int | None = None
    """How far ahead of the service's clock an `event_time` may be; None from a service that does not publish it."""

"""HTTP response models, with the examples OpenAPI shows for each, composed like the responses they illustrate."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    JsonValue,
    WithJsonSchema,
)

from core.exceptions import ERROR_CODES

METADATA_EXAMPLE: dict[str, JsonValue] = {
    "created_at": "2025-10-13T08:12:47.751080+00:00",
    "updated_at": "2025-10-13T09:15:51.358632+00:00",
    "source": "prediction_service",
    "compute_id": "job-123",
    "ttl": None,
    "expires_at": None,
    "event_time": "2025-10-13T09:15:51.358632+00:00",
    "age_seconds": 3.25,
    "written_by": "key:prediction-service",
    "version": 7,
}
FEATURE_BLOCK_EXAMPLE: dict[str, JsonValue] = {"data": {"age": 30, "income": 60000}, "metadata": METADATA_EXAMPLE}
CATEGORY_ITEM_EXAMPLE: dict[str, JsonValue] = {"features": FEATURE_BLOCK_EXAMPLE}
ENTITY_FEATURES_EXAMPLE: dict[str, JsonValue] = {
    "entity_value": "user-123",
    "items": {"user_features": CATEGORY_ITEM_EXAMPLE},
    "unavailable_feature_categories": ["transaction_features"],
    "unavailable_features": ["user_features:city"],
    "error": None,
}
FEATURES_EXAMPLE: dict[str, JsonValue] = {
    "entity_value": "user-123",
    "entity_type": "bright_uid",
    "items": {"user_features": CATEGORY_ITEM_EXAMPLE},
    "unavailable_feature_categories": ["transaction_features"],
    "unavailable_features": ["user_features:city"],
}
REGISTRY_CATEGORY_EXAMPLE: dict[str, JsonValue] = {
    "description": "Demographics from the nightly profile job",
    "owner": "profile-team",
    "entity_types": ["bright_uid"],
    "default_ttl_seconds": 86400,
    "max_age_seconds": 3600,
    "writers": ["prediction_service"],
    "mode": "strict",
    "history": {"versions": 10, "retention_seconds": 604800},
    "features": {"age": {"type": "int", "nullable": False, "description": "Age in years"}},
}
EVENT_ID_EXAMPLE = "6f1c2a9e-3b7d-4c1e-9a8f-2d4b6e8a0c13"
EVENT_EXAMPLE: dict[str, JsonValue] = {
    "event_id": EVENT_ID_EXAMPLE,
    "event_type": "feature_available",
    "timestamp": "2025-10-13T09:15:51.358632+00:00",
    "entity_type": "bright_uid",
    "entity_id": "user-123",
    "resource_type": "feature",
    "resource_name": "user_features",
    "compute_id": "compute-123",
    "features": ["age", "income"],
    "actor": "key:prediction-service",
    "version": 7,
}
"""Response examples, composed like the responses they illustrate."""


class FeatureMetadata(BaseModel):
    """Times are ISO 8601 in UTC with microseconds, e.g. `2025-10-13T09:15:51.358632+00:00`."""

    model_config = ConfigDict(json_schema_extra={"examples": [METADATA_EXAMPLE]})

    created_at: datetime = Field(examples=["2025-10-13T08:12:47.751080+00:00"])
    updated_at: datetime = Field(examples=["2025-10-13T09:15:51.358632+00:00"])
    source: str | None = Field(examples=["prediction_service"])
    compute_id: str | None = Field(examples=["compute-123"])
    ttl: int | None = Field(examples=[None])
    expires_at: datetime | None = Field(None, examples=[None])
    event_time: datetime | None = Field(None, examples=["2025-10-13T09:15:51.358632+00:00"])
    age_seconds: float | None = Field(
        None, description="Seconds from `event_time` to this read; null when unknown.", examples=[3.25]
    )
    written_by: str | None = Field(
        None,
        description="Who wrote the category: `key:<name>`, or `sub:<subject> client:<id>` for a token; null "
        "when written without API keys or before the audit trail.",
        examples=["key:prediction-service"],
    )
    version: int | None = Field(
        None,
        description="The category's version: one more with every change the store applies to it (write, "
        "erasure); events carry it. Null for a category not changed since versions were introduced.",
        examples=[7],
    )
    as_of_resolved: datetime | None = Field(
        None,
        description="Only in a read `as_of` a time: the `event_time` of the version served, the latest at or "
        "before `as_of` (docs/history.md).",
        examples=["2025-10-13T09:15:51.358632+00:00"],
    )


UNAVAILABLE_REASONS_DESCRIPTION = (
    "Only in a read `as_of` a time: why a category holding data has none for that time: `older_than_history` "
    "(every version it keeps is newer), `no_history` (it keeps none, and its value is newer)."
)
UnavailableReason = Literal["older_than_history", "no_history"]


class FeatureBlock(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [FEATURE_BLOCK_EXAMPLE]})

    data: dict[str, Any] = Field(examples=[{"age": 30, "income": 60000, "city": "SF"}])
    metadata: FeatureMetadata


class CategoryItemResponse(BaseModel):
    """One category of one entity; the entity is named by its type, e.g. `"bright_uid": "user-123"`."""

    model_config = ConfigDict(
        extra="allow",
        json_schema_extra={
            "additionalProperties": {"type": "string"},
            "examples": [{"bright_uid": "user-123", "category": "user_features", "features": FEATURE_BLOCK_EXAMPLE}],
        },
    )

    category: str = Field(examples=["user_features"])
    features: FeatureBlock


class CategoryItem(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [CATEGORY_ITEM_EXAMPLE]})

    features: FeatureBlock


class FeaturesResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [FEATURES_EXAMPLE]})

    entity_value: str
    entity_type: str
    items: dict[str, CategoryItem]
    unavailable_feature_categories: list[str]
    unavailable_features: list[str]
    unavailable_reasons: dict[str, UnavailableReason] | None = Field(
        None, description=UNAVAILABLE_REASONS_DESCRIPTION, examples=[{"transaction_features": "older_than_history"}]
    )


class EntityFeatures(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [ENTITY_FEATURES_EXAMPLE]})

    entity_value: str
    items: dict[str, CategoryItem]
    unavailable_feature_categories: list[str]
    unavailable_features: list[str]
    error: str | None = Field(None, description="Set when this entity's data could not be fetched.")
    unavailable_reasons: dict[str, UnavailableReason] | None = Field(
        None, description=UNAVAILABLE_REASONS_DESCRIPTION, examples=[{"transaction_features": "older_than_history"}]
    )


class BatchResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "entity_type": "bright_uid",
                    "results": [
                        ENTITY_FEATURES_EXAMPLE,
                        {
                            "entity_value": "user-001",
                            "items": {},
                            "unavailable_feature_categories": ["user_features"],
                            "unavailable_features": [],
                            "error": None,
                        },
                    ],
                }
            ]
        }
    )

    entity_type: str
    results: list[EntityFeatures]


class WriteResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "entity_value": "user-123",
                    "entity_type": "bright_uid",
                    "categories_updated": ["user_features", "credit_features"],
                    "categories_skipped": [],
                    "timestamp": "2025-10-13T09:15:51.358632+00:00",
                }
            ]
        }
    )

    entity_value: str
    entity_type: str
    categories_updated: list[str]
    categories_skipped: list[str] = Field(description="Categories left alone because newer data is stored.")
    timestamp: datetime


class HealthResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "healthy",
                    "timestamp": "2025-10-13T09:15:51.358632+00:00",
                    "service": "Feature Store API",
                    "version": "1.0.0",
                    "environment": "production",
                    "dynamodb_connection": True,
                    "tables_available": ["user_feature_store", "account_feature_store"],
                }
            ]
        }
    )

    status: str = Field(examples=["healthy"])
    timestamp: datetime
    service: str
    version: str
    environment: str
    dynamodb_connection: bool | None = Field(
        description="Whether the online store answered the last readiness check; null before the first."
    )
    tables_available: list[str] = Field(
        description="The feature tables the service is configured to use, or the embedded store's file.",
        examples=[["user_feature_store", "account_feature_store"]],
    )


class ReadyResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "status": "ready",
                    "timestamp": "2025-10-13T09:15:51.358632+00:00",
                    "checks": {"store": {"backend": "dynamodb", "ok": True}, "events": {"sink": "kafka", "ok": True}},
                }
            ]
        }
    )

    status: str = Field(examples=["ready"])
    timestamp: datetime
    checks: dict[str, dict[str, Any]]


class WarmupResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"status": "warm", "actions": ["store client created"], "duration_ms": 41.7}]}
    )

    status: str = Field(examples=["warm"])
    actions: list[str]
    duration_ms: float


ErrorCode = Annotated[
    str,
    WithJsonSchema(
        {
            "type": "string",
            "enum": list(ERROR_CODES),
            "description": "What went wrong, for programs: one of a fixed set of codes.",
            "examples": ["not_found"],
        }
    ),
]


class ErrorResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "detail": "no data for entity 'user-123' in category 'user_features'",
                    "error": "not_found",
                    "request_id": "3f2c9d1e8b7a4c6d9e0f1a2b3c4d5e6f",
                },
                {
                    "detail": [{"type": "missing", "loc": ["body", "data", "entity_value"], "msg": "Field required"}],
                    "error": "validation_error",
                    "request_id": "3f2c9d1e8b7a4c6d9e0f1a2b3c4d5e6f",
                },
            ]
        }
    )

    detail: Any = Field(
        description="For people: a message, or for `validation_error` the field errors, each with `type`, `loc`, `msg`."
    )
    error: ErrorCode
    request_id: str = Field(description="The request's id, as in the `X-Request-ID` response header.")


class RegistryFeature(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"type": "int", "nullable": False, "description": "Age in years"}]}
    )

    type: str = Field(description="`int`, `float`, `bool`, `string`, `list<T>`, `map` or `json`.", examples=["int"])
    nullable: bool
    description: str | None = Field(examples=["Age in years"])


class RegistryHistory(BaseModel):
    versions: int = Field(description="The most replaced values kept.", examples=[10])
    retention_seconds: int = Field(description="How long each is kept once replaced.", examples=[604800])


class RegistryCategory(BaseModel):
    """One category as the registry declares it, defaults filled in."""

    model_config = ConfigDict(json_schema_extra={"examples": [REGISTRY_CATEGORY_EXAMPLE]})

    description: str | None = Field(examples=["Demographics from the nightly profile job"])
    owner: str | None = Field(examples=["profile-team"])
    entity_types: list[str] = Field(description="The entity types it may be written for.", examples=[["bright_uid"]])
    default_ttl_seconds: int | None = Field(examples=[86400])
    max_age_seconds: int | None = Field(
        description="Data older than this (by `event_time`) is stale: reported, not refused; null: no bound.",
        examples=[3600],
    )
    writers: list[str] | None = Field(
        description="The only sources that may write it; null: every writer otherwise allowed.",
        examples=[["prediction_service"]],
    )
    mode: Literal["strict", "open"] = Field(
        description="`strict`: only declared features may be written; `open`: undeclared ones are accepted untyped."
    )
    history: RegistryHistory | None = Field(
        description="The values its writes replace, kept for reads `as_of` a time and rollbacks; null: none kept."
    )
    features: dict[str, RegistryFeature]


class RegistryResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "entity_types": ["account_id", "bright_uid"],
                    "categories": {"user_features": REGISTRY_CATEGORY_EXAMPLE},
                }
            ]
        }
    )

    entity_types: list[str] = Field(examples=[["account_id", "bright_uid"]])
    categories: dict[str, RegistryCategory]


INSPECTED_EXAMPLE: dict[str, JsonValue] = {
    "state": "fresh",
    "max_age_seconds": 3600,
    "data": {"age": 30, "income": 60000},
    "metadata": METADATA_EXAMPLE,
}


class InspectedCategoryResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [INSPECTED_EXAMPLE]})

    state: Literal["fresh", "stale", "expired", "erased", "absent"] = Field(
        description="`fresh`: served to reads; `stale`: served, but older than the registry's `max_age_seconds`; "
        "`expired`: past its TTL, not served; `erased`: deleted (a tombstone, not served); `absent`: never written "
        "or forgotten."
    )
    max_age_seconds: int | None = Field(description="The registry's freshness bound for the category.")
    data: dict[str, Any] | None = Field(description="The stored features, also when not served; null when none.")
    metadata: dict[str, Any] | None = Field(
        description="As a read returns it (with `age_seconds`); an erased category's has `deleted_at`."
    )


class InspectResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "entity_type": "bright_uid",
                    "entity_value": "user-123",
                    "listed": "registry",
                    "categories": {"user_features": INSPECTED_EXAMPLE},
                }
            ]
        }
    )

    entity_type: str = Field(examples=["bright_uid"])
    entity_value: str = Field(examples=["user-123"])
    listed: Literal["registry", "store"] = Field(
        description="`registry`: the categories are every one the registry file declares for the entity type, "
        "absent ones included; `store`: without a registry file (an open registry), every category stored for "
        "the entity, expired data and tombstones included."
    )
    categories: dict[str, InspectedCategoryResponse] = Field(description="The categories `listed` names, by name.")


class LimitsResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "max_batch_entities": 1000,
                    "max_feature_list": 1000,
                    "max_categories_per_write": 25,
                    "max_features_per_category": 1000,
                    "max_features_per_write": 5000,
                    "max_body_bytes": 1_048_576,
                    "max_string_bytes": 65_536,
                    "max_json_depth": 16,
                    "max_ttl_seconds": 315_360_000,
                    "max_entity_value_bytes": 1024,
                    "max_batch_write_entities": 500,
                    "max_batch_write_body_bytes": 16_777_216,
                    "max_event_time_ahead_seconds": 300,
                }
            ]
        }
    )

    max_batch_entities: int = Field(description="Most entities in one batch read.", examples=[1000])
    max_feature_list: int = Field(description="Most `category:feature` entries in one read.", examples=[1000])
    max_categories_per_write: int = Field(description="Most categories in one write.", examples=[25])
    max_features_per_category: int = Field(description="Most features in one category of a write.", examples=[1000])
    max_features_per_write: int = Field(
        description="Most features across the categories of one write.", examples=[5000]
    )
    max_body_bytes: int = Field(description="Largest request body, in bytes.", examples=[1_048_576])
    max_string_bytes: int = Field(description="Longest string feature value, in UTF-8 bytes.", examples=[65_536])
    max_json_depth: int = Field(description="Deepest nesting inside one feature value.", examples=[16])
    max_ttl_seconds: int = Field(description="Largest `meta.ttl`.", examples=[315_360_000])
    max_entity_value_bytes: int = Field(description="Longest entity value, in UTF-8 bytes.", examples=[1024])
    max_batch_write_entities: int = Field(description="Most entities in one bulk write.", examples=[500])
    max_batch_write_body_bytes: int = Field(
        description="Largest bulk write request body, in bytes.", examples=[16_777_216]
    )
    max_event_time_ahead_seconds: int = Field(
        description="How far ahead of the service's clock a write's or a deletion's `event_time` may be, in seconds.",
        examples=[300],
    )


class DeadLetterItem(BaseModel):
    event_id: str = Field(examples=[EVENT_ID_EXAMPLE])
    key: str = Field(description="The Kafka key: `<entity_type>:<entity_value>`.", examples=["bright_uid:user-123"])
    event: dict[str, Any] = Field(description="The event as it would be published.", examples=[EVENT_EXAMPLE])
    reason: str = Field(
        description="Why it left the retry loop: the broker's or serializer's words.",
        examples=["Kafka refused the event: Broker: Message size too large"],
    )
    attempts: int = Field(description="Failures of its own, the last one included.", examples=[1])
    created_at: datetime = Field(description="When the write that made it committed.")
    dead_at: datetime = Field(description="When it became a dead letter.")


class DeadLettersResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "dead_letters": [
                        {
                            "event_id": EVENT_ID_EXAMPLE,
                            "key": "bright_uid:user-123",
                            "event": EVENT_EXAMPLE,
                            "reason": "Kafka refused the event: Broker: Message size too large",
                            "attempts": 1,
                            "created_at": "2025-10-13T09:15:51.358632+00:00",
                            "dead_at": "2025-10-13T09:15:51.402117+00:00",
                        }
                    ],
                    "next_cursor": None,
                }
            ]
        }
    )

    dead_letters: list[DeadLetterItem] = Field(description="The longest dead first.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class RedriveResponse(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [{"redriven": [EVENT_ID_EXAMPLE], "not_found": []}]})

    redriven: list[str] = Field(description="Due again, and handed to the relay at once.")
    not_found: list[str] = Field(description="Ids named that are not dead letters (unknown, or re-driven already).")

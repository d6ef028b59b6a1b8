"""HTTP request and response models, with the examples Swagger UI's "Try it out" sends."""

import re
import unicodedata
from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import (
    AfterValidator,
    AliasChoices,
    BaseModel,
    BeforeValidator,
    ConfigDict,
    Field,
    GetJsonSchemaHandler,
    JsonValue,
    RootModel,
    StringConstraints,
    WithJsonSchema,
    model_validator,
)
from pydantic.json_schema import JsonSchemaValue
from pydantic_core import CoreSchema

from core.exceptions import ERROR_CODES

NAME_PATTERN = r"^[A-Za-z0-9_.-]{1,128}$"
CONTROL_FREE_PATTERN = "^[^\\u0000-\\u001f\\u007f-\\u009f]*$"
"""As JSON Schema: no control characters (what `has_unsafe_characters` refuses, bar unpaired surrogates)."""
FEATURE_VALUE_REF = "#/components/schemas/FeatureValue"
"""Any JSON value within the service's limits; the schema is api/values.py's, added to the document there."""
MAX_ENTITY_VALUE_BYTES = 1024
MAX_META_TEXT = 256


def has_unsafe_characters(text: str) -> bool:
    """Control characters and lone surrogates cannot be stored or logged safely."""
    return any(unicodedata.category(char) in ("Cc", "Cs") for char in text)


def _check_entity_value(value: str) -> str:
    if not value or len(value.encode("utf-8", "surrogatepass")) > MAX_ENTITY_VALUE_BYTES:
        raise ValueError(f"entity_value must be 1 to {MAX_ENTITY_VALUE_BYTES} UTF-8 bytes")
    if has_unsafe_characters(value):
        raise ValueError("entity_value must not contain control characters")
    return value


def _check_text(value: str) -> str:
    if has_unsafe_characters(value):
        raise ValueError("must not contain control characters")
    return value


EntityValue = Annotated[
    str,
    AfterValidator(_check_entity_value),
    WithJsonSchema(
        {
            "type": "string",
            "minLength": 1,
            "maxLength": MAX_ENTITY_VALUE_BYTES,
            "pattern": "^[^\\u0000-\\u001f\\u007f-\\u009f]+$",
            "description": f"1 to {MAX_ENTITY_VALUE_BYTES} UTF-8 bytes, no control characters.",
            "examples": ["user-123"],
        }
    ),
]
FeatureRef = Annotated[
    str,
    WithJsonSchema(
        {
            "type": "string",
            "pattern": "^[A-Za-z0-9_.-]{1,128}:([A-Za-z0-9_.-]{1,128}|\\*)$",
            "examples": ["user_features:age", "transaction_features:*"],
        }
    ),
]
"""`category:feature` or `category:*`; checked by the service, which reports non-whitelisted categories."""
Name = Annotated[str, StringConstraints(pattern=NAME_PATTERN)]
"""Feature and category names: letters, digits, `_`, `.`, `-`; 1 to 128 characters."""
FeatureValues = Annotated[
    dict[Name, Any],
    WithJsonSchema(
        {
            "type": "object",
            "minProperties": 1,
            "patternProperties": {NAME_PATTERN: {"$ref": FEATURE_VALUE_REF}},
            "additionalProperties": False,
        }
    ),
]
"""Feature name -> any JSON value; names as for `Name`."""
MetaText = Annotated[
    str,
    StringConstraints(max_length=MAX_META_TEXT),
    AfterValidator(_check_text),
    WithJsonSchema({"type": "string", "maxLength": MAX_META_TEXT, "pattern": CONTROL_FREE_PATTERN}),
]
EntityTypeName = Annotated[str, StringConstraints(max_length=128)]


def _seconds(value: object) -> object:
    """A JSON number, not a string or a boolean (which a float field would otherwise take)."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a number of seconds")
    return value


def _whole_seconds(value: object) -> object:
    """A JSON number with no fraction: `60` or `60.0` (JSON Schema's integers both), not a string or a boolean."""
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise ValueError("must be a whole number of seconds")
    if isinstance(value, float):
        if not value.is_integer():
            raise ValueError("must be a whole number of seconds")
        return int(value)
    return value


MAX_AGE_DESCRIPTION = (
    "Freshness bound: a category whose data is older than this many seconds (by its `event_time`) "
    "reads as unavailable, like an expired one."
)
MaxAgeSeconds = Annotated[float, Field(gt=0, allow_inf_nan=False), BeforeValidator(_seconds)]


DATE_TIME_PREFIX = re.compile(r"^\d{4}-\d{2}-\d{2}")


def _date_time_text(value: object) -> object:
    """An ISO 8601 date-time string, as the document says: not a number (which pydantic would take as
    seconds since the epoch), nor a numeric string."""
    if isinstance(value, datetime):
        return value
    if not isinstance(value, str) or not DATE_TIME_PREFIX.match(value):
        raise ValueError("must be an ISO 8601 date-time, e.g. 2025-10-13T09:15:51+00:00")
    return value


EventTime = Annotated[datetime, BeforeValidator(_date_time_text)]
"""An ISO 8601 date-time (naive = UTC); in a query string as in a body."""


ONE_META_SPELLING: dict[str, JsonValue] = {"required": ["meta", "metadata"]}
"""As JSON Schema: not both spellings (`"not": ...`)."""


class OneMetaSpelling(BaseModel):
    """`meta` and its alias `metadata`: a body naming both is ambiguous (which one holds?), so it is refused.
    The document lists both spellings, with the same schema, and (`"not"`) refuses a body giving both."""

    @classmethod
    def __get_pydantic_json_schema__(cls, core_schema: CoreSchema, handler: GetJsonSchemaHandler) -> JsonSchemaValue:
        schema = handler.resolve_ref_schema(handler(core_schema))
        properties = schema.get("properties", {})
        if "meta" in properties:
            properties["metadata"] = {**properties["meta"], "description": "Another spelling of `meta`."}
        return schema

    @model_validator(mode="before")
    @classmethod
    def _one_spelling(cls, data: Any) -> Any:
        if isinstance(data, dict) and "meta" in data and "metadata" in data:
            raise ValueError("send meta or metadata, not both")
        return data


class ReadMeta(BaseModel):
    source: MetaText | None = None
    max_age_seconds: MaxAgeSeconds | None = Field(None, description=MAX_AGE_DESCRIPTION, examples=[3600])


class WriteMeta(BaseModel):
    source: MetaText | None = Field(None, description="The writer; must be an allowed writer.")
    compute_id: MetaText | None = Field(None, description="The job run that computed the features.")
    ttl: Annotated[int, Field(gt=0), BeforeValidator(_whole_seconds)] | None = Field(
        None, description="Seconds the written categories stay valid."
    )
    event_time: EventTime | None = Field(
        None,
        description="When the data was true (ISO 8601); older writes than the stored one are skipped. Naive = UTC.",
    )


class GetItemsData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity_type: EntityTypeName = "bright_uid"
    entity_value: EntityValue
    feature_list: list[FeatureRef] = Field(min_length=1, description='"category:feature" or "category:*" entries.')


class GetItemsRequest(OneMetaSpelling):
    meta: ReadMeta | None = Field(None, validation_alias=AliasChoices("meta", "metadata"))
    data: GetItemsData

    model_config = ConfigDict(
        json_schema_extra={
            "not": ONE_META_SPELLING,
            "examples": [
                {
                    "meta": {"source": "api"},
                    "data": {
                        "entity_type": "bright_uid",
                        "entity_value": "user-123",
                        "feature_list": ["user_features:age", "user_features:income", "transaction_features:*"],
                    },
                }
            ],
        }
    )


class GetBatchData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity_type: EntityTypeName = "bright_uid"
    entity_values: list[EntityValue] = Field(min_length=1)
    feature_list: list[FeatureRef] = Field(min_length=1)


class GetBatchRequest(OneMetaSpelling):
    meta: ReadMeta | None = Field(None, validation_alias=AliasChoices("meta", "metadata"))
    data: GetBatchData

    model_config = ConfigDict(
        json_schema_extra={
            "not": ONE_META_SPELLING,
            "examples": [
                {
                    "meta": {"source": "ranker"},
                    "data": {
                        "entity_type": "bright_uid",
                        "entity_values": ["user-123", "user-001"],
                        "feature_list": ["user_features:age", "credit_features:*"],
                    },
                }
            ],
        }
    )


class CategoryFeatures(BaseModel):
    model_config = ConfigDict(extra="forbid")

    category: Name
    features: FeatureValues = Field(min_length=1)


class WriteData(BaseModel):
    """Either `feature_list` (many categories) or `category` + `features` (one)."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            # Exactly one shape: null stands for absent, as in the validator below.
            "anyOf": [
                {
                    "required": ["feature_list"],
                    "properties": {
                        "feature_list": {"type": "array"},
                        "category": {"type": "null"},
                        "features": {"type": "null"},
                    },
                },
                {
                    "required": ["category", "features"],
                    "properties": {
                        "category": {"type": "string"},
                        "features": {"type": "object"},
                        "feature_list": {"type": "null"},
                    },
                },
            ]
        },
    )

    entity_type: EntityTypeName = "bright_uid"
    entity_value: EntityValue
    feature_list: list[CategoryFeatures] | None = Field(None, min_length=1)
    category: Name | None = None
    features: FeatureValues | None = Field(None, min_length=1)

    @model_validator(mode="after")
    def _one_shape(self) -> "WriteData":
        single = self.category is not None or self.features is not None
        if self.feature_list is not None and single:
            raise ValueError("send either feature_list or category with features, not both")
        if self.feature_list is None and (self.category is None or self.features is None):
            raise ValueError("send feature_list, or category together with features")
        return self


class WriteRequest(OneMetaSpelling):
    meta: WriteMeta = Field(default_factory=WriteMeta, validation_alias=AliasChoices("meta", "metadata"))
    data: WriteData

    model_config = ConfigDict(
        json_schema_extra={
            "not": ONE_META_SPELLING,
            "examples": [
                {
                    "metadata": {"source": "prediction_service", "compute_id": "job-123"},
                    "data": {
                        "entity_type": "bright_uid",
                        "entity_value": "user-123",
                        "feature_list": [
                            {"category": "user_features", "features": {"age": 30, "income": 60000, "city": "SF"}},
                            {"category": "credit_features", "features": {"credit_score": 750}},
                        ],
                    },
                },
                {
                    "meta": {"source": "prediction_service", "compute_id": "job-123"},
                    "data": {
                        "entity_type": "bright_uid",
                        "entity_value": "user-001",
                        "category": "d0_unauth_features",
                        "features": {"credit_score": 750, "verified": True},
                    },
                },
            ],
        }
    )


FeatureSelector = Annotated[str, StringConstraints(pattern=r"^([A-Za-z0-9_.-]{1,128}|\*)$")]
"""A feature name, or `*` for the whole category."""


class EarlierReadBody(RootModel[dict[Name, list[FeatureSelector]]]):
    """The earlier API's read: category -> the feature names wanted; `[]` or `["*"]` is the whole category."""

    root: dict[Name, list[FeatureSelector]] = Field(min_length=1)

    model_config = ConfigDict(
        json_schema_extra={
            "additionalProperties": False,
            "examples": [{"user_features": ["age", "income"], "transaction_features": []}],
        }
    )


class EarlierWriteBody(RootModel[dict[Name, Annotated[FeatureValues, Field(min_length=1)]]]):
    """The earlier API's write: category -> its features, each category's data replaced as a whole."""

    root: dict[Name, Annotated[FeatureValues, Field(min_length=1)]] = Field(min_length=1)

    model_config = ConfigDict(
        json_schema_extra={
            "additionalProperties": False,
            "examples": [
                {"user_features": {"age": 30, "income": 60000, "city": "SF"}, "credit_features": {"credit_score": 750}}
            ],
        }
    )


METADATA_EXAMPLE: dict[str, JsonValue] = {
    "created_at": "2025-10-13T08:12:47.751080+00:00",
    "updated_at": "2025-10-13T09:15:51.358632+00:00",
    "source": "prediction_service",
    "compute_id": "job-123",
    "ttl": None,
    "expires_at": None,
    "event_time": "2025-10-13T09:15:51.358632+00:00",
    "age_seconds": 3.25,
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
    "writers": ["prediction_service"],
    "mode": "strict",
    "features": {"age": {"type": "int", "nullable": False, "description": "Age in years"}},
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


class EntityFeatures(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [ENTITY_FEATURES_EXAMPLE]})

    entity_value: str
    items: dict[str, CategoryItem]
    unavailable_feature_categories: list[str]
    unavailable_features: list[str]
    error: str | None = Field(None, description="Set when this entity's data could not be fetched.")


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


class RegistryCategory(BaseModel):
    """One category as the registry declares it, defaults filled in."""

    model_config = ConfigDict(json_schema_extra={"examples": [REGISTRY_CATEGORY_EXAMPLE]})

    description: str | None = Field(examples=["Demographics from the nightly profile job"])
    owner: str | None = Field(examples=["profile-team"])
    entity_types: list[str] = Field(description="The entity types it may be written for.", examples=[["bright_uid"]])
    default_ttl_seconds: int | None = Field(examples=[86400])
    writers: list[str] | None = Field(
        description="The only sources that may write it; null: every writer otherwise allowed.",
        examples=[["prediction_service"]],
    )
    mode: Literal["strict", "open"] = Field(
        description="`strict`: only declared features may be written; `open`: undeclared ones are accepted untyped."
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

"""HTTP request models and the field types they share, with the examples Swagger UI's "Try it out" sends.
Responses are in `response_models.py`."""

import re
from datetime import datetime
from typing import Annotated, Any

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

from components.features.names import (
    CONTROL_FREE_PATTERN,
    ENTITY_VALUE_PATTERN,
    FEATURE_ENTRY_PATTERN,
    FEATURE_SELECTOR_PATTERN,
    MAX_ENTITY_TYPE_CHARS,
    MAX_ENTITY_VALUE_BYTES,
    MAX_META_TEXT,
    NAME_PATTERN,
    has_unsafe_characters,
)

FEATURE_VALUE_REF = "#/components/schemas/FeatureValue"
"""Any JSON value within the service's limits; the schema is api/openapi/values.py's, added to the document there."""


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
            "pattern": ENTITY_VALUE_PATTERN,
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
            "pattern": FEATURE_ENTRY_PATTERN,
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
ComputeId = Annotated[
    str,
    StringConstraints(min_length=1, max_length=MAX_META_TEXT),
    AfterValidator(_check_text),
    WithJsonSchema({"type": "string", "minLength": 1, "maxLength": MAX_META_TEXT, "pattern": CONTROL_FREE_PATTERN}),
]
"""`MetaText` that is not empty: the job whose writes a rollback undoes."""
EntityTypeName = Annotated[str, StringConstraints(max_length=MAX_ENTITY_TYPE_CHARS)]


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


AS_OF_DESCRIPTION = (
    "Read as of this time (ISO 8601, naive = UTC): per category, the value whose `event_time` was the latest at "
    "or before it, among the current one and the versions its history keeps (docs/history.md), with "
    "`as_of_resolved` in its metadata; ages, TTLs and `max_age_seconds` are judged at that time."
)


class ReadMeta(BaseModel):
    source: MetaText | None = None
    max_age_seconds: MaxAgeSeconds | None = Field(None, description=MAX_AGE_DESCRIPTION, examples=[3600])
    as_of: EventTime | None = Field(None, description=AS_OF_DESCRIPTION, examples=["2025-10-13T09:00:00+00:00"])


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


FeatureSelector = Annotated[str, StringConstraints(pattern=FEATURE_SELECTOR_PATTERN)]
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

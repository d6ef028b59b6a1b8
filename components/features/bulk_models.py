"""HTTP models of the bulk write (`POST /api/v1/items/batch`) and the erasure (`DELETE /api/v1/items/{id}`),
with the examples Swagger UI's "Try it out" sends."""

from datetime import datetime
from typing import Annotated, Any

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, WithJsonSchema

from components.features.models import (
    ONE_META_SPELLING,
    CategoryFeatures,
    EntityTypeName,
    EntityValue,
    Name,
    OneMetaSpelling,
    WriteMeta,
)
from components.features.names import NAME_PATTERN
from components.features.response_models import ErrorCode

BatchFeatureValues = Annotated[
    dict[Name, Any],
    WithJsonSchema(
        {
            "type": "object",
            "minProperties": 1,
            "patternProperties": {NAME_PATTERN: {}},
            "additionalProperties": False,
            "description": "Feature name -> any JSON value; a value the service refuses (see `FeatureValue`) "
            "fails its entity only.",
        }
    ),
]


class BatchCategoryFeatures(CategoryFeatures):
    """One category of an entity in a bulk write. Unlike a single write's, its category and values are
    not limited in this schema to what the service accepts: a category that is not allowed, or a value
    it refuses, fails its entity only (reported in the entity's `error`), not the request."""

    features: BatchFeatureValues = Field(min_length=1)


class BatchWriteEntity(OneMetaSpelling):
    """One entity of a bulk write: its categories, and the `meta` fields it overrides (optional)."""

    model_config = ConfigDict(extra="forbid", json_schema_extra={"not": ONE_META_SPELLING})

    entity_value: EntityValue
    feature_list: list[BatchCategoryFeatures] = Field(min_length=1)
    meta: WriteMeta | None = Field(
        None,
        validation_alias=AliasChoices("meta", "metadata"),
        description="Fields given here replace the request's `meta` fields of the same name for this entity.",
    )


class BatchWriteData(BaseModel):
    model_config = ConfigDict(extra="forbid")

    entity_type: EntityTypeName = "bright_uid"
    entities: list[BatchWriteEntity] = Field(min_length=1)


class BatchWriteRequest(OneMetaSpelling):
    meta: WriteMeta = Field(default_factory=WriteMeta, validation_alias=AliasChoices("meta", "metadata"))
    data: BatchWriteData

    model_config = ConfigDict(
        json_schema_extra={
            "not": ONE_META_SPELLING,
            "examples": [
                {
                    "meta": {"source": "prediction_service", "compute_id": "job-123"},
                    "data": {
                        "entity_type": "bright_uid",
                        "entities": [
                            {
                                "entity_value": "user-123",
                                "feature_list": [
                                    {"category": "user_features", "features": {"age": 30, "city": "SF"}},
                                    {"category": "credit_features", "features": {"credit_score": 750}},
                                ],
                            },
                            {
                                "entity_value": "user-001",
                                "feature_list": [{"category": "user_features", "features": {"age": 41}}],
                                "meta": {"event_time": "2025-10-13T09:00:00+00:00"},
                            },
                        ],
                    },
                }
            ],
        }
    )


class EntityError(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={"examples": [{"error": "forbidden", "detail": "key 'ranker' may not write categories"}]}
    )

    error: ErrorCode
    detail: Any = Field(
        description="For people: a message, or for `validation_error` the field errors, each with `type`, `loc` "
        "(from the request body's root), `msg`."
    )


BATCH_RESULT_EXAMPLE: dict[str, Any] = {
    "entity_value": "user-123",
    "categories_updated": ["user_features", "credit_features"],
    "categories_skipped": [],
    "error": None,
}


class BatchWriteResult(BaseModel):
    model_config = ConfigDict(json_schema_extra={"examples": [BATCH_RESULT_EXAMPLE]})

    entity_value: str
    categories_updated: list[str]
    categories_skipped: list[str] = Field(
        description="Categories left alone because newer data (or a newer deletion) is stored."
    )
    error: EntityError | None = Field(description="Why nothing of this entity was written; null when it was.")


class BatchWriteResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "entity_type": "bright_uid",
                    "results": [
                        BATCH_RESULT_EXAMPLE,
                        {
                            "entity_value": "user-001",
                            "categories_updated": [],
                            "categories_skipped": [],
                            "error": {
                                "error": "validation_error",
                                "detail": [
                                    {
                                        "type": "value_error",
                                        "loc": ["body", "data", "entities", 1, "feature_list", 0, "category"],
                                        "msg": "category 'made_up' is not allowed",
                                    }
                                ],
                            },
                        },
                    ],
                    "written": 1,
                    "failed": 1,
                }
            ]
        }
    )

    entity_type: str
    results: list[BatchWriteResult] = Field(description="One per entity, in request order.")
    written: int = Field(description="Entities committed (including those whose every category was skipped).")
    failed: int = Field(description="Entities with an `error`: nothing of them was written.")


class DeleteResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "entity_value": "user-123",
                    "entity_type": "bright_uid",
                    "categories_deleted": ["user_features", "credit_features"],
                    "timestamp": "2025-10-13T09:15:51.358632+00:00",
                }
            ]
        }
    )

    entity_value: str
    entity_type: str
    categories_deleted: list[str] = Field(
        description="Categories whose data was removed, in the order asked (or stored); empty when there was none."
    )
    timestamp: datetime

"""The HTTP models of history (docs/history.md): a category's kept versions listed, and a rollback's request and
answer, with their examples."""

from datetime import datetime
from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field, StringConstraints
from pydantic.json_schema import JsonValue

from components.features.models import ComputeId, EntityValue
from components.features.response_models import METADATA_EXAMPLE, RegistryHistory

MAX_HISTORY_PAGE = 50
HISTORY_CURSOR_PATTERN = r"^[0-9]{1,10}$"

KEPT_METADATA_EXAMPLE: dict[str, JsonValue] = {
    **{name: value for name, value in METADATA_EXAMPLE.items() if name not in ("created_at", "age_seconds")},
    "version": 6,
}
KEPT_VERSION_EXAMPLE: dict[str, JsonValue] = {
    "data": {"age": 30, "income": 60000, "city": "SF"},
    "metadata": KEPT_METADATA_EXAMPLE,
    "kept_until": "2025-10-20T09:15:51.358632+00:00",
}


class KeptVersionItem(BaseModel):
    data: dict[str, Any]
    metadata: dict[str, Any] = Field(
        description="As it was while current (`updated_at`, `source`, `compute_id`, `ttl`, `expires_at`, "
        "`event_time`, `written_by`, `version`); `created_at` is not kept.",
        examples=[KEPT_METADATA_EXAMPLE],
    )
    kept_until: datetime = Field(description="When it is forgotten: replaced, plus the category's retention.")


class HistoryResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "entity_type": "bright_uid",
                    "entity_value": "user-123",
                    "category": "user_features",
                    "history": {"versions": 10, "retention_seconds": 604800},
                    "versions": [KEPT_VERSION_EXAMPLE],
                    "next_cursor": None,
                }
            ]
        }
    )

    entity_type: str
    entity_value: str
    category: str
    history: RegistryHistory | None = Field(description="The category's history in the registry; null: none kept.")
    versions: list[KeptVersionItem] = Field(description="The values its writes replaced, newest first.")
    next_cursor: str | None = Field(description="Pass as `cursor` for the next page; null on the last page.")


class RollbackRequest(BaseModel):
    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [
                {"entity_type": "bright_uid", "entity_values": ["user-123", "user-456"], "compute_id": "job-123"}
            ]
        },
    )

    entity_type: Annotated[str, StringConstraints(max_length=128)] = Field(examples=["bright_uid"])
    entity_values: list[EntityValue] = Field(
        min_length=1,
        description="The entities to roll back, at most `MAX_BATCH_WRITE_ENTITIES`; each once.",
        examples=[["user-123"]],
    )
    compute_id: ComputeId = Field(
        description="The job whose writes are undone: categories whose current value it wrote.", examples=["job-123"]
    )


class RestoredCategory(BaseModel):
    category: str = Field(examples=["user_features"])
    version: int = Field(description="The version the restore made (a write like any other).", examples=[8])
    undone_version: int = Field(description="The job's version, current until the restore.", examples=[7])
    restored_version: int = Field(description="The kept version whose value is current again.", examples=[6])


class UntouchedCategory(BaseModel):
    category: str = Field(examples=["credit_features"])
    reason: Literal["written_by_other", "no_history", "no_earlier_version", "changed"] = Field(
        description="`written_by_other`: its value is another job's; `no_history`: the job wrote it, but it keeps "
        "no history; `no_earlier_version`: no kept version another job wrote (none kept, or past their "
        "retention); `changed`: written again since it was read."
    )


class RollbackResult(BaseModel):
    entity_value: str
    restored: list[RestoredCategory]
    untouched: list[UntouchedCategory] = Field(description="Categories holding data that were left alone, and why.")
    error: dict[str, Any] | None = Field(
        description="Set when this entity could not be rolled back (`error` and `detail`, as an error response)."
    )


class RollbackResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "entity_type": "bright_uid",
                    "compute_id": "job-123",
                    "results": [
                        {
                            "entity_value": "user-123",
                            "restored": [
                                {"category": "user_features", "version": 8, "undone_version": 7, "restored_version": 6}
                            ],
                            "untouched": [{"category": "credit_features", "reason": "written_by_other"}],
                            "error": None,
                        }
                    ],
                    "restored": 1,
                    "failed": 0,
                }
            ]
        }
    )

    entity_type: str
    compute_id: str
    results: list[RollbackResult] = Field(description="One per entity, in request order.")
    restored: int = Field(description="Categories restored, over every entity.")
    failed: int = Field(description="Entities that could not be rolled back (see their `error`).")

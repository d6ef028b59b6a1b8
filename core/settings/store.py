"""Store settings: the backend that holds the features and where (the SQLite file, the DynamoDB tables and
client), and what it holds (the registry or the open categories, their TTLs, the writers allowed)."""

from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Literal, Self

from pydantic import AliasChoices, BaseModel, ConfigDict, Field, StrictInt, field_validator, model_validator

from core.settings.base import CommaSeparated

DEFAULT_CATEGORIES = (
    "user_features",
    "credit_features",
    "transaction_features",
    "trans_features",
    "d0_unauth_features",
)
DYNAMODB_MAX_VALUE_DEPTH = 30
"""DynamoDB nests at most 32 levels; a feature value sits inside `features.data`."""
REGISTRY_REPLACES = ("allowed_categories", "category_default_ttl_seconds", "category_history")
"""Settings a registry file replaces; setting both is refused rather than one silently ignored."""


class StoreBackend(StrEnum):
    SQLITE = "sqlite"
    DYNAMODB = "dynamodb"


class EntityTypeLocation(BaseModel):
    """Where one entity type lives: its DynamoDB table and partition-key attribute."""

    table: str = Field(min_length=3, max_length=255, pattern=r"^[A-Za-z0-9_.-]+$")
    key_attribute: str = Field(min_length=1, max_length=255)


class EntityType(EntityTypeLocation):
    name: str


MAX_HISTORY_VERSIONS = 50
"""The most versions a category may keep: an erasure removes them with the tombstone, in one DynamoDB
transaction (100 items)."""


class CategoryHistory(BaseModel):
    """A category's history: the values its writes replace, kept up to `versions` of them, each for
    `retention_seconds` after it was replaced."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    versions: StrictInt = Field(gt=0, le=MAX_HISTORY_VERSIONS)
    retention_seconds: StrictInt = Field(gt=0)


class StoreSettings(BaseModel):
    store_backend: StoreBackend = StoreBackend.SQLITE
    sqlite_path: Path = Path("./data/features.db")
    sqlite_synchronous: str = "FULL"
    """SQLite `synchronous` pragma: FULL survives power loss, NORMAL only process crashes."""

    aws_region: str = "us-east-1"
    dynamodb_endpoint_url: str = ""
    dynamodb_table_bright_uid: str = "user_feature_store"
    dynamodb_table_account_id: str = "account_feature_store"
    dynamodb_key_bright_uid: str = "bright_uid"
    dynamodb_key_account_id: str = "account_pid"
    dynamodb_table_outbox: str = Field(
        "feature_store_outbox", min_length=3, max_length=255, pattern=r"^[A-Za-z0-9_.-]+$"
    )
    """Table holding events committed with their writes until they are published."""
    dynamodb_create_tables: bool = False
    """Create missing tables on first use; for local endpoints only, refused in production."""
    dynamodb_consistent_reads: bool = False
    """Strongly consistent reads (twice the read cost); eventually consistent by default."""
    dynamodb_connect_timeout_seconds: float = Field(1.0, gt=0)
    dynamodb_read_timeout_seconds: float = Field(2.0, gt=0)
    dynamodb_max_attempts: int = Field(3, ge=1)
    """Attempts per DynamoDB call, the first included; a call gives up after about
    attempts x (connect + read timeout) plus backoff."""
    dynamodb_retry_mode: Literal["legacy", "standard", "adaptive"] = "standard"
    dynamodb_read_deadline_seconds: float = Field(2.0, gt=0)
    """How long a batch read keeps retrying keys DynamoDB left unprocessed before reporting them failed."""
    dynamodb_batch_concurrency: int = Field(
        8, gt=0, validation_alias=AliasChoices("dynamodb_batch_concurrency", "dynamodb_batch_threads")
    )
    """BatchGetItem requests (100 keys each) one batch read keeps in flight, and outbox claims the relay
    makes at once. `DYNAMODB_BATCH_THREADS`, its name when these ran in threads, still sets it."""
    dynamodb_write_concurrency: int = Field(16, gt=0)
    """Entities one bulk write commits at once (one TransactWriteItems each)."""
    dynamodb_max_connections: int = Field(64, gt=0)
    """Connections the DynamoDB client keeps to DynamoDB (per process); calls beyond wait for a free one,
    at most the connect plus read timeout."""
    extra_entity_types: dict[str, EntityTypeLocation] = {}
    """JSON object adding entity types: `{"merchant_id": {"table": "...", "key_attribute": "..."}}`."""

    feature_registry_file: str = ""
    """YAML file declaring the categories, their features and types (docs/registry.md); empty: the open
    registry of ALLOWED_CATEGORIES and CATEGORY_DEFAULT_TTL_SECONDS."""
    allowed_categories: CommaSeparated = DEFAULT_CATEGORIES
    category_default_ttl_seconds: dict[str, int] = {}
    """JSON object `{"category": seconds}`: TTL applied when a write gives none."""
    category_history: dict[str, CategoryHistory] = {}
    """JSON object `{"category": {"versions": N, "retention_seconds": S}}`: the categories that keep the values
    their writes replace (docs/history.md)."""
    write_allowed_sources: CommaSeparated = ("prediction_service",)

    @field_validator("sqlite_synchronous")
    @classmethod
    def _check_synchronous(cls, value: str) -> str:
        value = value.upper()
        if value not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError("SQLITE_SYNCHRONOUS must be OFF, NORMAL, FULL or EXTRA")
        return value

    @model_validator(mode="after")
    def _check_categories(self) -> Self:
        if self.feature_registry_file:
            given = [name.upper() for name in REGISTRY_REPLACES if name in self.model_fields_set]
            if given:
                raise ValueError(
                    f"FEATURE_REGISTRY_FILE declares the categories and their TTLs, so {' and '.join(given)} "
                    "must not be set too: remove it from the environment and env files"
                )
        unknown = set(self.category_default_ttl_seconds) - set(self.allowed_categories)
        if unknown:
            raise ValueError(f"CATEGORY_DEFAULT_TTL_SECONDS names categories not allowed: {sorted(unknown)}")
        if any(seconds <= 0 for seconds in self.category_default_ttl_seconds.values()):
            raise ValueError("CATEGORY_DEFAULT_TTL_SECONDS values must be positive")
        unknown = set(self.category_history) - set(self.allowed_categories)
        if unknown:
            raise ValueError(f"CATEGORY_HISTORY names categories not allowed: {sorted(unknown)}")
        return self

    @cached_property
    def entity_types(self) -> dict[str, EntityType]:
        extra = {
            name: EntityType(name=name, **location.model_dump()) for name, location in self.extra_entity_types.items()
        }
        return extra | {
            "bright_uid": EntityType(
                name="bright_uid", table=self.dynamodb_table_bright_uid, key_attribute=self.dynamodb_key_bright_uid
            ),
            "account_id": EntityType(
                name="account_id", table=self.dynamodb_table_account_id, key_attribute=self.dynamodb_key_account_id
            ),
        }

"""Service configuration: one pydantic-settings class read from the environment and `.env`."""

from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated

from pydantic import BaseModel, Field, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

DEFAULT_CATEGORIES = (
    "user_features",
    "credit_features",
    "transaction_features",
    "trans_features",
    "d0_unauth_features",
)


class Environment(StrEnum):
    DEVELOPMENT = "development"
    STAGING = "staging"
    PRODUCTION = "production"


class StoreBackend(StrEnum):
    SQLITE = "sqlite"
    DYNAMODB = "dynamodb"


class EntityTypeLocation(BaseModel):
    """Where one entity type lives: its DynamoDB table and partition-key attribute."""

    table: str = Field(min_length=3, max_length=255, pattern=r"^[A-Za-z0-9_.-]+$")
    key_attribute: str = Field(min_length=1, max_length=255)


class EntityType(EntityTypeLocation):
    name: str


def _split_csv(value: object) -> object:
    if isinstance(value, str):
        return [item.strip() for item in value.split(",") if item.strip()]
    return value


class Settings(BaseSettings):
    """Every setting the service reads; `.env.example` documents each one."""

    model_config = SettingsConfigDict(env_file=".env", extra="ignore", frozen=True)

    environment: Environment = Environment.DEVELOPMENT
    app_name: str = "Feature Store API"
    docs_enabled: bool = True
    """Serve `/docs` and `/openapi.json`; production may switch them off."""

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
    dynamodb_create_tables: bool = False
    extra_entity_types: dict[str, EntityTypeLocation] = {}
    """JSON object adding entity types: `{"merchant_id": {"table": "...", "key_attribute": "..."}}`."""

    allowed_categories: Annotated[tuple[str, ...], NoDecode] = DEFAULT_CATEGORIES
    category_default_ttl_seconds: dict[str, int] = {}
    """JSON object `{"category": seconds}`: TTL applied when a write gives none."""
    write_allowed_sources: Annotated[tuple[str, ...], NoDecode] = ("prediction_service",)

    max_body_bytes: int = Field(1_048_576, gt=0)
    max_feature_list: int = Field(1000, gt=0)
    """Most `category:feature` entries in one read request."""
    max_batch_entities: int = Field(1000, gt=0)
    max_categories_per_write: int = Field(25, gt=0)
    max_features_per_category: int = Field(1000, gt=0)
    max_string_bytes: int = Field(65_536, gt=0)
    """Longest string value a feature may hold, in UTF-8 bytes."""
    max_json_depth: int = Field(16, gt=0)
    """Deepest nesting of lists and objects inside one feature value."""
    max_ttl_seconds: int = Field(10 * 365 * 24 * 3600, gt=0)

    kafka_broker_url: str = ""
    schema_registry: str = ""
    topic_name: str = "FEATURE_AVAILABILITY_EVENTS"
    kafka_message_timeout_ms: int = Field(10_000, gt=0)
    """How long the producer tries to deliver one event before reporting failure; the outbox then
    retries it. It also bounds how long one relay batch waits for Kafka."""
    kafka_socket_timeout_ms: int = Field(10_000, ge=10)
    """Network timeout of broker requests and of Schema Registry calls."""
    outbox_batch_size: int = Field(500, gt=0)
    outbox_poll_seconds: float = Field(1.0, gt=0)
    """How often the relay looks for events left behind (retries, other replicas, restarts)."""
    outbox_lease_seconds: float = Field(30.0, gt=0)
    outbox_max_backoff_seconds: float = Field(30.0, gt=0)
    shutdown_flush_seconds: float = Field(10.0, ge=0)

    statsd_host: str = ""
    statsd_port: int = 8125
    statsd_prefix: str = "feature_store"

    log_level: str = "INFO"
    log_format: str = ""
    """`json` or `console`; empty picks console in development and json elsewhere."""
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()

    auth_enabled: bool = False
    api_keys_file: str = ""

    eager_init: bool = False
    threadpool_size: int = Field(50, gt=0)
    """Worker threads for blocking store calls; DynamoDB's connection pool matches it."""

    @field_validator("allowed_categories", "write_allowed_sources", "cors_origins", mode="before")
    @classmethod
    def _parse_csv(cls, value: object) -> object:
        return _split_csv(value)

    @field_validator("log_format")
    @classmethod
    def _check_log_format(cls, value: str) -> str:
        if value not in ("", "json", "console"):
            raise ValueError("LOG_FORMAT must be 'json' or 'console'")
        return value

    @field_validator("sqlite_synchronous")
    @classmethod
    def _check_synchronous(cls, value: str) -> str:
        value = value.upper()
        if value not in ("OFF", "NORMAL", "FULL", "EXTRA"):
            raise ValueError("SQLITE_SYNCHRONOUS must be OFF, NORMAL, FULL or EXTRA")
        return value

    @model_validator(mode="after")
    def _check_consistency(self) -> "Settings":
        unknown = set(self.category_default_ttl_seconds) - set(self.allowed_categories)
        if unknown:
            raise ValueError(f"CATEGORY_DEFAULT_TTL_SECONDS names categories not allowed: {sorted(unknown)}")
        if any(seconds <= 0 for seconds in self.category_default_ttl_seconds.values()):
            raise ValueError("CATEGORY_DEFAULT_TTL_SECONDS values must be positive")
        if self.kafka_broker_url and not self.schema_registry:
            raise ValueError("SCHEMA_REGISTRY is required when KAFKA_BROKER_URL is set")
        if self.outbox_lease_seconds * 1000 <= self.kafka_message_timeout_ms:
            raise ValueError("OUTBOX_LEASE_SECONDS must exceed KAFKA_MESSAGE_TIMEOUT_MS, or another replica "
                             "could claim events still being delivered")
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

    @property
    def log_as_json(self) -> bool:
        if self.log_format:
            return self.log_format == "json"
        return self.environment != Environment.DEVELOPMENT

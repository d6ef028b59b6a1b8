"""Service configuration: one pydantic-settings class read from the environment and env files.

Precedence, highest first: process environment, `.env` (local, never committed), `.env.<ENVIRONMENT>`
(the committed defaults of that environment), the defaults below. ENVIRONMENT itself comes from the
process environment, else from `.env`, else `development`.
"""

import json
import os
import re
from collections.abc import Callable
from enum import StrEnum
from functools import cached_property
from pathlib import Path
from typing import Annotated, Any, Literal

from dotenv import dotenv_values
from pydantic import AliasChoices, BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from core.kafka_settings import (
    KafkaPartitioner,
    KafkaSaslMechanism,
    ProducerProperty,
    kafka_connection_problems,
    producer_config_problems,
)

DEFAULT_CATEGORIES = (
    "user_features",
    "credit_features",
    "transaction_features",
    "trans_features",
    "d0_unauth_features",
)
_TAG_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_./-]{0,99}")
_TAG_VALUE = re.compile(r"[A-Za-z0-9_./-]{1,200}")
"""Characters every tag style carries unchanged (none of `,:|#=;` or spaces, which separate tags)."""
DYNAMODB_MAX_VALUE_DEPTH = 30
"""DynamoDB nests at most 32 levels; a feature value sits inside `features.data`."""
METRIC_EXPORTERS = ("statsd", "prometheus", "otlp")
BATCH_BODY_BYTES_PER_ENTITY = 32 * 1024
"""Body bytes a bulk write may spend per entity it may hold: 16 MiB for the default 500 entities."""


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


def split_csv(value: str) -> list[str]:
    """`a, b,` -> ["a", "b"]: how comma-separated settings and CLI options are read."""
    return [item.strip() for item in value.split(",") if item.strip()]


def env_files() -> tuple[str, ...]:
    """The env files to read, lowest precedence first: `.env.<ENVIRONMENT>`, then `.env`."""
    environment = os.environ.get("ENVIRONMENT") or dotenv_values(".env").get("ENVIRONMENT") or "development"
    return (f".env.{environment}", ".env")


REGISTRY_REPLACES = ("allowed_categories", "category_default_ttl_seconds")
"""Settings a registry file replaces; setting both is refused rather than one silently ignored."""

PRODUCTION_REFUSALS: tuple[tuple[str, Callable[["Settings"], bool]], ...] = (
    ("CORS_ORIGINS='*' is refused in production: list the allowed origins", lambda s: "*" in s.cors_origins),
    ("DYNAMODB_CREATE_TABLES=true: create tables with infrastructure code", lambda s: s.dynamodb_create_tables),
    ("SCHEMA_REGISTRY is mock://: consumers cannot resolve it", lambda s: s.schema_registry.startswith("mock:")),
)
"""What ENVIRONMENT=production refuses to start with: (the problem, the check that finds it).
Missing API keys are refused in staging too, by `Settings._require_api_keys`."""


class Settings(BaseSettings):
    """Every setting the service reads; `.env.example` documents each one."""

    # Inputs are never echoed in validation errors: some settings are secrets.
    model_config = SettingsConfigDict(extra="ignore", frozen=True, hide_input_in_errors=True)

    def __init__(self, **values: Any) -> None:
        """Read the env files of the selected environment unless the caller names its own (`_env_file`)."""
        values.setdefault("_env_file", env_files())
        super().__init__(**values)

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
    allowed_categories: Annotated[tuple[str, ...], NoDecode] = DEFAULT_CATEGORIES
    category_default_ttl_seconds: dict[str, int] = {}
    """JSON object `{"category": seconds}`: TTL applied when a write gives none."""
    write_allowed_sources: Annotated[tuple[str, ...], NoDecode] = ("prediction_service",)

    max_body_bytes: int = Field(1_048_576, gt=0)
    max_feature_list: int = Field(1000, gt=0)
    """Most `category:feature` entries in one read request."""
    max_batch_entities: int = Field(1000, gt=0)
    max_batch_write_entities: int = Field(500, gt=0)
    """Most entities in one bulk write (`POST /api/v1/items/batch`); its body may hold
    `BATCH_BODY_BYTES_PER_ENTITY` bytes per entity (never less than MAX_BODY_BYTES)."""
    max_categories_per_write: int = Field(25, gt=0)
    max_features_per_category: int = Field(1000, gt=0)
    max_features_per_write: int = Field(5000, gt=0)
    """Most features across all categories of one write."""
    max_string_bytes: int = Field(65_536, gt=0)
    """Longest string value a feature may hold, in UTF-8 bytes."""
    max_json_depth: int = Field(16, gt=0, le=128)
    """Deepest nesting of lists and objects inside one feature value (orjson stores at most 254 levels)."""
    max_ttl_seconds: int = Field(10 * 365 * 24 * 3600, gt=0)
    delete_tombstone_seconds: int = Field(7 * 24 * 3600, gt=0)
    """How long a deleted category is remembered, so a write with an older `event_time` cannot bring
    its data back."""

    kafka_broker_url: str = ""
    schema_registry: str = ""
    topic_name: str = "FEATURE_AVAILABILITY_EVENTS"
    kafka_message_timeout_ms: int = Field(10_000, gt=0)
    """How long the producer tries to deliver one event before reporting failure; the outbox then
    retries it. It also bounds how long one relay batch waits for Kafka."""
    kafka_socket_timeout_ms: int = Field(10_000, ge=10)
    """Network timeout of broker requests and of Schema Registry calls."""
    kafka_security_protocol: Literal["PLAINTEXT", "SSL", "SASL_PLAINTEXT", "SASL_SSL"] = "PLAINTEXT"
    kafka_sasl_mechanism: KafkaSaslMechanism = ""
    """Required with SASL_*; AWS_MSK_IAM signs OAUTHBEARER tokens with the default AWS credentials."""
    kafka_sasl_username: str = ""
    kafka_sasl_password: SecretStr = SecretStr("")
    kafka_ssl_ca_location: str = ""
    """CA bundle that signed the brokers' certificates; empty = the system's CAs."""
    kafka_ssl_certificate_location: str = ""
    """Client certificate (mutual TLS), with KAFKA_SSL_KEY_LOCATION."""
    kafka_ssl_key_location: str = ""
    kafka_ssl_key_password: SecretStr = SecretStr("")
    kafka_partitioner: KafkaPartitioner = "murmur2_random"
    """murmur2_random puts a key where Java clients and Kafka Streams put it."""
    kafka_producer_config: Annotated[dict[str, ProducerProperty], NoDecode] = Field({}, repr=False)
    """JSON object of further librdkafka producer properties; may hold secrets, so never shown."""
    schema_registry_basic_auth_user_info: SecretStr = SecretStr("")
    """`<key>:<secret>` for the Schema Registry's HTTP basic authentication."""
    schema_registry_ssl_ca_location: str = ""
    schema_auto_register: bool = True
    """Register the schema on first use; off for governed registries where a pipeline registers it."""
    schema_use_latest_version: bool = False
    """Serialize with the subject's latest registered version rather than looking up our own."""
    outbox_batch_size: int = Field(500, gt=0)
    outbox_poll_seconds: float = Field(1.0, gt=0)
    """How often the relay looks for events left behind (retries, other replicas, restarts)."""
    outbox_lease_seconds: float = Field(30.0, gt=0)
    outbox_max_backoff_seconds: float = Field(30.0, gt=0)
    outbox_max_attempts: int = Field(5, ge=1)
    """Failures of an event's own (not of the whole pipeline) after which it becomes a dead letter."""
    shutdown_flush_seconds: float = Field(10.0, ge=0)
    outbox_gauge_seconds: float = Field(2.0, gt=0)
    """How often the backlog `/ready` and the gauges report is measured: `pending` lags the outbox by up to
    this. Each measurement is a count (4 small Queries on DynamoDB, a COUNT on SQLite) whatever else happens."""
    ready_timeout_seconds: float = Field(1.0, gt=0)
    """`/ready` answers within this, whatever the store does: a store check still running then is a 503."""

    statsd_host: str = ""
    statsd_port: int = 8125
    statsd_prefix: str = "feature_store"
    statsd_tag_style: Literal["dogstatsd", "influx", "graphite", "none"] = "dogstatsd"
    """How tags are written: `name:1|c|#k:v` (Datadog agent, Telegraf, statsd_exporter), `name,k=v:1|c`
    (Telegraf, statsd_exporter), `name;k=v:1|c` (Graphite), or not at all."""
    statsd_constant_tags: Annotated[tuple[str, ...], NoDecode] = ()
    """`key:value` pairs, comma-separated, added to every metric in the tag style above."""
    statsd_timer_type: Literal["ms", "distribution"] = "ms"
    """`ms`: StatsD timers, summarised by each agent; `distribution`: DogStatsD `|d`, aggregated across hosts."""
    dd_env: str = ""
    """Datadog's unified service tags: each one set becomes the constant tag `env`, `service` or `version`."""
    dd_service: str = ""
    dd_version: str = ""

    # Metric exporters (core/metrics): which ones, and the Prometheus scrape endpoint.
    metrics_exporter: Annotated[tuple[str, ...], NoDecode] = ()
    """Comma-separated `statsd`, `prometheus`, `otlp`; empty: `statsd` when STATSD_HOST is set, else none."""
    metrics_path: str = Field("/metrics", pattern=r"^/[A-Za-z0-9_.~/-]*$")
    """Where Prometheus scrapes, on the service's own port, outside /api/v1."""
    metrics_require_key: bool = False
    """Scrapes need an API key with the `admin` scope (AUTH_ENABLED=true)."""
    metrics_multiproc_dir: str = ""
    """With WEB_CONCURRENCY > 1, where the workers keep their Prometheus values (emptied at start); empty:
    a new temporary directory."""

    @field_validator("metrics_exporter", mode="before")
    @classmethod
    def _parse_exporters(cls, value: object) -> object:
        return tuple(name.lower() for name in split_csv(value)) if isinstance(value, str) else value

    @field_validator("metrics_exporter")
    @classmethod
    def _check_exporters(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(METRIC_EXPORTERS))
        if unknown:
            raise ValueError(
                f"unknown METRICS_EXPORTER {', '.join(unknown)}: choose from {', '.join(METRIC_EXPORTERS)}"
            )
        return value

    @model_validator(mode="after")
    def _check_metrics(self) -> "Settings":
        from core.metrics.otlp import otlp_problems

        problems = []
        if "statsd" in self.metrics_exporters and not self.statsd_host:
            problems.append("METRICS_EXPORTER=statsd needs STATSD_HOST")
        if "otlp" in self.metrics_exporters:
            problems += otlp_problems(os.environ)
        if self.metrics_require_key and not self.auth_enabled:
            problems.append("METRICS_REQUIRE_KEY=true needs AUTH_ENABLED=true (a key with the admin scope)")
        if self.metrics_path == "/api" or self.metrics_path.startswith("/api/"):
            problems.append("METRICS_PATH must be outside /api")
        if problems:
            raise ValueError("invalid metrics settings:\n- " + "\n- ".join(problems))
        return self

    @property
    def metrics_exporters(self) -> frozenset[str]:
        if self.metrics_exporter:
            return frozenset(self.metrics_exporter)
        return frozenset({"statsd"} if self.statsd_host else ())

    log_level: str = "INFO"
    log_format: str = ""
    """`json` or `console`; empty picks console in development and json elsewhere."""
    slow_request_ms: float = Field(500.0, gt=0)
    """Requests slower than this are logged as a warning and counted as `http.request.slow`."""
    cors_origins: Annotated[tuple[str, ...], NoDecode] = ()
    """Origins browsers may call from; empty means `*` in development and none elsewhere."""

    auth_enabled: bool = False
    """Require an API key on every feature route and /warmup; staging and production refuse to start without."""
    api_keys_file: str = ""
    """JSON or YAML list of hashed keys with scopes; see `python -m core.auth new-key`."""
    rate_limit_per_second: float = Field(0.0, ge=0)
    """Requests a second each API key may make on average, per process; 0 = no limit."""
    rate_limit_burst: int = Field(20, gt=0)
    """Requests a key may make at once before the per-second rate applies."""

    eager_init: bool = False
    threadpool_size: int = Field(50, gt=0)
    """Worker threads for calls that block: the embedded store's writes and large batch reads, Kafka's producer."""

    # The server process (`python -m serve`): where it listens and how it treats connections.
    host: str = "0.0.0.0"
    """Address the server listens on."""
    port: int = Field(8000, gt=0, lt=65536)
    web_concurrency: int = Field(1, gt=0)
    """Worker processes; each has its own store client, producer and limits below."""
    graceful_shutdown_seconds: int = Field(20, gt=0)
    """After SIGTERM, how long in-flight requests may take before their connections are closed."""
    http_keep_alive_seconds: float = Field(75.0, gt=0)
    """An idle keep-alive connection is closed after this; above a load balancer's own idle timeout (60 s
    on AWS ALB and nginx), so the balancer, not the service, closes idle connections."""
    http_header_timeout_seconds: float = Field(10.0, gt=0)
    """A connection must send a complete request head (line and headers) this soon after it opens, and each
    later request's head this soon after its first byte; otherwise it is closed (408 if it had begun one)."""
    body_read_timeout_seconds: float = Field(10.0, gt=0)
    """A request body must arrive in full within this many seconds of its head (408, connection closed)."""
    max_url_bytes: int = Field(8192, ge=256)
    """Longest request target (path and query string) read (414)."""
    max_header_bytes: int = Field(16384, ge=1024)
    """Most bytes of header fields (names and values) one request may send (431)."""
    max_concurrent_requests: int = Field(200, gt=0)
    """Requests one worker process handles at once; more are answered 503 `overloaded` at once.
    `/health` and `/live` are exempt, so liveness holds under overload."""

    @field_validator(
        "allowed_categories", "write_allowed_sources", "cors_origins", "statsd_constant_tags", mode="before"
    )
    @classmethod
    def _parse_csv(cls, value: object) -> object:
        return split_csv(value) if isinstance(value, str) else value

    @field_validator("kafka_security_protocol", "kafka_sasl_mechanism", mode="before")
    @classmethod
    def _upper(cls, value: object) -> object:
        return value.strip().upper() if isinstance(value, str) else value

    @field_validator("kafka_producer_config", mode="before")
    @classmethod
    def _parse_producer_config(cls, value: object) -> object:
        """A JSON object of scalar properties; the messages quote no part of the value, which may hold secrets."""
        if isinstance(value, str):
            try:
                value = json.loads(value) if value.strip() else {}
            except json.JSONDecodeError as exc:
                raise ValueError(
                    f"KAFKA_PRODUCER_CONFIG is not valid JSON ({exc.msg} at line {exc.lineno}, column {exc.colno}); "
                    'expected an object such as {"linger.ms": 20}'
                ) from None
        if not isinstance(value, dict):
            raise ValueError(
                f'KAFKA_PRODUCER_CONFIG must be a JSON object such as {{"linger.ms": 20}}, not a {type(value).__name__}'
            )
        nested = sorted(key for key, item in value.items() if not isinstance(item, str | int | float | bool))
        if nested:
            raise ValueError(f"KAFKA_PRODUCER_CONFIG values must be strings, numbers or booleans: {nested}")
        return value

    @field_validator("statsd_constant_tags")
    @classmethod
    def _check_constant_tags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for tag in value:
            key, _, tag_value = tag.partition(":")
            if not (_TAG_KEY.fullmatch(key) and _TAG_VALUE.fullmatch(tag_value)):
                raise ValueError(f"{tag!r} is not key:value (a letter first; letters, digits and _ . / - in each part)")
        return value

    @field_validator("dd_env", "dd_service", "dd_version")
    @classmethod
    def _check_tag_value(cls, value: str) -> str:
        if value and not _TAG_VALUE.fullmatch(value):
            raise ValueError(f"{value!r} cannot be a tag value: letters, digits and _ . / - only")
        return value

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
        if self.store_backend == StoreBackend.DYNAMODB and self.max_json_depth > DYNAMODB_MAX_VALUE_DEPTH:
            raise ValueError(
                f"MAX_JSON_DEPTH may be at most {DYNAMODB_MAX_VALUE_DEPTH} on DynamoDB (32 nesting levels, "
                "two of them features.data)"
            )
        if self.kafka_broker_url and not self.schema_registry:
            raise ValueError("SCHEMA_REGISTRY is required when KAFKA_BROKER_URL is set")
        if self.outbox_lease_seconds * 1000 <= self.kafka_message_timeout_ms:
            raise ValueError(
                "OUTBOX_LEASE_SECONDS must exceed KAFKA_MESSAGE_TIMEOUT_MS, or another replica "
                "could claim events still being delivered"
            )
        if self.environment == Environment.PRODUCTION:
            problems = [problem for problem, found in PRODUCTION_REFUSALS if found(self)]
            if problems:
                raise ValueError("unsafe settings for ENVIRONMENT=production:\n- " + "\n- ".join(problems))
        return self

    @model_validator(mode="after")
    def _check_kafka_security(self) -> "Settings":
        """Refuse combinations librdkafka would ignore or only fail on at the first publish; every
        problem is named in one error."""
        problems = [*kafka_connection_problems(self), *producer_config_problems(self.kafka_producer_config)]
        if self.schema_auto_register and self.schema_use_latest_version:
            problems.append("SCHEMA_USE_LATEST_VERSION=true requires SCHEMA_AUTO_REGISTER=false")
        user_info = self.schema_registry_basic_auth_user_info.get_secret_value()
        if user_info and ":" not in user_info:
            problems.append("SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO must be <key>:<secret>")
        if user_info and "@" in self.schema_registry.partition("://")[2].partition("/")[0]:
            problems.append(
                "SCHEMA_REGISTRY carries credentials and SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO is set: use one"
            )
        if problems:
            raise ValueError("invalid Kafka settings:\n- " + "\n- ".join(problems))
        return self

    @model_validator(mode="after")
    def _require_api_keys(self) -> "Settings":
        """A self-declared `source` is not access control: outside development, API keys are mandatory."""
        if self.environment != Environment.DEVELOPMENT and not self.auth_enabled:
            raise ValueError(
                f"ENVIRONMENT={self.environment.value} requires AUTH_ENABLED=true and API_KEYS_FILE "
                "(create keys with `python -m core.auth new-key`; see docs/security.md)"
            )
        if self.auth_enabled and not self.api_keys_file:
            raise ValueError("AUTH_ENABLED=true requires API_KEYS_FILE, the file of hashed API keys")
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
    def max_batch_write_body_bytes(self) -> int:
        """The bulk write's body limit: it scales with MAX_BATCH_WRITE_ENTITIES."""
        return max(self.max_body_bytes, self.max_batch_write_entities * BATCH_BODY_BYTES_PER_ENTITY)

    @property
    def allowed_origins(self) -> tuple[str, ...]:
        if self.cors_origins:
            return self.cors_origins
        return ("*",) if self.environment == Environment.DEVELOPMENT else ()

    @property
    def log_as_json(self) -> bool:
        if self.log_format:
            return self.log_format == "json"
        return self.environment != Environment.DEVELOPMENT

    @property
    def statsd_tags(self) -> dict[str, str]:
        """Tags on every metric: `STATSD_CONSTANT_TAGS`, then `env`, `service` and `version` from `DD_ENV`,
        `DD_SERVICE` and `DD_VERSION` where set and not already named there."""
        tags = dict(tag.split(":", 1) for tag in self.statsd_constant_tags)
        for key, value in (("env", self.dd_env), ("service", self.dd_service), ("version", self.dd_version)):
            if value:
                tags.setdefault(key, value)
        return tags

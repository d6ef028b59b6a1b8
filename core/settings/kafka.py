"""Kafka settings: the broker, the Schema Registry, the producer's security and properties, and the outbox
relay that feeds them; which librdkafka properties a named setting owns, which the service fixes, and the
combinations refused at start-up. How a producer is configured from them is the events component's job."""

import json
from collections.abc import Mapping
from typing import Annotated, Literal, Self

from pydantic import BaseModel, Field, SecretStr, field_validator, model_validator
from pydantic_settings import NoDecode

SASL_MECHANISMS = ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "AWS_MSK_IAM")
KafkaSaslMechanism = Literal["", "PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512", "OAUTHBEARER", "AWS_MSK_IAM"]
KafkaPartitioner = Literal[
    "murmur2_random", "murmur2", "consistent_random", "consistent", "fnv1a_random", "fnv1a", "random"
]
ProducerProperty = str | int | float | bool

KAFKA_PROPERTIES_OF_SETTINGS: dict[str, str] = {
    "bootstrap.servers": "KAFKA_BROKER_URL",
    "metadata.broker.list": "KAFKA_BROKER_URL",
    "message.timeout.ms": "KAFKA_MESSAGE_TIMEOUT_MS",
    "delivery.timeout.ms": "KAFKA_MESSAGE_TIMEOUT_MS",
    "socket.timeout.ms": "KAFKA_SOCKET_TIMEOUT_MS",
    "security.protocol": "KAFKA_SECURITY_PROTOCOL",
    "sasl.mechanism": "KAFKA_SASL_MECHANISM",
    "sasl.mechanisms": "KAFKA_SASL_MECHANISM",
    "sasl.username": "KAFKA_SASL_USERNAME",
    "sasl.password": "KAFKA_SASL_PASSWORD",
    "ssl.ca.location": "KAFKA_SSL_CA_LOCATION",
    "ssl.certificate.location": "KAFKA_SSL_CERTIFICATE_LOCATION",
    "ssl.key.location": "KAFKA_SSL_KEY_LOCATION",
    "ssl.key.password": "KAFKA_SSL_KEY_PASSWORD",
    "partitioner": "KAFKA_PARTITIONER",
}
"""librdkafka properties that a named setting owns: KAFKA_PRODUCER_CONFIG may not set them, so each
property has exactly one source."""
KAFKA_FIXED_PROPERTIES: dict[str, str] = {
    "acks": "fixed at all: an event leaves the outbox once Kafka acknowledged it, so every in-sync replica must have it",
    "request.required.acks": "fixed at all: an event leaves the outbox once Kafka acknowledged it",
    "enable.idempotence": "always on: retries must neither duplicate nor reorder one entity's events",
    "transactional.id": "the producer is idempotent, not transactional",
    "key.serializer": "set by the service",
    "value.serializer": "set by the service",
    "error_cb": "set by the service",
    "oauth_cb": "set by the service (KAFKA_SASL_MECHANISM=AWS_MSK_IAM)",
    "logger": "set by the service",
}
"""librdkafka properties the delivery guarantee or the service itself depends on, and why."""


def kafka_connection_problems(settings: "KafkaSettings") -> list[str]:
    """What librdkafka would ignore or only fail on at the first publish, in the connection settings."""
    protocol, mechanism = settings.kafka_security_protocol, settings.kafka_sasl_mechanism
    password = settings.kafka_sasl_password.get_secret_value()
    problems = []
    if protocol.startswith("SASL_") and not mechanism:
        problems.append(
            f"KAFKA_SECURITY_PROTOCOL={protocol} requires KAFKA_SASL_MECHANISM ({', '.join(SASL_MECHANISMS)})"
        )
    if mechanism and not protocol.startswith("SASL_"):
        problems.append(f"KAFKA_SASL_MECHANISM={mechanism} requires KAFKA_SECURITY_PROTOCOL=SASL_SSL or SASL_PLAINTEXT")
    if mechanism in ("PLAIN", "SCRAM-SHA-256", "SCRAM-SHA-512") and not (settings.kafka_sasl_username and password):
        problems.append(f"KAFKA_SASL_MECHANISM={mechanism} requires KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD")
    if mechanism in ("OAUTHBEARER", "AWS_MSK_IAM") and (settings.kafka_sasl_username or password):
        problems.append(
            f"KAFKA_SASL_MECHANISM={mechanism} uses tokens: leave KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD empty"
        )
    if mechanism == "AWS_MSK_IAM" and protocol != "SASL_SSL":
        problems.append(
            "KAFKA_SASL_MECHANISM=AWS_MSK_IAM requires KAFKA_SECURITY_PROTOCOL=SASL_SSL (MSK's IAM listener)"
        )
    ssl_settings = {
        "KAFKA_SSL_CA_LOCATION": settings.kafka_ssl_ca_location,
        "KAFKA_SSL_CERTIFICATE_LOCATION": settings.kafka_ssl_certificate_location,
        "KAFKA_SSL_KEY_LOCATION": settings.kafka_ssl_key_location,
        "KAFKA_SSL_KEY_PASSWORD": settings.kafka_ssl_key_password.get_secret_value(),
    }
    if not protocol.endswith("SSL") and any(ssl_settings.values()):
        named = ", ".join(name for name, value in ssl_settings.items() if value)
        problems.append(f"{named} apply to KAFKA_SECURITY_PROTOCOL=SSL or SASL_SSL only, not {protocol}")
    if bool(settings.kafka_ssl_certificate_location) != bool(settings.kafka_ssl_key_location):
        problems.append("KAFKA_SSL_CERTIFICATE_LOCATION and KAFKA_SSL_KEY_LOCATION go together (mutual TLS)")
    if ssl_settings["KAFKA_SSL_KEY_PASSWORD"] and not settings.kafka_ssl_key_location:
        problems.append("KAFKA_SSL_KEY_PASSWORD requires KAFKA_SSL_KEY_LOCATION")
    return problems


def producer_config_problems(producer_config: Mapping[str, object]) -> list[str]:
    """KAFKA_PRODUCER_CONFIG keys that a named setting owns or that the delivery guarantee fixes."""
    problems = []
    for key in sorted(producer_config):
        if key in KAFKA_PROPERTIES_OF_SETTINGS:
            problems.append(f"KAFKA_PRODUCER_CONFIG sets {key}: use {KAFKA_PROPERTIES_OF_SETTINGS[key]} instead")
        elif key in KAFKA_FIXED_PROPERTIES:
            problems.append(f"KAFKA_PRODUCER_CONFIG may not set {key}: {KAFKA_FIXED_PROPERTIES[key]}")
    return problems


class KafkaSettings(BaseModel):
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

    @model_validator(mode="after")
    def _check_delivery(self) -> Self:
        if self.kafka_broker_url and not self.schema_registry:
            raise ValueError("SCHEMA_REGISTRY is required when KAFKA_BROKER_URL is set")
        if self.outbox_lease_seconds * 1000 <= self.kafka_message_timeout_ms:
            raise ValueError(
                "OUTBOX_LEASE_SECONDS must exceed KAFKA_MESSAGE_TIMEOUT_MS, or another replica "
                "could claim events still being delivered"
            )
        return self

    @model_validator(mode="after")
    def _check_kafka_security(self) -> Self:
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

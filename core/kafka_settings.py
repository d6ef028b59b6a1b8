"""The Kafka producer's settings vocabulary and the checks `Settings` runs on it: which librdkafka
properties a named setting owns, which the service fixes, and the combinations refused at start-up."""

from collections.abc import Mapping
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from core.settings import Settings

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


def kafka_connection_problems(settings: "Settings") -> list[str]:
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

"""How the Kafka producer and the Schema Registry client are configured from the settings: TLS,
SASL (Amazon MSK IAM included), the partitioner and the pass-through producer properties; and the
secrets among them, which never reach a log line, `/ready` or an error message.

Precedence of producer properties: the service's defaults (client id, snappy), then
`KAFKA_PRODUCER_CONFIG`, then what the named settings and the delivery guarantee fix. The settings
refuse a pass-through property that a named setting owns or the guarantee depends on, so the last
step never silently overrides anything.
"""

import logging
import re
from collections.abc import Callable, Iterable
from typing import Any
from urllib.parse import urlsplit

from confluent_kafka import KafkaException, Producer
from confluent_kafka.schema_registry import topic_subject_name_strategy

from core.exceptions import ConfigurationError
from core.settings import Settings

logger = logging.getLogger("feature_store.kafka")

CLIENT_ID = "feature-store-api"
MSK_IAM = "AWS_MSK_IAM"
SECRET_PROPERTY = re.compile(r"password|secret|credential|key\.pem", re.IGNORECASE)
"""Pass-through property names whose values are treated as secrets."""
REDACTED = "[redacted]"

TokenCallback = Callable[[str], tuple[str, float]]


def msk_iam_token_callback(region: str, on_failure: Callable[[str], object] | None = None) -> TokenCallback:
    """librdkafka's OAUTHBEARER token callback for Amazon MSK IAM: a token signed by AWS's signer
    with the default credential chain (environment, profile, web identity, ECS or EC2 role) for
    `region`, and its expiry in epoch seconds. librdkafka calls it again before the token expires."""

    def token(_oauthbearer_config: str) -> tuple[str, float]:
        from aws_msk_iam_sasl_signer import MSKAuthTokenProvider

        try:
            auth_token, expiry_ms = MSKAuthTokenProvider.generate_auth_token(region)
        except Exception as exc:
            message = f"AWS MSK IAM token for {region} could not be signed: {type(exc).__name__}: {exc}"
            logger.warning("kafka authentication token failed", extra={"error": message})
            if on_failure is not None:
                on_failure(message)
            raise
        return auth_token, expiry_ms / 1000

    return token


def security_config(settings: Settings, on_token_failure: Callable[[str], object] | None = None) -> dict[str, Any]:
    """librdkafka's security properties for the named settings (only those that are set)."""
    config: dict[str, Any] = {"security.protocol": settings.kafka_security_protocol}
    mechanism = settings.kafka_sasl_mechanism
    if mechanism == MSK_IAM:
        config["sasl.mechanism"] = "OAUTHBEARER"
        config["oauth_cb"] = msk_iam_token_callback(settings.aws_region, on_token_failure)
    elif mechanism:
        config["sasl.mechanism"] = mechanism
    optional = {
        "sasl.username": settings.kafka_sasl_username,
        "sasl.password": settings.kafka_sasl_password.get_secret_value(),
        "ssl.ca.location": settings.kafka_ssl_ca_location,
        "ssl.certificate.location": settings.kafka_ssl_certificate_location,
        "ssl.key.location": settings.kafka_ssl_key_location,
        "ssl.key.password": settings.kafka_ssl_key_password.get_secret_value(),
    }
    return config | {key: value for key, value in optional.items() if value}


def producer_config(settings: Settings, on_token_failure: Callable[[str], object] | None = None) -> dict[str, Any]:
    """The producer's librdkafka properties, serializers and callbacks aside."""
    return {
        "client.id": CLIENT_ID,
        "compression.type": "snappy",
        **settings.kafka_producer_config,
        "bootstrap.servers": settings.kafka_broker_url,
        "acks": "all",
        "enable.idempotence": True,
        "message.timeout.ms": settings.kafka_message_timeout_ms,
        "socket.timeout.ms": settings.kafka_socket_timeout_ms,
        "partitioner": settings.kafka_partitioner,
        **security_config(settings, on_token_failure),
    }


def check_producer_config(settings: Settings) -> None:
    """Let librdkafka judge the configuration at start-up, without connecting anywhere: an unknown
    pass-through property, a value it refuses or a certificate file it cannot read stops the service
    now rather than failing every publish later."""
    config = producer_config(settings)
    config.pop("bootstrap.servers")
    config.pop("oauth_cb", None)  # the token is fetched on first use, not at start-up
    reason = _refusal(config)
    if reason is None:
        return
    redact = redactor(settings)
    # Each property the user wrote judged on its own, so the line names it as written (librdkafka names an
    # alias by its own name: `linger.ms` as `queue.buffering.max.ms`).
    written = settings.kafka_producer_config
    base = {name: value for name, value in config.items() if name not in written}
    problems = []
    for name, value in written.items():
        refused = _refusal({**base, name: value})
        if refused is not None:
            refused = QUOTED_PROPERTY.sub(f'configuration property "{name}"', refused)
            problems.append(
                f"KAFKA_PRODUCER_CONFIG: property {name!r} = {value!r} refused by librdkafka: {refused}; "
                "accepted properties and values: librdkafka's CONFIGURATION.md"
            )
    if not problems:
        problems = [f"Kafka producer configuration (KAFKA_* settings) refused by librdkafka: {reason}"]
    raise ConfigurationError("\n".join(redact(problem) for problem in problems))


QUOTED_PROPERTY = re.compile(r'configuration property "[^"]+"')


def _refusal(config: dict[str, Any]) -> str | None:
    """librdkafka's words refusing `config`, None when it accepts it (no connection is made)."""
    try:
        Producer({**config, "log_level": 0})
    except (KafkaException, ValueError, TypeError) as exc:
        return exc.args[0].str() if isinstance(exc, KafkaException) else str(exc)
    return None


def registry_config(settings: Settings) -> dict[str, Any]:
    config: dict[str, Any] = {"url": settings.schema_registry}
    if settings.schema_registry.startswith("mock://"):
        return config
    # No retries of its own: a failed registration fails the batch, which the outbox retries.
    config |= {"timeout": settings.kafka_socket_timeout_ms / 1000, "max.retries": 0}
    user_info = settings.schema_registry_basic_auth_user_info.get_secret_value()
    if user_info:
        config |= {"basic.auth.credentials.source": "USER_INFO", "basic.auth.user.info": user_info}
    if settings.schema_registry_ssl_ca_location:
        config["ssl.ca.location"] = settings.schema_registry_ssl_ca_location
    return config


def serializer_config(settings: Settings) -> dict[str, Any]:
    # The subject strategy is named because 2.16's default (associated names) asks the broker for
    # its cluster id inside produce(), blocking it through an outage.
    return {
        "subject.name.strategy": topic_subject_name_strategy,
        "auto.register.schemas": settings.schema_auto_register,
        "use.latest.version": settings.schema_use_latest_version,
    }


def secrets(settings: Settings) -> list[str]:
    """Every secret value the Kafka and registry clients are given."""
    found = [
        settings.kafka_sasl_password.get_secret_value(),
        settings.kafka_ssl_key_password.get_secret_value(),
        urlsplit(settings.schema_registry).password or "",
        *(str(value) for key, value in settings.kafka_producer_config.items() if SECRET_PROPERTY.search(key)),
    ]
    user_info = settings.schema_registry_basic_auth_user_info.get_secret_value()
    if user_info:
        found += [user_info, user_info.partition(":")[2]]
    # Longest first, so a secret containing another is replaced whole.
    return sorted({value for value in found if value}, key=len, reverse=True)


def redactor(settings: Settings) -> Callable[[str], str]:
    return make_redactor(secrets(settings))


def make_redactor(values: Iterable[str]) -> Callable[[str], str]:
    values = list(values)

    def redact(text: str) -> str:
        for value in values:
            text = text.replace(value, REDACTED)
        return text

    return redact

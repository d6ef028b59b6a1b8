"""The producer's and the registry client's configuration from the settings: what each setting
becomes, what is refused at start-up and why, the Amazon MSK IAM token callback, and secrets that
never appear in a repr, an error message or a log line."""

import asyncio
import base64
import time
from pathlib import Path
from urllib.parse import parse_qs, urlsplit

import pytest
from aws_msk_iam_sasl_signer import MSKAuthTokenProvider
from pydantic import ValidationError

from components.events.events import load_event_schema
from components.events.kafka import KafkaSink
from components.events.kafka_config import (
    check_producer_config,
    msk_iam_token_callback,
    producer_config,
    redactor,
    registry_config,
    security_config,
)
from core.exceptions import ConfigurationError
from core.settings import Settings
from core.settings.kafka import KAFKA_FIXED_PROPERTIES, KAFKA_PROPERTIES_OF_SETTINGS
from devservers import free_port
from main import create_app
from tests.conftest import SettingsFactory

pytestmark = pytest.mark.backends("sqlite")

SECRET = "s3cret-Wx7pQ2"
KAFKA = {"kafka_broker_url": "127.0.0.1:9", "schema_registry": "mock://config"}
SCRAM = {
    "kafka_security_protocol": "SASL_SSL",
    "kafka_sasl_mechanism": "SCRAM-SHA-512",
    "kafka_sasl_username": "feature-store",
    "kafka_sasl_password": SECRET,
}


def refusal(make_settings: SettingsFactory, **values: object) -> str:
    with pytest.raises(ValidationError) as caught:
        make_settings(**values)
    return str(caught.value)


def test_by_default_the_producer_is_plaintext_idempotent_and_partitions_like_java(
    make_settings: SettingsFactory,
) -> None:
    config = producer_config(make_settings(**KAFKA))
    assert {key: config[key] for key in ("acks", "enable.idempotence", "partitioner", "security.protocol")} == {
        "acks": "all",
        "enable.idempotence": True,
        "partitioner": "murmur2_random",
        "security.protocol": "PLAINTEXT",
    }
    assert not any(key.startswith(("sasl.", "ssl.")) for key in config)


def test_the_security_settings_become_librdkafka_properties(make_settings: SettingsFactory, tmp_path: Path) -> None:
    settings = make_settings(
        **KAFKA,
        **SCRAM,
        kafka_ssl_ca_location="/etc/ca.pem",
        kafka_ssl_certificate_location="/etc/client.pem",
        kafka_ssl_key_location="/etc/client.key",
        kafka_ssl_key_password="key-secret",
    )
    assert security_config(settings) == {
        "security.protocol": "SASL_SSL",
        "sasl.mechanism": "SCRAM-SHA-512",
        "sasl.username": "feature-store",
        "sasl.password": SECRET,
        "ssl.ca.location": "/etc/ca.pem",
        "ssl.certificate.location": "/etc/client.pem",
        "ssl.key.location": "/etc/client.key",
        "ssl.key.password": "key-secret",
    }


def test_every_property_a_setting_produces_is_one_the_pass_through_may_not_set(
    make_settings: SettingsFactory,
) -> None:
    everything = make_settings(
        **KAFKA,
        **SCRAM,
        kafka_ssl_ca_location="/ca",
        kafka_ssl_certificate_location="/c",
        kafka_ssl_key_location="/k",
        kafka_ssl_key_password="p",
    )
    service_defaults = {"client.id", "compression.type"}
    owned = set(producer_config(everything)) - service_defaults
    assert sorted(owned - set(KAFKA_PROPERTIES_OF_SETTINGS) - set(KAFKA_FIXED_PROPERTIES)) == []


def test_the_pass_through_adds_properties_and_may_change_the_services_defaults(make_settings: SettingsFactory) -> None:
    settings = make_settings(**KAFKA, kafka_producer_config='{"linger.ms": 20, "compression.type": "zstd"}')
    config = producer_config(settings)
    assert (config["linger.ms"], config["compression.type"], config["acks"]) == (20, "zstd", "all")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ('{"linger.ms": 20', "KAFKA_PRODUCER_CONFIG is not valid JSON"),
        ('["linger.ms", 20]', "KAFKA_PRODUCER_CONFIG must be a JSON object"),
        ('{"linger.ms": {"value": 20}}', "values must be strings, numbers or booleans: ['linger.ms']"),
        ('{"acks": "1"}', "may not set acks: fixed at all"),
        ('{"enable.idempotence": false}', "may not set enable.idempotence"),
        ('{"security.protocol": "SSL"}', "sets security.protocol: use KAFKA_SECURITY_PROTOCOL instead"),
        ('{"partitioner": "random"}', "use KAFKA_PARTITIONER instead"),
        ('{"message.timeout.ms": 1}', "use KAFKA_MESSAGE_TIMEOUT_MS instead"),
    ],
)
def test_a_bad_pass_through_is_refused_with_a_clear_message(
    make_settings: SettingsFactory, value: str, expected: str
) -> None:
    assert expected in refusal(make_settings, kafka_producer_config=value)


def test_a_refused_pass_through_never_echoes_its_secrets(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("KAFKA_PRODUCER_CONFIG", f'{{"sasl.oauthbearer.client.secret": "{SECRET}", "acks": 0')
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None)
    assert "not valid JSON" in str(caught.value) and SECRET not in str(caught.value)


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"kafka_security_protocol": "SASL_SSL"}, "KAFKA_SECURITY_PROTOCOL=SASL_SSL requires KAFKA_SASL_MECHANISM"),
        ({"kafka_sasl_mechanism": "PLAIN"}, "KAFKA_SASL_MECHANISM=PLAIN requires KAFKA_SECURITY_PROTOCOL=SASL_SSL"),
        (
            {"kafka_security_protocol": "sasl_ssl", "kafka_sasl_mechanism": "scram-sha-256"},
            "requires KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD",
        ),
        (
            {"kafka_security_protocol": "SASL_PLAINTEXT", "kafka_sasl_mechanism": "AWS_MSK_IAM"},
            "AWS_MSK_IAM requires KAFKA_SECURITY_PROTOCOL=SASL_SSL",
        ),
        (
            {**SCRAM, "kafka_sasl_mechanism": "OAUTHBEARER"},
            "OAUTHBEARER uses tokens: leave KAFKA_SASL_USERNAME and KAFKA_SASL_PASSWORD empty",
        ),
        ({"kafka_ssl_ca_location": "/ca.pem"}, "KAFKA_SSL_CA_LOCATION apply to KAFKA_SECURITY_PROTOCOL=SSL"),
        (
            {"kafka_security_protocol": "SSL", "kafka_ssl_certificate_location": "/c.pem"},
            "KAFKA_SSL_CERTIFICATE_LOCATION and KAFKA_SSL_KEY_LOCATION go together",
        ),
        ({"kafka_security_protocol": "TLS"}, "kafka_security_protocol"),
        ({"kafka_sasl_mechanism": "GSSAPI"}, "kafka_sasl_mechanism"),
        ({"kafka_partitioner": "round_robin"}, "kafka_partitioner"),
        ({"schema_use_latest_version": True}, "SCHEMA_USE_LATEST_VERSION=true requires SCHEMA_AUTO_REGISTER=false"),
        ({"schema_registry_basic_auth_user_info": "no-colon"}, "must be <key>:<secret>"),
        (
            {"schema_registry": "https://u:p@registry:8081", "schema_registry_basic_auth_user_info": "k:s"},
            "SCHEMA_REGISTRY carries credentials and SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO is set",
        ),
    ],
)
def test_inconsistent_security_settings_are_refused(
    make_settings: SettingsFactory, values: dict[str, object], expected: str
) -> None:
    assert expected in refusal(make_settings, **values)


def test_secrets_stay_out_of_repr_and_validation_errors(make_settings: SettingsFactory) -> None:
    settings = make_settings(
        **KAFKA,
        **SCRAM,
        kafka_producer_config=f'{{"sasl.oauthbearer.client.secret": "{SECRET}"}}',
        schema_registry_basic_auth_user_info=f"key:{SECRET}",
    )
    assert SECRET not in repr(settings) and SECRET not in str(settings)
    refused = refusal(make_settings, **(SCRAM | {"kafka_sasl_username": ""}), kafka_producer_config='{"acks": 0}')
    assert "requires KAFKA_SASL_USERNAME" in refused and SECRET not in refused


def test_the_redactor_removes_every_configured_secret(make_settings: SettingsFactory) -> None:
    settings = make_settings(
        kafka_broker_url="127.0.0.1:9",
        schema_registry="https://user:url-pass@registry:8081",
        kafka_security_protocol="SSL",
        kafka_ssl_key_location="/k",
        kafka_ssl_certificate_location="/c",
        kafka_ssl_key_password="key-pass",
        kafka_producer_config='{"ssl.keystore.password": "store-pass", "linger.ms": 5}',
    )
    redact = redactor(settings)
    assert redact("url-pass key-pass store-pass 5") == "[redacted] [redacted] [redacted] 5"


def test_the_registry_client_gets_credentials_and_ca_as_settings(make_settings: SettingsFactory) -> None:
    settings = make_settings(
        kafka_broker_url="127.0.0.1:9",
        schema_registry="https://registry:8081",
        schema_registry_basic_auth_user_info=f"key:{SECRET}",
        schema_registry_ssl_ca_location="/etc/registry-ca.pem",
    )
    assert registry_config(settings) == {
        "url": "https://registry:8081",
        "timeout": 10.0,
        "max.retries": 0,
        "basic.auth.credentials.source": "USER_INFO",
        "basic.auth.user.info": f"key:{SECRET}",
        "ssl.ca.location": "/etc/registry-ca.pem",
    }


@pytest.mark.parametrize(
    ("values", "expected"),
    [
        ({"kafka_producer_config": '{"linger.milliseconds": 5}'}, "KAFKA_PRODUCER_CONFIG: property 'linger.milliseconds' = 5 refused by librdkafka: No such configuration property: \"linger.milliseconds\""),
        ({"kafka_producer_config": '{"batch.num.messages": "many"}'}, "KAFKA_PRODUCER_CONFIG: property 'batch.num.messages' = 'many' refused by librdkafka: Invalid value for configuration property \"batch.num.messages\""),
        ({"kafka_producer_config": '{"linger.ms": "x"}'}, "KAFKA_PRODUCER_CONFIG: property 'linger.ms' = 'x' refused by librdkafka: Invalid value for configuration property \"linger.ms\""),
        ({"kafka_security_protocol": "SSL", "kafka_ssl_ca_location": "/nonexistent/ca.pem"}, "(KAFKA_* settings) refused by librdkafka"),
    ],
)  # fmt: skip
def test_what_librdkafka_refuses_stops_the_start(
    make_settings: SettingsFactory, values: dict[str, object], expected: str
) -> None:
    """A pass-through property is named as the user wrote it (librdkafka names `linger.ms` by its alias)."""
    settings = make_settings(**KAFKA, **values)
    with pytest.raises(ConfigurationError) as caught:
        create_app(settings)
    assert expected in caught.value.message and "queue.buffering.max.ms" not in caught.value.message


def test_each_refused_pass_through_property_is_a_line_of_its_own(make_settings: SettingsFactory) -> None:
    settings = make_settings(**KAFKA, kafka_producer_config='{"linger.ms": "x", "bogus.prop": 1, "batch.size": 100}')
    with pytest.raises(ConfigurationError) as caught:
        check_producer_config(settings)
    lines = caught.value.message.splitlines()
    assert [line.split("'")[1] for line in lines] == ["linger.ms", "bogus.prop"]


def test_a_valid_configuration_passes_the_start_up_check(make_settings: SettingsFactory) -> None:
    check_producer_config(make_settings(**KAFKA, **SCRAM, kafka_producer_config='{"linger.ms": 20}'))


class FakeSigner:
    def __init__(self, failure: Exception | None = None) -> None:
        self.regions: list[str] = []
        self.failure = failure

    def __call__(self, region: str) -> tuple[str, int]:
        self.regions.append(region)
        if self.failure is not None:
            raise self.failure
        return "signed-token", self.expiry_ms

    @property
    def expiry_ms(self) -> int:
        """Like AWS's tokens: valid for 15 minutes, as epoch milliseconds."""
        return (int(time.time()) + 900) * 1000


def test_msk_iam_signs_tokens_for_the_region_and_reports_expiry_in_seconds(monkeypatch: pytest.MonkeyPatch) -> None:
    signer = FakeSigner()
    monkeypatch.setattr(MSKAuthTokenProvider, "generate_auth_token", signer)
    token, expiry = msk_iam_token_callback("eu-west-1")("")
    assert token == "signed-token" and abs(expiry - (time.time() + 900)) < 2
    assert signer.regions == ["eu-west-1"]


def test_a_token_that_cannot_be_signed_is_reported_and_raised(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(MSKAuthTokenProvider, "generate_auth_token", FakeSigner(RuntimeError("no credentials")))
    reported: list[str] = []
    with pytest.raises(RuntimeError):
        msk_iam_token_callback("eu-west-1", reported.append)("")
    assert reported == ["AWS MSK IAM token for eu-west-1 could not be signed: RuntimeError: no credentials"]


def test_the_real_signer_makes_an_msk_connect_token_from_the_default_credentials(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """AWS's library signs offline: a base64url presigned URL for kafka-cluster:Connect in the region."""
    for name, value in {
        "AWS_ACCESS_KEY_ID": "AKIDEXAMPLE",
        "AWS_SECRET_ACCESS_KEY": "secret-example",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }.items():
        monkeypatch.setenv(name, value)
    monkeypatch.delenv("AWS_SESSION_TOKEN", raising=False)
    monkeypatch.delenv("AWS_PROFILE", raising=False)
    token, expiry = msk_iam_token_callback("eu-west-1")("")
    url = urlsplit(base64.urlsafe_b64decode(token + "=" * (-len(token) % 4)).decode())
    query = parse_qs(url.query)
    assert (url.hostname, query["Action"]) == ("kafka.eu-west-1.amazonaws.com", ["kafka-cluster:Connect"])
    assert (
        query["X-Amz-Credential"][0].startswith("AKIDEXAMPLE/")
        and "/eu-west-1/kafka-cluster/" in query["X-Amz-Credential"][0]
    )
    assert time.time() < expiry <= time.time() + 3600


def test_the_producer_takes_its_msk_iam_tokens_from_the_signer_for_aws_region(
    make_settings: SettingsFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    signer = FakeSigner()
    monkeypatch.setattr(MSKAuthTokenProvider, "generate_auth_token", signer)
    settings = make_settings(
        kafka_broker_url=f"127.0.0.1:{free_port()}",
        schema_registry="mock://msk",
        kafka_security_protocol="SASL_SSL",
        kafka_sasl_mechanism="AWS_MSK_IAM",
        aws_region="ap-southeast-2",
    )
    config = producer_config(settings)
    assert (config["sasl.mechanism"], callable(config["oauth_cb"])) == ("OAUTHBEARER", True)
    sink = KafkaSink(settings, load_event_schema())
    try:
        assert asyncio.run(sink.initialise())[0].startswith("created Kafka producer")
        assert signer.regions[:1] == ["ap-southeast-2"]
        assert sink.state()["sasl_mechanism"] == "AWS_MSK_IAM"
    finally:
        asyncio.run(sink.close(0))

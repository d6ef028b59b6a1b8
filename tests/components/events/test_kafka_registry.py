"""A governed Schema Registry, where a pipeline registers the schema and producers may not
(`SCHEMA_AUTO_REGISTER=false`): a subject that is missing is said plainly in `/ready` and the log,
writes go on, and the events wait in the outbox until the subject exists. confluent-kafka's
in-process registry stands in for the real one; the broker is the session's Tansu."""

import logging

import pytest
from confluent_kafka.schema_registry import Schema
from confluent_kafka.schema_registry.error import SchemaRegistryError
from pydantic import SecretStr

from components.events.events import SCHEMA_PATH
from components.events.kafka import explain_registry_error
from components.events.kafka_config import registry_config, serializer_config
from core.settings import Settings
from tests.components.events.kafka_helpers import consume, wait_for, write
from tests.conftest import KafkaBroker, SettingsFactory

pytestmark = pytest.mark.backends("sqlite")


@pytest.mark.parametrize("use_latest_version", [False, True])
def test_a_missing_subject_is_named_in_ready_and_the_log_and_the_events_wait(
    make_client, kafka_settings, kafka_topic: str, caplog: pytest.LogCaptureFixture, use_latest_version: bool
) -> None:
    caplog.set_level(logging.WARNING, logger="feature_store.kafka")
    client = make_client(**kafka_settings, schema_auto_register=False, schema_use_latest_version=use_latest_version)
    write(client, "user-1", {"user_features": {"a": 1}})
    runtime = client.app.state.runtime
    wait_for(lambda: runtime.relay.stats.failed >= 1)
    wait_for(lambda: client.get("/api/v1/ready").json()["checks"]["events"].get("pending") == 1)
    ready = client.get("/api/v1/ready")
    assert ready.status_code == 200
    events = ready.json()["checks"]["events"]
    subject = f"{kafka_topic}-value"
    expected = f"Schema Registry subject {subject} has "
    assert (events["ok"], events["subject"], events["schema_auto_register"]) == (False, subject, False)
    assert events["last_error"].startswith(expected), events["last_error"]
    assert f"SCHEMA_AUTO_REGISTER=false: register schemas/feature_trigger.avsc under {subject}" in events["last_error"]
    logged = [record for record in caplog.records if record.getMessage() == "schema registry refused the event schema"]
    assert len(logged) == 1 and logged[0].error == events["last_error"]  # type: ignore[attr-defined]


def test_once_the_pipeline_registers_the_subject_the_kept_events_go_out(
    make_client, kafka_settings, kafka_broker: KafkaBroker, kafka_topic: str
) -> None:
    client = make_client(**kafka_settings, schema_auto_register=False, schema_use_latest_version=True)
    write(client, "user-1", {"user_features": {"a": 1}, "credit_features": {"b": 2}})
    runtime = client.app.state.runtime
    wait_for(lambda: runtime.relay.stats.failed >= 2)
    registered = runtime.sink.registry.register_schema(f"{kafka_topic}-value", Schema(SCHEMA_PATH.read_text(), "AVRO"))
    received = consume(kafka_broker.bootstrap, kafka_topic, distinct=2)
    assert {item.schema_id for item in received} == {registered}
    wait_for(lambda: client.run(runtime.store.outbox_stats).pending == 0)
    assert client.get("/api/v1/ready").json()["checks"]["events"]["ok"] is True


def test_the_serializer_registers_only_when_allowed(make_settings: SettingsFactory) -> None:
    assert serializer_config(make_settings())["auto.register.schemas"] is True
    governed = serializer_config(make_settings(schema_auto_register=False, schema_use_latest_version=True))
    assert (governed["auto.register.schemas"], governed["use.latest.version"]) == (False, True)


@pytest.mark.parametrize(
    ("status", "code", "expected"),
    [
        (401, 40101, "Schema Registry refused the credentials: check SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO"),
        (409, 409, "incompatible with the versions registered there"),
        (500, 50001, "Schema Registry error for subject topic-value (registry: boom; HTTP 500, code 50001)"),
    ],
)
def test_other_registry_refusals_say_what_to_check(
    make_settings: SettingsFactory, status: int, code: int, expected: str
) -> None:
    message = explain_registry_error(SchemaRegistryError(status, code, "boom"), "topic-value", make_settings())
    assert expected in message


def test_the_registry_credentials_are_a_secret(make_settings: SettingsFactory) -> None:
    settings: Settings = make_settings(schema_registry_basic_auth_user_info="key:registry-secret")
    assert isinstance(settings.schema_registry_basic_auth_user_info, SecretStr)
    assert "registry-secret" not in repr(settings)
    assert registry_config(settings.model_copy(update={"schema_registry": "https://r:8081"}))[
        "basic.auth.user.info"
    ] == ("key:registry-secret")

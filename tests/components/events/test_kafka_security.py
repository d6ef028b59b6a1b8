"""Events over TLS and SASL against real brokers: Tansu behind Debian's stunnel4, which terminates
TLS with certificates from a CA made for the session (Tansu advertises the stunnel ports).

- TLS (server authentication): the event suite, writes to decoded events, and a CA that did not
  sign the broker's certificate failing clearly while writes go on and events wait in the outbox.
- Mutual TLS: a stunnel port that requires a client certificate signed by the session's CA.
- SASL/SCRAM over TLS: Tansu 0.6 with `--authentication` runs the SCRAM exchange, but no user can
  be created in it: `tansu user create` is refused (NotAuthenticated) by a broker that requires
  authentication; a broker started without it accepts the user but answers every SASL handshake
  with UNSUPPORTED_SASL_MECHANISM; and its storage engines (memory://, s3://) keep no SCRAM
  credentials, so a second broker with `--authentication` on shared storage knows no user either.
  Only the refusal of credentials is proven here, over both SCRAM mechanisms: it must be clear in
  `/ready`, writes go on, the events wait, and the password shows nowhere.
"""

import logging
import uuid
from collections.abc import Iterator
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from confluent_kafka.admin import AdminClient, NewTopic

from components.events.events import SCHEMA_PATH
from devservers import Stunnel, TestCertificates, free_port, start_tansu_on
from tests.components.events.kafka_helpers import consume, wait_for, write
from tests.conftest import SettingsFactory
from tests.schemas.test_evolution import HISTORY, avro_decode, reader_fields

pytestmark = pytest.mark.backends("sqlite")

SASL_PASSWORD = "never-shown-Zq8v3KpL"
FAILING_FAST = {"kafka_message_timeout_ms": 600, "shutdown_flush_seconds": 0.2}
"""For tests whose deliveries must fail: fail them soon, and do not linger over them at shutdown."""


@dataclass(frozen=True)
class SecuredKafka:
    certificates: TestCertificates
    tls: str
    """Bootstrap address of a broker behind TLS (server authentication only)."""
    mutual_tls: str
    """The same broker, through a port that requires a client certificate signed by the session's CA."""
    sasl_ssl: str
    """A broker requiring SASL authentication, behind TLS."""

    def tls_client(self) -> dict[str, str]:
        return {"security.protocol": "SSL", "ssl.ca.location": str(self.certificates.ca)}


@pytest.fixture(scope="session")
def secured_kafka(tmp_path_factory: pytest.TempPathFactory) -> Iterator[SecuredKafka]:
    directory = tmp_path_factory.mktemp("secured-kafka")
    certificates = TestCertificates(directory)
    with ExitStack() as stack:
        tls_port, sasl_port = free_port(), free_port()
        tls_broker, tls_target = start_tansu_on(directory, "tansu-tls", tls_port)
        stack.callback(tls_broker.stop)
        sasl_broker, sasl_target = start_tansu_on(directory, "tansu-sasl", sasl_port, "--authentication")
        stack.callback(sasl_broker.stop)
        stunnel = Stunnel(directory, certificates)
        stunnel.add("kafka-tls", tls_target, tls_port)
        mutual_port = stunnel.add("kafka-mutual-tls", tls_target, client_ca=certificates.ca)
        stunnel.add("kafka-sasl", sasl_target, sasl_port)
        stunnel.start()
        stack.callback(stunnel.stop)
        yield SecuredKafka(certificates, f"127.0.0.1:{tls_port}", f"127.0.0.1:{mutual_port}", f"127.0.0.1:{sasl_port}")


@pytest.fixture
def tls_topic(secured_kafka: SecuredKafka, kafka_topic_name: str) -> str:
    admin = AdminClient({"bootstrap.servers": secured_kafka.tls, **secured_kafka.tls_client()})
    admin.create_topics([NewTopic(kafka_topic_name, num_partitions=3, replication_factor=1)])[kafka_topic_name].result(
        timeout=10
    )
    return kafka_topic_name


@pytest.fixture
def kafka_topic_name() -> str:
    return f"features-{uuid.uuid4().hex[:12]}"


def event_settings(topic: str, **overrides: Any) -> dict[str, Any]:
    return {
        "schema_registry": f"mock://{topic}",
        "topic_name": topic,
        "kafka_message_timeout_ms": 1500,
        "kafka_socket_timeout_ms": 500,
        "outbox_max_backoff_seconds": 0.5,
        "outbox_gauge_seconds": 0.05,
        "shutdown_flush_seconds": 1,
        **overrides,
    }


def tls_settings(secured_kafka: SecuredKafka, topic: str, **overrides: Any) -> dict[str, Any]:
    tls = {
        "kafka_broker_url": secured_kafka.tls,
        "kafka_security_protocol": "SSL",
        "kafka_ssl_ca_location": str(secured_kafka.certificates.ca),
    }
    return event_settings(topic, **(tls | overrides))


def test_events_arrive_over_tls_and_decode_with_apache_avro(
    make_client, secured_kafka: SecuredKafka, tls_topic: str
) -> None:
    client = make_client(**tls_settings(secured_kafka, tls_topic))
    written = write(client, "user-1", {"user_features": {"age": 30}, "credit_features": {"score": 750}}, compute_id="j")

    received = consume(secured_kafka.tls, tls_topic, distinct=2, client=secured_kafka.tls_client())
    assert {item.event["resource_name"] for item in received} == {"user_features", "credit_features"}
    current = SCHEMA_PATH.read_text()
    for item in received:
        assert item.key == "bright_uid:user-1"
        assert (item.event["timestamp"], item.event["compute_id"]) == (written["timestamp"], "j")
        # Apache's reader reads what fastavro wrote, with the current schema and every released one
        # (each release reads the fields it knows).
        for reader in [current, *(path.read_text() for path in HISTORY)]:
            known = {name: value for name, value in item.event.items() if name in reader_fields(reader)}
            assert avro_decode(item.value[5:], writer=current, reader=reader) == known
    wait_for(lambda: client.run(client.app.state.runtime.store.outbox_stats).pending == 0)
    events = client.get("/api/v1/ready").json()["checks"]["events"]
    assert (events["ok"], events["security_protocol"], events["delivered"]) == (True, "SSL", 2)


def test_mutual_tls_presents_the_client_certificate(make_client, secured_kafka: SecuredKafka, tls_topic: str) -> None:
    certificates = secured_kafka.certificates
    client = make_client(
        **tls_settings(
            secured_kafka,
            tls_topic,
            kafka_broker_url=secured_kafka.mutual_tls,
            kafka_ssl_certificate_location=str(certificates.client_cert),
            kafka_ssl_key_location=str(certificates.client_key),
        )
    )
    write(client, "user-1", {"user_features": {"age": 30}})
    assert len(consume(secured_kafka.tls, tls_topic, distinct=1, client=secured_kafka.tls_client())) == 1


def assert_events_kept_with_a_clear_error(client, expected_pending: int, *reasons: str) -> dict[str, Any]:
    """`/ready` stays 200, names the failure, and the events wait in the outbox."""
    runtime = client.app.state.runtime
    wait_for(lambda: runtime.relay.stats.failed >= expected_pending)
    wait_for(lambda: client.get("/api/v1/ready").json()["checks"]["events"].get("pending") == expected_pending)
    ready = client.get("/api/v1/ready")
    assert ready.status_code == 200, "Kafka refusing us must not make the service unready"
    events = ready.json()["checks"]["events"]
    assert events["ok"] is False and events["delivered"] == 0
    for reason in reasons:
        assert reason in events["last_error"], events["last_error"]
    return events


def test_a_broker_certificate_from_another_ca_fails_clearly_and_loses_no_event(
    make_client, secured_kafka: SecuredKafka, tls_topic: str
) -> None:
    other_ca = str(secured_kafka.certificates.other_ca)
    wrong = make_client(**tls_settings(secured_kafka, tls_topic, kafka_ssl_ca_location=other_ca, **FAILING_FAST))
    write(wrong, "user-1", {"user_features": {"a": 1}, "credit_features": {"b": 2}})
    assert_events_kept_with_a_clear_error(wrong, 2, "ssl://", "certificate verify failed")
    wrong.__exit__(None, None, None)

    # The same store with the right CA publishes what the wrong one kept.
    fixed = make_client(**tls_settings(secured_kafka, tls_topic))
    received = consume(secured_kafka.tls, tls_topic, distinct=2, client=secured_kafka.tls_client())
    assert {item.event["resource_name"] for item in received} == {"user_features", "credit_features"}
    wait_for(lambda: fixed.run(fixed.app.state.runtime.store.outbox_stats).pending == 0)


def test_without_a_client_certificate_the_mutual_tls_port_refuses(
    make_client, secured_kafka: SecuredKafka, tls_topic: str
) -> None:
    client = make_client(
        **tls_settings(secured_kafka, tls_topic, kafka_broker_url=secured_kafka.mutual_tls, **FAILING_FAST)
    )
    write(client, "user-1", {"user_features": {"a": 1}})
    assert_events_kept_with_a_clear_error(client, 1, "certificate required")


@pytest.mark.parametrize("mechanism", ["SCRAM-SHA-256", "SCRAM-SHA-512"])
def test_credentials_the_broker_refuses_fail_clearly_and_the_password_shows_nowhere(
    make_client,
    make_settings: SettingsFactory,
    secured_kafka: SecuredKafka,
    kafka_topic_name: str,
    mechanism: str,
    caplog: pytest.LogCaptureFixture,
    tmp_path: Path,
) -> None:
    overrides = event_settings(
        kafka_topic_name,
        kafka_broker_url=secured_kafka.sasl_ssl,
        kafka_security_protocol="SASL_SSL",
        kafka_ssl_ca_location=str(secured_kafka.certificates.ca),
        kafka_sasl_mechanism=mechanism,
        kafka_sasl_username="feature-store",
        kafka_sasl_password=SASL_PASSWORD,
        **FAILING_FAST,
    )
    caplog.set_level(logging.DEBUG)
    client = make_client(**overrides)
    write(client, "user-1", {"user_features": {"a": 1}})
    events = assert_events_kept_with_a_clear_error(client, 1, "SASL authentication error", "SCRAM")
    assert (events["security_protocol"], events["sasl_mechanism"]) == ("SASL_SSL", mechanism)
    warmup = client.post("/api/v1/warmup").text
    settings = make_settings(**overrides)
    shown = [
        client.get("/api/v1/ready").text,
        client.get("/api/v1/health").text,
        warmup,
        caplog.text,
        repr(settings),
        str(settings),
        repr(client.app.state.runtime.sink.state()),
    ]
    assert [text for text in shown if SASL_PASSWORD in text] == []

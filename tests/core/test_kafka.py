"""Events on a real Kafka-protocol broker (Tansu): the wire format, an outage, a restart.

The Schema Registry is confluent-kafka's in-process mock, so the consumer here decodes the
Confluent wire format itself with the project's `.avsc`, as a consumer in another process would.
"""

import asyncio
import io
import json
import struct
import time
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any

import fastavro
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from fastapi.testclient import TestClient

from components.features.store import create_store
from core.events import SCHEMA_PATH, load_event_schema
from core.kafka import KafkaSink
from devservers import free_port
from tests.conftest import KafkaBroker, SettingsFactory
from tests.factories import make_write

SCHEMA = fastavro.parse_schema(json.loads(SCHEMA_PATH.read_text()))


@dataclass(frozen=True)
class Received:
    key: str
    schema_id: int
    event: dict[str, Any]
    partition: int
    value: bytes


def decode(value: bytes) -> tuple[int, dict[str, Any]]:
    """Confluent wire format: magic byte 0, 4-byte big-endian schema id, Avro binary body."""
    magic, schema_id = struct.unpack(">bI", value[:5])
    assert magic == 0
    event = fastavro.schemaless_reader(io.BytesIO(value[5:]), SCHEMA)
    assert isinstance(event, dict)
    return schema_id, event


def consume(
    bootstrap: str,
    topic: str,
    distinct: int,
    timeout: float = 20,
    settle: float = 0.5,
    client: Mapping[str, object] = MappingProxyType({}),
) -> list[Received]:
    """Read the topic from the start until `distinct` event ids have arrived and nothing more comes
    for `settle` seconds; duplicates are kept. `client` adds connection properties (TLS). `assign()`
    rather than a group subscription: Tansu's first group join takes ~20 s."""
    consumer = Consumer(
        {
            "bootstrap.servers": bootstrap,
            "group.id": f"test-{uuid.uuid4()}",
            "enable.auto.commit": False,
            **client,
        }
    )
    try:
        partitions = consumer.list_topics(topic, timeout=5).topics[topic].partitions
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING) for partition in partitions])
        received: list[Received] = []
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while len({item.event["event_id"] for item in received}) < distinct or time.monotonic() - quiet_since < settle:
            assert time.monotonic() < deadline, f"only {len(received)} of {distinct} events arrived"
            message = consumer.poll(0.2)
            if message is None:
                continue
            assert message.error() is None, message.error()
            value, key = message.value(), message.key()
            assert value is not None and key is not None
            schema_id, event = decode(value)
            received.append(Received(key.decode(), schema_id, event, message.partition() or 0, value))
            quiet_since = time.monotonic()
        return received
    finally:
        consumer.close()


def wait_for(condition: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def write(client: TestClient, entity_value: str, categories: dict[str, dict[str, Any]], **meta: Any) -> dict:
    body = {
        "meta": {"source": "prediction_service", **meta},
        "data": {
            "entity_value": entity_value,
            "feature_list": [{"category": c, "features": f} for c, f in categories.items()],
        },
    }
    response = client.post("/api/v1/items", json=body)
    assert response.status_code == 200, response.text
    return response.json()


@pytest.mark.backends("sqlite")  # the sink alone: no store
def test_no_broker_fails_the_batch_and_the_sink_reports_it(make_settings: SettingsFactory) -> None:
    settings = make_settings(
        kafka_broker_url=f"127.0.0.1:{free_port()}", schema_registry="mock://nobroker", kafka_message_timeout_ms=300
    )
    sink = KafkaSink(settings, load_event_schema())
    assert sink.state()["producer"] == "not created"
    created = f"created Kafka producer for {settings.kafka_broker_url}, topic {settings.topic_name}"
    assert asyncio.run(sink.initialise()) == [created]
    assert asyncio.run(sink.initialise()) == []
    events = [make_write(category, {"a": 1}).event for category in ("user_features", "credit_features")]
    delivery = asyncio.run(sink.publish(events))
    assert (delivery.delivered, delivery.failed) == ([], [event.event_id for event in events])
    state = sink.state()
    assert state["ok"] is False and state["last_error"]
    asyncio.run(sink.close(0))
    assert asyncio.run(sink.publish(events)).failed == [event.event_id for event in events]
    assert sink.state()["producer"] == "not created"


@pytest.mark.backends("sqlite")  # the sink alone: no store
def test_an_unreachable_schema_registry_fails_the_batch(make_settings: SettingsFactory, kafka_broker) -> None:
    settings = make_settings(
        kafka_broker_url=kafka_broker.bootstrap,
        schema_registry=f"http://127.0.0.1:{free_port()}",
        kafka_socket_timeout_ms=500,
    )
    sink = KafkaSink(settings, load_event_schema())
    events = [make_write(category, {"a": 1}).event for category in ("user_features", "credit_features")]
    delivery = asyncio.run(sink.publish(events))
    assert (delivery.delivered, delivery.failed) == ([], [event.event_id for event in events])
    assert sink.state()["ok"] is False
    asyncio.run(sink.close(0))


def test_written_events_arrive_in_wire_format_with_every_field(
    make_client, kafka_settings, kafka_broker: KafkaBroker, kafka_topic: str
) -> None:
    client = make_client(**kafka_settings)
    first = write(
        client,
        "user-1",
        {"user_features": {"age": 30, "city": "SF"}, "credit_features": {"score": 750}},
        compute_id="job-7",
    )
    second = client.post(
        "/api/v1/items",
        json={
            "meta": {"source": "prediction_service"},
            "data": {
                "entity_type": "account_id",
                "entity_value": "acct-9",
                "category": "d0_unauth_features",
                "features": {"verified": True},
            },
        },
    )
    assert second.status_code == 200

    received = consume(kafka_broker.bootstrap, kafka_topic, distinct=3)
    assert len(received) == 3
    by_category = {item.event["resource_name"]: item for item in received}
    registered = client.app.state.runtime.sink.registry.get_latest_version(f"{kafka_topic}-value")
    assert {item.schema_id for item in received} == {registered.schema_id}
    for category, features in (("user_features", ["age", "city"]), ("credit_features", ["score"])):
        item = by_category[category]
        assert item.key == "bright_uid:user-1"
        assert item.event == {
            "event_id": item.event["event_id"],
            "event_type": "feature_available",
            "timestamp": first["timestamp"],
            "entity_type": "bright_uid",
            "entity_id": "user-1",
            "resource_type": "feature",
            "resource_name": category,
            "compute_id": "job-7",
            "features": features,
        }
    account = by_category["d0_unauth_features"]
    assert account.key == "account_id:acct-9"
    assert (account.event["entity_type"], account.event["compute_id"]) == ("account_id", "")
    assert account.event["timestamp"] == second.json()["timestamp"]
    assert len({str(uuid.UUID(item.event["event_id"])) for item in received}) == 3
    wait_for(lambda: client.run(client.app.state.runtime.store.outbox_stats).pending == 0)
    events = client.get("/api/v1/ready").json()["checks"]["events"]
    assert (events["sink"], events["ok"], events["delivered"], events["failed"]) == ("kafka", True, 3, 0)


def test_an_outage_delays_events_but_loses_none(
    make_client, kafka_settings, kafka_broker: KafkaBroker, kafka_topic: str
) -> None:
    client = make_client(**kafka_settings)
    runtime = client.app.state.runtime
    client.run(runtime.warmup)
    message_timeout = kafka_settings["kafka_message_timeout_ms"] / 1000
    writes = 20
    kafka_broker.server.pause()
    try:
        slowest = 0.0
        for index in range(writes):
            started = time.monotonic()
            write(client, f"user-{index}", {"user_features": {"n": index}})
            slowest = max(slowest, time.monotonic() - started)
        # No write waited for Kafka: each answered well within one delivery attempt.
        assert slowest < message_timeout
        wait_for(lambda: runtime.relay.stats.failed > 0)
        ready = client.get("/api/v1/ready")
        assert ready.status_code == 200, "Kafka being down must not make the service unready"
        events = ready.json()["checks"]["events"]
        assert events["ok"] is False and events["last_error"]
        wait_for(lambda: client.get("/api/v1/ready").json()["checks"]["events"].get("pending") == writes)
        assert client.get("/api/v1/ready").json()["checks"]["events"]["oldest_pending_age_s"] > 0
    finally:
        kafka_broker.server.resume()

    received = consume(kafka_broker.bootstrap, kafka_topic, distinct=writes)
    assert {item.event["entity_id"] for item in received} == {f"user-{index}" for index in range(writes)}
    wait_for(lambda: client.run(runtime.store.outbox_stats).pending == 0)
    assert client.get("/api/v1/ready").json()["checks"]["events"]["ok"] is True


def test_events_pending_at_shutdown_are_published_after_a_restart(
    make_client, make_settings: SettingsFactory, kafka_settings, kafka_broker: KafkaBroker, kafka_topic: str
) -> None:
    unreachable = {
        **kafka_settings,
        "kafka_broker_url": f"127.0.0.1:{free_port()}",
        "kafka_message_timeout_ms": 300,
        "shutdown_flush_seconds": 0.5,
    }
    first = make_client(**unreachable)
    sink = first.app.state.runtime.sink
    attempted: list[str] = []
    publish = sink.publish

    async def recording_publish(events):
        attempted.extend(event.event_id for event in events)
        return await publish(events)

    sink.publish = recording_publish
    write(first, "user-1", {"user_features": {"a": 1}, "credit_features": {"b": 2}, "trans_features": {"c": 3}})
    wait_for(lambda: first.app.state.runtime.relay.stats.failed >= 3)
    first.__exit__(None, None, None)
    store = create_store(make_settings(**unreachable))

    async def pending() -> int:
        try:
            return (await store.outbox_stats()).pending
        finally:
            await store.close()

    assert asyncio.run(pending()) == 3

    restarted = make_client(**kafka_settings)
    received = consume(kafka_broker.bootstrap, kafka_topic, distinct=3)
    assert {item.event["event_id"] for item in received} == set(attempted)
    assert {item.event["resource_name"] for item in received} == {"user_features", "credit_features", "trans_features"}
    wait_for(lambda: restarted.run(restarted.app.state.runtime.store.outbox_stats).pending == 0)

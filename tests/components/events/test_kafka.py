"""Events on a real Kafka-protocol broker (Tansu): the wire format, an outage, a restart.

The Schema Registry is confluent-kafka's in-process mock, so the consumer of `kafka_helpers` decodes the
Confluent wire format itself with the project's `.avsc`, as a consumer in another process would.
"""

import asyncio
import time
import uuid

import pytest

from components.events.events import load_event_schema
from components.events.kafka import KafkaSink
from components.features.store import create_store
from devservers import free_port
from tests.components.events.kafka_helpers import consume, wait_for, write
from tests.conftest import KafkaBroker, SettingsFactory
from tests.factories import make_write


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
            "actor": None,
            "version": 1,
            "erased_versions": None,
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
        # The first service may stop holding the lease of an event it was still trying to deliver when its
        # flush time ran out: the restarted relay takes that event once the lease has run out.
        "outbox_lease_seconds": 2.0,
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

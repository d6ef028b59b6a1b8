"""Dead letters on a real Kafka-protocol broker (Tansu): an event the producer refuses for good (larger
than `message.max.bytes`) becomes one while the others flow, is re-driven and delivered once the limit
is raised; a broker outage or an unreachable registry makes none."""

import asyncio
import time
from collections.abc import Callable

import pytest
from confluent_kafka import KafkaError
from fastapi.testclient import TestClient

from components.events.events import load_event_schema
from components.events.kafka import KafkaSink
from devservers import free_port
from tests.components.events.kafka_helpers import consume, wait_for, write
from tests.conftest import KafkaBroker, SettingsFactory
from tests.factories import make_write

MAX_MESSAGE_BYTES = 2000
"""The producer's own limit in these tests (librdkafka's least is 1000): Tansu enforces no topic limit,
and librdkafka refuses a larger message with MSG_SIZE_TOO_LARGE, as it reports a broker's refusal."""
LARGE = {f"feature_with_a_rather_long_name_{index:04d}": index for index in range(120)}
"""A category whose event (one name per feature) is several times MAX_MESSAGE_BYTES."""


def dead_letters(client: TestClient) -> list[dict]:
    response = client.get("/api/v1/admin/dead-letters")
    assert response.status_code == 200, response.text
    return response.json()["dead_letters"]


def test_a_too_large_event_is_a_dead_letter_the_others_flow_and_a_redrive_delivers_it(
    make_client, kafka_settings, kafka_broker: KafkaBroker, kafka_topic: str
) -> None:
    limited = {**kafka_settings, "kafka_producer_config": {"message.max.bytes": MAX_MESSAGE_BYTES}}
    client = make_client(**limited)
    write(client, "user-1", {"user_features": {"age": 30}})
    large = write(client, "user-2", {"user_features": {"age": 31}, "credit_features": LARGE})
    write(client, "user-2", {"user_features": {"age": 32}})
    write(client, "user-3", {"user_features": {"age": 33}})

    received = consume(kafka_broker.bootstrap, kafka_topic, distinct=4)
    assert sorted(item.event["entity_id"] for item in received) == ["user-1", "user-2", "user-2", "user-3"]
    assert "credit_features" not in {item.event["resource_name"] for item in received}
    wait_for(lambda: len(dead_letters(client)) == 1)
    (letter,) = dead_letters(client)
    assert letter["key"] == "bright_uid:user-2"
    assert letter["event"]["resource_name"] == "credit_features"
    assert letter["event"]["timestamp"] == large["timestamp"]
    assert letter["attempts"] == 1, "refused for good: a dead letter at its first attempt"
    assert letter["reason"].startswith("Kafka refused the event:") and "too large" in letter["reason"]
    runtime = client.app.state.runtime
    wait_for(lambda: client.run(runtime.store.outbox_stats).pending == 0)
    ready = client.get("/api/v1/ready")
    assert ready.status_code == 200
    events = ready.json()["checks"]["events"]
    wait_for(lambda: client.get("/api/v1/ready").json()["checks"]["events"].get("dead_letters") == 1)
    assert events["ok"] is True, "one refused event is not a broken pipeline"
    assert runtime.relay.stats.dead_lettered == 1

    # Re-driven under the same limit, it is refused again, and kept again: never lost.
    assert client.post("/api/v1/admin/dead-letters/redrive", json={"all": True}).json()["redriven"] == [
        letter["event_id"]
    ]
    wait_for(lambda: runtime.relay.stats.dead_lettered == 2)
    assert [again["event_id"] for again in dead_letters(client)] == [letter["event_id"]]
    client.__exit__(None, None, None)

    # The limit raised (a restart with the new configuration), the re-driven event is delivered.
    raised = make_client(**kafka_settings)
    redrive = raised.post("/api/v1/admin/dead-letters/redrive", json={"event_ids": [letter["event_id"]]})
    assert redrive.json() == {"redriven": [letter["event_id"]], "not_found": []}
    received = consume(kafka_broker.bootstrap, kafka_topic, distinct=5)
    (delivered,) = [item for item in received if item.event["event_id"] == letter["event_id"]]
    assert delivered.event == letter["event"]
    assert delivered.key == "bright_uid:user-2"
    wait_for(lambda: raised.run(raised.app.state.runtime.store.outbox_stats).dead_letters == 0)
    assert dead_letters(raised) == []


@pytest.mark.backends("sqlite")
def test_a_broker_outage_makes_no_dead_letters(
    make_client, kafka_settings, kafka_broker: KafkaBroker, kafka_topic: str
) -> None:
    """The relay's judgement, on one store: that a retry without a counted attempt stays uncounted is
    each store's part, in the contract suite (`count_attempt=False`)."""
    # One attempt allowed: any failure counted against an event would make it a dead letter at once.
    client = make_client(**kafka_settings, outbox_max_attempts=1)
    runtime = client.app.state.runtime
    client.run(runtime.warmup)
    writes = 5
    kafka_broker.server.pause()
    try:
        # One request, so the relay claims the five events together and each failed round fails them all.
        entities = [
            {"entity_value": f"user-{index}", "feature_list": [{"category": "user_features", "features": {"n": index}}]}
            for index in range(writes)
        ]
        body = {"meta": {"source": "prediction_service"}, "data": {"entity_type": "bright_uid", "entities": entities}}
        response = client.post("/api/v1/items/batch", json=body)
        assert response.json()["written"] == writes, response.text
        # Every event has failed with the pipeline at least twice: once would be a dead letter.
        wait_for(lambda: runtime.relay.stats.failed >= 2 * writes, timeout=30)
        stats = client.run(runtime.store.outbox_stats)
        assert (stats.pending, stats.dead_letters) == (writes, 0)
        assert runtime.relay.stats.dead_lettered == 0
        assert client.get("/api/v1/ready").status_code == 200
    finally:
        kafka_broker.server.resume()
    received = consume(kafka_broker.bootstrap, kafka_topic, distinct=writes)
    assert {item.event["entity_id"] for item in received} == {f"user-{index}" for index in range(writes)}
    wait_for(lambda: client.run(runtime.store.outbox_stats).pending == 0)
    assert client.run(runtime.store.outbox_stats).dead_letters == 0
    assert dead_letters(client) == []


@pytest.mark.backends("sqlite")
def test_the_sink_judges_each_event(make_settings: SettingsFactory, kafka_broker: KafkaBroker, kafka_topic) -> None:
    """On its own: one too large, one whose payload the schema refuses; the rest delivered."""
    settings = make_settings(
        kafka_broker_url=kafka_broker.bootstrap,
        schema_registry=f"mock://{kafka_topic}",
        topic_name=kafka_topic,
        kafka_message_timeout_ms=3000,
        kafka_producer_config={"message.max.bytes": MAX_MESSAGE_BYTES},
    )
    sink = KafkaSink(settings, load_event_schema())
    good, large, broken, last = (make_write("user_features", {"a": index}).event for index in range(4))
    large.payload["features"] = list(LARGE)
    broken.payload["features"] = 12345
    try:
        delivery = asyncio.run(sink.publish([good, large, broken, last]))
    finally:
        asyncio.run(sink.close(1))
    assert sorted(delivery.delivered) == sorted([good.event_id, last.event_id])
    assert delivery.failed == []
    assert set(delivery.rejected) == {large.event_id, broken.event_id}
    assert all(rejection.permanent for rejection in delivery.rejected.values())
    assert "too large" in delivery.rejected[large.event_id].reason
    assert "does not fit schemas/feature_trigger.avsc" in delivery.rejected[broken.event_id].reason
    assert sink.state()["ok"] is True


@pytest.mark.backends("sqlite")
def test_an_unreachable_registry_or_broker_rejects_no_event(
    make_settings: SettingsFactory, kafka_broker: KafkaBroker
) -> None:
    events = [make_write(category, {"a": 1}).event for category in ("user_features", "credit_features")]
    for broker, registry in (
        (kafka_broker.bootstrap, f"http://127.0.0.1:{free_port()}"),
        (f"127.0.0.1:{free_port()}", "mock://unreachable"),
    ):
        settings = make_settings(
            kafka_broker_url=broker, schema_registry=registry, kafka_socket_timeout_ms=500, kafka_message_timeout_ms=500
        )
        sink = KafkaSink(settings, load_event_schema())
        started = time.monotonic()
        delivery = asyncio.run(sink.publish(events))
        asyncio.run(sink.close(0))
        assert (delivery.delivered, delivery.rejected) == ([], {}), (broker, registry)
        assert delivery.failed == [event.event_id for event in events]
        assert time.monotonic() - started < 5


class ReportingProducer:
    """Stands in for the producer to hand the sink delivery reports with chosen errors (by event id)."""

    def __init__(self, errors: dict[str, int]) -> None:
        self.errors = errors
        self.pending: list[tuple[Callable[..., None], str]] = []

    def produce(
        self, topic: str, key: str, value: dict, on_delivery: Callable[..., None], headers: object = None
    ) -> None:
        self.pending.append((on_delivery, value["event_id"]))

    def poll(self, timeout: float) -> int:
        for callback, event_id in self.pending:
            code = self.errors.get(event_id)
            callback(None if code is None else KafkaError(code), None)
        self.pending = []
        return 0

    def purge(self) -> None:
        pass

    def flush(self, timeout: float) -> int:
        return 0


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize(
    ("code", "others_delivered", "outcome"),
    [
        (KafkaError.MSG_SIZE_TOO_LARGE, True, "permanent"),
        (KafkaError.MSG_SIZE_TOO_LARGE, False, "permanent"),
        (KafkaError.INVALID_RECORD, True, "permanent"),
        (KafkaError.POLICY_VIOLATION, True, "counted"),
        (KafkaError.POLICY_VIOLATION, False, "pipeline"),
        (KafkaError._MSG_TIMED_OUT, True, "pipeline"),
        (KafkaError.NOT_ENOUGH_REPLICAS, True, "pipeline"),
        (KafkaError.TOPIC_AUTHORIZATION_FAILED, True, "pipeline"),
    ],
)
def test_delivery_reports_are_judged_per_event(
    make_settings: SettingsFactory, code: int, others_delivered: bool, outcome: str, backend
) -> None:
    settings = make_settings(kafka_broker_url="127.0.0.1:9", schema_registry="mock://reports")
    sink = KafkaSink(settings, load_event_schema())
    events = [make_write("user_features", {"a": index}).event for index in range(3)]
    judged = events[1].event_id
    errors = {event.event_id: code for event in events if others_delivered is False or event.event_id == judged}
    producer = ReportingProducer(errors)
    sink._create_producer = lambda: producer  # type: ignore[method-assign,assignment,return-value]
    delivery = asyncio.run(sink.publish(events))
    others = [event.event_id for event in events if event.event_id != judged]
    assert delivery.delivered == (others if others_delivered else [])
    if outcome == "pipeline":
        assert judged in delivery.failed and delivery.rejected == {}
    else:
        assert delivery.rejected[judged].permanent is (outcome == "permanent")
        assert delivery.rejected[judged].reason.startswith("Kafka refused the event: ")
        assert judged not in delivery.failed

"""Concurrent writers and deleters on the same few entities, against the service as deployed, through a short
broker outage (so the relay retries batches while later versions are written): the events a consumer reads
from the topic come in version order per category (no inversion), and a consumer that applies them by version
ends up with exactly what the store holds. On both stores."""

import random
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

from devservers import ServiceProcess
from tests.components.events.kafka_helpers import decode
from tests.conftest import KafkaBroker, dynamodb_tables
from tests.test_faults import events_env, pending, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timing]  # seconds of concurrent load on a service process

ENTITIES = [f"race-{number}" for number in range(12)]
CATEGORY = "user_features"


@pytest.fixture(params=["sqlite", "dynamodb"])
def served(
    request: pytest.FixtureRequest, kafka_mock: KafkaBroker, tmp_path: Path
) -> Iterator[tuple[ServiceProcess, str]]:
    """The service on one store, publishing to a topic of its own: (service, topic)."""
    topic = f"order-{uuid.uuid4().hex[:12]}"
    if request.param == "sqlite":
        store = {"STORE_BACKEND": "sqlite", "SQLITE_PATH": str(tmp_path / "features.db")}
    else:
        tables = {name.upper(): str(value).lower() for name, value in dynamodb_tables().items()}
        store = {"STORE_BACKEND": "dynamodb", "DYNAMODB_ENDPOINT_URL": request.getfixturevalue("dynamodb_endpoint")}
        store |= tables
    process = ServiceProcess(store | events_env(kafka_mock, topic) | {"TOPIC_NAME": topic}, tmp_path)
    yield process, topic
    process.kill()


def race(service: ServiceProcess, clients: int, seconds: float) -> dict[Any, int]:
    """`clients` threads writing and deleting one category of `ENTITIES` at random for `seconds`; the answers."""
    answers: dict[Any, int] = {}
    lock = threading.Lock()
    stop = time.monotonic() + seconds

    def run(seed: int) -> None:
        chance = random.Random(seed)
        with httpx.Client(base_url=service.url, timeout=10) as client:
            sequence = 0
            while time.monotonic() < stop:
                entity = chance.choice(ENTITIES)
                sequence += 1
                if chance.random() < 0.6:
                    body = {
                        "meta": {"source": "prediction_service"},
                        "data": {
                            "entity_value": entity,
                            "feature_list": [{"category": CATEGORY, "features": {"n": seed * 1_000_000 + sequence}}],
                        },
                    }
                    response = client.post("/api/v1/items", json=body)
                else:
                    response = client.delete(f"/api/v1/items/{entity}", params={"category": CATEGORY})
                with lock:
                    answers[response.status_code] = answers.get(response.status_code, 0) + 1

    threads = [threading.Thread(target=run, args=(seed,)) for seed in range(clients)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return answers


def topic_events(bootstrap: str, topic: str, settle: float = 1.0) -> list[dict[str, Any]]:
    """Every event on the topic, partition by partition in the order a consumer reads them."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"order-{uuid.uuid4()}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING) for partition in partitions])
        events: list[dict[str, Any]] = []
        quiet_since = time.monotonic()
        deadline = time.monotonic() + 30
        while time.monotonic() - quiet_since < settle and time.monotonic() < deadline:
            message = consumer.poll(0.1)
            if message is None or message.error() is not None:
                continue
            events.append(decode(message.value() or b"")[1])
            quiet_since = time.monotonic()
        return events
    finally:
        consumer.close()


def inversions(events: list[dict[str, Any]]) -> int:
    """Events read after a later version of their entity's category (a redelivered copy excepted)."""
    newest: dict[str, int] = {}
    seen: set[str] = set()
    count = 0
    for event in events:
        if event["event_id"] in seen:
            continue
        seen.add(event["event_id"])
        if event["version"] < newest.get(event["entity_id"], 0):
            count += 1
        newest[event["entity_id"]] = max(newest.get(event["entity_id"], 0), event["version"])
    return count


def mirrored(events: list[dict[str, Any]]) -> dict[str, tuple[int, dict[str, Any] | None]]:
    """What a consumer holds after applying each event only when its version is newer: entity -> (version,
    the features named, or None once deleted)."""
    held: dict[str, tuple[int, dict[str, Any] | None]] = {}
    for event in events:
        version = event["version"]
        if version > held.get(event["entity_id"], (0, None))[0]:
            present = event["event_type"] == "feature_available"
            held[event["entity_id"]] = (version, {"features": sorted(event["features"])} if present else None)
    return held


def test_concurrent_writes_and_deletions_publish_in_version_order(
    served: tuple[ServiceProcess, str], kafka_mock: KafkaBroker, report
) -> None:
    service, topic = served

    def broker_outage() -> None:
        """Kafka stopped for two seconds mid-run: batches fail and are retried after a backoff, while later
        versions of their categories are written meanwhile."""
        time.sleep(2)
        kafka_mock.server.pause()
        try:
            time.sleep(2)
        finally:
            kafka_mock.server.resume()

    outage = threading.Thread(target=broker_outage)
    outage.start()
    answers = race(service, clients=12, seconds=7)
    outage.join()
    assert set(answers) == {200}, answers
    wait_until(lambda: pending(service) == 0, 30, "the relay did not drain the outbox")
    events = topic_events(kafka_mock.bootstrap, topic)
    report(f"{sum(answers.values())} requests; {len(events)} events on the topic")
    assert inversions(events) == 0
    held = mirrored(events)
    with httpx.Client(base_url=service.url, timeout=10) as client:
        for entity in ENTITIES:
            response = client.get(f"/api/v1/get/item/{entity}/{CATEGORY}")
            if response.status_code == 404:
                assert held.get(entity, (0, None))[1] is None, f"{entity}: erased in the store, held by the mirror"
                continue
            assert response.status_code == 200, response.text
            features = response.json()["features"]
            assert held.get(entity) == (features["metadata"]["version"], {"features": sorted(features["data"])})

"""Helpers of the Kafka tests and of the API tests that read the events a request produced: a consumer
that decodes the Confluent wire format with the project's `.avsc`, as a consumer in another process
would, and the write and wait steps those tests share."""

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
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from fastapi.testclient import TestClient

from components.events.events import SCHEMA_PATH

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

"""The Kafka event sink: Avro values in Confluent wire format through the Schema Registry.

The outbox relay is its only caller. `publish` hands a batch to the producer and waits, at most
`KAFKA_MESSAGE_TIMEOUT_MS` plus a margin, for every delivery report, so an outage shows up as
failed events (kept in the outbox, retried) and never blocks the relay for long. The producer's
calls block (polling for reports, flushing, creating it), so they run in a worker thread: the
relay is a task of the service's event loop.
"""

import logging
import threading
import time
from collections.abc import Sequence
from typing import Any

import anyio.to_thread
from confluent_kafka import KafkaError, KafkaException, Message, SerializingProducer
from confluent_kafka.schema_registry import SchemaRegistryClient, topic_subject_name_strategy
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.serialization import SerializationError, StringSerializer

from core.events import Delivery, EventSchema, OutboxEvent
from core.settings import Settings

logger = logging.getLogger("feature_store.kafka")

REPORT_MARGIN_SECONDS = 1.0
"""Time beyond the message timeout for the producer's last delivery reports to arrive."""
POLL_SECONDS = 0.05
CLIENT_ID = "feature-store-api"


class KafkaSink:
    """Publishes events keyed `<entity_type>:<entity_value>` (per-entity order) to `TOPIC_NAME`;
    the value schema is registered under `<topic>-value`."""

    name = "kafka"

    def __init__(self, settings: Settings, schema: EventSchema) -> None:
        self.topic = settings.topic_name
        self.broker_url = settings.kafka_broker_url
        self.registry_url = settings.schema_registry
        self.schema = schema
        self.message_timeout_ms = settings.kafka_message_timeout_ms
        self.socket_timeout_ms = settings.kafka_socket_timeout_ms
        self.registry: SchemaRegistryClient | None = None
        self._producer: SerializingProducer | None = None
        self._serializer: AvroSerializer | None = None
        self._lock = threading.Lock()
        self._last_error: str | None = None
        self._client_error: str | None = None
        self._closed = False

    def _create_registry(self) -> SchemaRegistryClient:
        # new_client picks the in-process mock for mock://...; the constructor would not.
        conf: dict[str, Any] = {"url": self.registry_url}
        if not self.registry_url.startswith("mock://"):
            # No retries of its own: a failed registration fails the batch, which the outbox retries.
            conf |= {"timeout": self.socket_timeout_ms / 1000, "max.retries": 0}
        return SchemaRegistryClient.new_client(conf)

    def _get_producer(self) -> SerializingProducer:
        producer = self._producer
        if producer is not None:
            return producer
        with self._lock:
            if self._producer is None:
                if self._serializer is None:
                    # One registry client and serializer for the process: they cache the schema id.
                    # The subject strategy is named because 2.16's default (associated names) asks
                    # the broker for its cluster id inside produce(), blocking it through an outage.
                    self.registry = self._create_registry()
                    self._serializer = AvroSerializer(
                        self.registry, self.schema.text, conf={"subject.name.strategy": topic_subject_name_strategy}
                    )
                self._producer = SerializingProducer(
                    {
                        "bootstrap.servers": self.broker_url,
                        "client.id": CLIENT_ID,
                        "acks": "all",
                        "enable.idempotence": True,
                        "compression.type": "snappy",
                        "message.timeout.ms": self.message_timeout_ms,
                        "socket.timeout.ms": self.socket_timeout_ms,
                        "key.serializer": StringSerializer("utf_8"),
                        "value.serializer": self._serializer,
                        "error_cb": self._on_error,
                        "logger": logger,
                    }
                )
            return self._producer

    def _on_error(self, error: KafkaError) -> None:
        """Client-level trouble (brokers down, authentication); logged once per change, not per retry."""
        if error.str() != self._client_error:
            logger.warning("kafka client error", extra={"kafka_error": error.str(), "fatal": error.fatal()})
        self._client_error = self._last_error = error.str()

    def _discard_producer(self, producer: SerializingProducer) -> None:
        """Drop a producer after failed deliveries: a fresh one has a new idempotence identity and
        no sequence gaps; what the old one still held stays in the outbox and is retried."""
        producer.purge()
        producer.flush(0)
        with self._lock:
            if self._producer is producer:
                self._producer = None

    async def initialise(self) -> list[str]:
        if self._producer is not None:
            return []
        await anyio.to_thread.run_sync(self._get_producer)
        return [f"created Kafka producer for {self.broker_url}, topic {self.topic}"]

    async def publish(self, events: Sequence[OutboxEvent]) -> Delivery:
        # Abandoned if the relay is cancelled at shutdown: the thread finishes on its own, and events it
        # could not report stay leased in the outbox, published again after the lease (at least once).
        return await anyio.to_thread.run_sync(self._publish, events, abandon_on_cancel=True)

    def _publish(self, events: Sequence[OutboxEvent]) -> Delivery:
        if self._closed:
            # Shutting down: no new producer that nobody would flush; the events wait in the outbox.
            return Delivery(failed=[event.event_id for event in events])
        producer = self._get_producer()
        reports: dict[str, KafkaError | None] = {}
        produced: list[str] = []
        refused: list[str] = []
        for index, event in enumerate(events):

            def on_delivery(error: KafkaError | None, _: Message, event_id: str = event.event_id) -> None:
                reports[event_id] = error

            try:
                producer.produce(self.topic, key=event.key, value=event.payload, on_delivery=on_delivery)
            except (BufferError, KafkaException, SerializationError) as exc:
                # The rest would fail the same way (registry down, queue full): leave them for the retry.
                self._last_error = str(exc)
                logger.warning("kafka refused an event", extra={"event_id": event.event_id, "error": str(exc)})
                refused = [pending.event_id for pending in events[index:]]
                break
            produced.append(event.event_id)
            producer.poll(0)
        deadline = time.monotonic() + self.message_timeout_ms / 1000 + REPORT_MARGIN_SECONDS
        while len(reports) < len(produced) and time.monotonic() < deadline:
            producer.poll(POLL_SECONDS)
        delivery = Delivery()
        for event_id in produced:
            if event_id in reports and reports[event_id] is None:
                delivery.delivered.append(event_id)
            else:
                delivery.failed.append(event_id)
        delivery.failed += refused
        if delivery.failed:
            errors = {error.str() for error in reports.values() if error is not None}
            if errors:
                self._last_error = "; ".join(sorted(errors))
            self._discard_producer(producer)
        elif delivery.delivered:
            self._last_error = self._client_error = None
        return delivery

    def state(self) -> dict[str, Any]:
        return {
            "sink": self.name,
            "ok": self._last_error is None,
            "topic": self.topic,
            "producer": "created" if self._producer is not None else "not created",
            "last_error": self._last_error,
        }

    async def close(self, timeout: float) -> None:
        """Deliver what the producer still holds within `timeout` seconds; the rest stays in the outbox."""
        await anyio.to_thread.run_sync(self._close, timeout)

    def _close(self, timeout: float) -> None:
        with self._lock:
            self._closed = True
            producer, self._producer = self._producer, None
        if producer is not None:
            left = producer.flush(timeout)
            if left:
                logger.warning("kafka producer closed with undelivered events", extra={"undelivered": left})

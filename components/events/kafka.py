"""The Kafka event sink: Avro values in Confluent wire format through the Schema Registry.

The outbox relay is its only caller. `publish` hands a batch to the producer and waits, at most
`KAFKA_MESSAGE_TIMEOUT_MS` plus a margin, for every delivery report, so an outage shows up as
failed events (kept in the outbox, retried) and never blocks the relay for long.

Each event's outcome is one of three. Delivered. Failed with the pipeline: the broker or the registry
unreachable, a timeout, the cluster, topic or producer failing as a whole; these never count against
the event. Rejected on its own: an error about the message itself that no retry changes (librdkafka's
MSG_SIZE_TOO_LARGE, INVALID_MSG_SIZE, INVALID_RECORD, or a payload our own schema refuses) is
permanent; any other error of one event while others of its batch were delivered counts one attempt.
librdkafka retries what it deems retriable until `message.timeout.ms` itself, so a delivery report
carries either a timeout (the pipeline) or an error it would not retry. confluent-kafka sets
`KafkaError.retriable()` and `fatal()` on no delivery report (a timed-out one included: both false),
so the error codes decide; where either is set, it is taken as the pipeline's trouble. How the clients
are configured (TLS, SASL, MSK IAM, the registry's credentials) is `kafka_config`'s job; every
error text this module keeps or logs has the configured secrets removed. The producer's calls block
(polling for reports, flushing, creating it), so they run in a worker thread: the relay is a task of
the service's event loop.
"""

import logging
import threading
import time
from collections.abc import Callable, Sequence
from typing import Any

import anyio.to_thread
from confluent_kafka import KafkaError, KafkaException, Message, SerializingProducer
from confluent_kafka.schema_registry import SchemaRegistryClient
from confluent_kafka.schema_registry.avro import AvroSerializer
from confluent_kafka.schema_registry.error import SchemaRegistryError
from confluent_kafka.serialization import SerializationContext, SerializationError, StringSerializer
from fastavro.types import Schema
from fastavro.validation import validate

from components.events.events import Delivery, EventSchema, OutboxEvent, Rejection
from components.events.kafka_config import (
    check_producer_config,
    producer_config,
    redactor,
    registry_config,
    serializer_config,
)
from core.settings import Settings
from core.tracing import TRACEPARENT

logger = logging.getLogger("feature_store.kafka")

REPORT_MARGIN_SECONDS = 1.0
"""Time beyond the message timeout for the producer's last delivery reports to arrive."""
POLL_SECONDS = 0.05
MAX_REASON_CHARS = 1000

REFUSED_FOR_GOOD = frozenset({KafkaError.MSG_SIZE_TOO_LARGE, KafkaError.INVALID_MSG_SIZE, KafkaError.INVALID_RECORD})
"""Errors about one message itself that no retry changes: its size (over the broker's or the producer's
own `message.max.bytes`), or a record the broker's validation refuses."""
PIPELINE_ERRORS = frozenset(
    {
        KafkaError._MSG_TIMED_OUT,
        KafkaError._TIMED_OUT,
        KafkaError._TRANSPORT,
        KafkaError._ALL_BROKERS_DOWN,
        KafkaError._PURGE_QUEUE,
        KafkaError._PURGE_INFLIGHT,
        KafkaError._FATAL,
        KafkaError._QUEUE_FULL,
        KafkaError._UNKNOWN_TOPIC,
        KafkaError._UNKNOWN_PARTITION,
        KafkaError._AUTHENTICATION,
        KafkaError._SSL,
        KafkaError._STATE,
        KafkaError._DESTROY,
        KafkaError.UNKNOWN_TOPIC_OR_PART,
        KafkaError.LEADER_NOT_AVAILABLE,
        KafkaError.NOT_LEADER_FOR_PARTITION,
        KafkaError.REQUEST_TIMED_OUT,
        KafkaError.NETWORK_EXCEPTION,
        KafkaError.NOT_ENOUGH_REPLICAS,
        KafkaError.NOT_ENOUGH_REPLICAS_AFTER_APPEND,
        KafkaError.KAFKA_STORAGE_ERROR,
        KafkaError.TOPIC_AUTHORIZATION_FAILED,
        KafkaError.CLUSTER_AUTHORIZATION_FAILED,
        KafkaError.SASL_AUTHENTICATION_FAILED,
        KafkaError.OUT_OF_ORDER_SEQUENCE_NUMBER,
        KafkaError.UNKNOWN_PRODUCER_ID,
        KafkaError.INVALID_PRODUCER_EPOCH,
    }
)
"""Errors of the connection, the cluster, the topic or the producer rather than of one message: an
outage, however long, is retried without counting attempts."""


class PayloadRefused(SerializationError):
    """The event's own payload does not fit the service's event schema: no retry changes that."""


def is_pipeline_error(error: KafkaError) -> bool:
    return error.code() in PIPELINE_ERRORS or error.retriable() or error.fatal()


def explain_registry_error(exc: SchemaRegistryError, subject: str, settings: Settings) -> str:
    """What a Schema Registry refusal means for this service, and what to do about it."""
    said = f"(registry: {exc.error_message}; HTTP {exc.http_status_code}, code {exc.error_code})"
    status = exc.http_status_code
    if status == 404 and not settings.schema_auto_register:
        wanted = (
            "no registered version"
            if settings.schema_use_latest_version
            else "no version matching this service's schema"
        )
        return (
            f"Schema Registry subject {subject} has {wanted} and SCHEMA_AUTO_REGISTER=false: "
            f"register schemas/feature_trigger.avsc under {subject} {said}"
        )
    if status in (401, 403):
        return f"Schema Registry refused the credentials: check SCHEMA_REGISTRY_BASIC_AUTH_USER_INFO {said}"
    if status == 409:
        return (
            f"Schema Registry refused to register schemas/feature_trigger.avsc under {subject}: it is incompatible "
            f"with the versions registered there under the subject's compatibility rule {said}"
        )
    return f"Schema Registry error for subject {subject} {said}"


class ExplainedSerializer:
    """The Avro serializer, with the registry's refusals turned into errors that say what to do
    (the producer reports only the text of what its serializer raised)."""

    def __init__(
        self,
        serializer: AvroSerializer,
        subject: str,
        settings: Settings,
        redact: Callable[[str], str],
        schema: Schema,
    ) -> None:
        self.serializer = serializer
        self.schema = schema
        self.subject = subject
        self.settings = settings
        self.redact = redact
        self._last_refusal: str | None = None

    def __call__(self, value: Any, ctx: SerializationContext) -> bytes | None:
        try:
            return self.serializer(value, ctx)
        except SchemaRegistryError as exc:
            message = self.redact(explain_registry_error(exc, self.subject, self.settings))
            if message != self._last_refusal:  # once per change, not once per retry
                logger.error("schema registry refused the event schema", extra={"error": message})
                self._last_refusal = message
            raise SerializationError(message) from exc
        except Exception as exc:
            # The payload's fault only when our own schema refuses it too; otherwise the registry's
            # schema or the serializer failed, which would fail every event alike.
            if validate(value, self.schema, raise_errors=False):
                raise
            raise PayloadRefused(f"the event does not fit schemas/feature_trigger.avsc: {exc}") from exc


def error_text(exc: BaseException) -> str:
    """A client exception's own message, without the KafkaError{...} wrapping."""
    if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
        return exc.args[0].str()
    return str(exc)


class KafkaSink:
    """Publishes events keyed `<entity_type>:<entity_value>` (per-entity order) to `TOPIC_NAME`;
    the value schema is registered under `<topic>-value`."""

    name = "kafka"

    def __init__(self, settings: Settings, schema: EventSchema) -> None:
        """Refuses (ConfigurationError) a producer configuration librdkafka would refuse, so the
        service does not start with it."""
        check_producer_config(settings)
        self.settings = settings
        self.topic = settings.topic_name
        self.subject = f"{settings.topic_name}-value"
        self.broker_url = settings.kafka_broker_url
        self.schema = schema
        self.message_timeout_ms = settings.kafka_message_timeout_ms
        self.registry: SchemaRegistryClient | None = None
        self._producer: SerializingProducer | None = None
        self._serializer: ExplainedSerializer | None = None
        self._lock = threading.Lock()
        self._redact = redactor(settings)
        self._last_error: str | None = None
        self._client_error: str | None = None
        self._token_error: str | None = None
        self._closed = False

    def _set_error(self, message: str) -> str:
        self._last_error = self._redact(message)
        return self._last_error

    def _create_registry(self) -> SchemaRegistryClient:
        # new_client picks the in-process mock for mock://...; the constructor would not.
        return SchemaRegistryClient.new_client(registry_config(self.settings))

    def _get_producer(self) -> SerializingProducer:
        producer = self._producer
        if producer is not None:
            return producer
        with self._lock:
            if self._producer is None:
                if self._serializer is None:
                    # One registry client and serializer for the process: they cache the schema id.
                    self.registry = self._create_registry()
                    serializer = AvroSerializer(self.registry, self.schema.text, conf=serializer_config(self.settings))
                    self._serializer = ExplainedSerializer(
                        serializer, self.subject, self.settings, self._redact, self.schema.parsed
                    )
                self._producer = SerializingProducer(
                    {
                        **producer_config(self.settings, on_token_failure=self._on_token_failure),
                        "key.serializer": StringSerializer("utf_8"),
                        "value.serializer": self._serializer,
                        "error_cb": self._on_error,
                        "logger": logger,
                    }
                )
            return self._producer

    def _on_token_failure(self, message: str) -> None:
        self._token_error = self._set_error(message)

    def _on_error(self, error: KafkaError) -> None:
        """Client-level trouble (brokers down, TLS, authentication); logged once per change, not per retry."""
        if error.code() == KafkaError._ALL_BROKERS_DOWN and self._client_error:
            return  # a summary of the connection failures already reported: keep their reason
        message = self._redact(error.str())
        if message != self._client_error:
            logger.warning("kafka client error", extra={"kafka_error": message, "fatal": error.fatal()})
        self._client_error = self._last_error = message

    def _discard_producer(self, producer: SerializingProducer) -> None:
        """Drop a producer after failed deliveries: a fresh one has a new idempotence identity and
        no sequence gaps; what the old one still held stays in the outbox and is retried."""
        producer.purge()
        producer.flush(0)
        with self._lock:
            if self._producer is producer:
                self._producer = None

    def _create_producer(self) -> SerializingProducer | None:
        """The producer, or None when it cannot be created now (an MSK IAM token that cannot be
        signed, for one); the reason is kept for `/ready`."""
        try:
            return self._get_producer()
        except KafkaException as exc:
            # librdkafka only says the token did not arrive; the token callback said why.
            message = self._set_error(self._token_error or error_text(exc))
            logger.warning("kafka producer not created", extra={"error": message})
            return None

    async def initialise(self) -> list[str]:
        if self._producer is not None:
            return []
        return await anyio.to_thread.run_sync(self._initialise)

    def _initialise(self) -> list[str]:
        if self._create_producer() is None:
            return [f"Kafka producer for {self.broker_url} not created: {self._last_error}"]
        return [f"created Kafka producer for {self.broker_url}, topic {self.topic}"]

    async def publish(self, events: Sequence[OutboxEvent]) -> Delivery:
        # Abandoned if the relay is cancelled at shutdown: the thread finishes on its own, and events it
        # could not report stay leased in the outbox, published again after the lease (at least once).
        return await anyio.to_thread.run_sync(self._publish, events, abandon_on_cancel=True)

    def _publish(self, events: Sequence[OutboxEvent]) -> Delivery:
        producer = None if self._closed else self._create_producer()
        if producer is None:
            # Shutting down (no new producer that nobody would flush), or none can be created now:
            # the events wait in the outbox.
            return Delivery(failed=[event.event_id for event in events])
        reports: dict[str, KafkaError | None] = {}
        produced: list[str] = []
        delivery = Delivery()
        for index, event in enumerate(events):

            def on_delivery(error: KafkaError | None, _: Message, event_id: str = event.event_id) -> None:
                reports[event_id] = error

            try:
                producer.produce(
                    self.topic,
                    key=event.key,
                    value=event.payload,
                    # The write's trace context, for a consumer to continue (W3C Trace Context over Kafka).
                    headers=[(TRACEPARENT, event.traceparent)] if event.traceparent else None,
                    on_delivery=on_delivery,
                )
            except (BufferError, KafkaException) as exc:
                rejection = self._refused_for_good(exc)
                if rejection is not None:
                    delivery.rejected[event.event_id] = rejection
                    logger.warning(
                        "kafka refused an event for good", extra={"event_id": event.event_id, "error": rejection.reason}
                    )
                    continue
                # The rest would fail the same way (registry down, queue full): leave them for the retry.
                message = self._set_error(error_text(exc))
                logger.warning("kafka refused an event", extra={"event_id": event.event_id, "error": message})
                delivery.failed += [pending.event_id for pending in events[index:]]
                break
            produced.append(event.event_id)
            producer.poll(0)
        deadline = time.monotonic() + self.message_timeout_ms / 1000 + REPORT_MARGIN_SECONDS
        while len(reports) < len(produced) and time.monotonic() < deadline:
            producer.poll(POLL_SECONDS)
        errors: dict[str, KafkaError | None] = {}
        for event_id in produced:
            if event_id in reports and reports[event_id] is None:
                delivery.delivered.append(event_id)
            else:
                errors[event_id] = reports.get(event_id)
        for event_id, error in errors.items():
            if error is not None and error.code() in REFUSED_FOR_GOOD:
                delivery.rejected[event_id] = Rejection(self._reason(error.str()), permanent=True)
            elif error is not None and delivery.delivered and not is_pipeline_error(error):
                # Its batch got through, this event did not: its own failure, counted.
                delivery.rejected[event_id] = Rejection(self._reason(error.str()), permanent=False)
            else:
                delivery.failed.append(event_id)
        if delivery.failed:
            reported = {error.str() for error in errors.values() if error is not None}
            if reported:
                # A timed-out delivery says little on its own; the client's last error says why
                # (TLS handshake, authentication, brokers down).
                message = "; ".join(sorted(reported))
                if self._client_error and self._client_error not in message:
                    message += f" (last client error: {self._client_error})"
                self._set_error(message)
        elif delivery.delivered:
            self._last_error = self._client_error = self._token_error = None
        if delivery.failed or errors:
            self._discard_producer(producer)
        return delivery

    def _reason(self, text: str) -> str:
        return self._redact(f"Kafka refused the event: {text}")[:MAX_REASON_CHARS]

    def _refused_for_good(self, exc: BaseException) -> Rejection | None:
        """A refusal by `produce()` that is about this event alone and final, or None."""
        cause = getattr(exc, "exception", None)
        if isinstance(cause, PayloadRefused):
            return Rejection(self._reason(str(cause)), permanent=True)
        if isinstance(exc, KafkaException) and exc.args and isinstance(exc.args[0], KafkaError):
            if exc.args[0].code() in REFUSED_FOR_GOOD:
                return Rejection(self._reason(error_text(exc)), permanent=True)
        return None

    def state(self) -> dict[str, Any]:
        return {
            "sink": self.name,
            "ok": self._last_error is None,
            "topic": self.topic,
            "subject": self.subject,
            "security_protocol": self.settings.kafka_security_protocol,
            "sasl_mechanism": self.settings.kafka_sasl_mechanism or None,
            "schema_auto_register": self.settings.schema_auto_register,
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

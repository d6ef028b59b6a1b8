"""Feature-availability events: how one is built, and where pending ones are delivered.

Events are fixed at write time (their `event_id` too) and stored with the write; a sink only
delivers what the outbox relay hands it.
"""

import json
import logging
import random
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import fastavro
from fastavro.schema import SchemaParseException
from fastavro.types import Schema
from fastavro.validation import ValidationError, validate

from core.exceptions import ConfigurationError

SCHEMA_PATH = Path(__file__).resolve().parents[2] / "schemas" / "feature_trigger.avsc"
EVENT_TYPE = "feature_available"
DELETED_EVENT_TYPE = "feature_deleted"
"""A category's data removed (`DELETE /api/v1/items/{id}`); `features` names what it held."""
RESOURCE_TYPE = "feature"

logger = logging.getLogger("feature_store.events")


@dataclass(slots=True)
class OutboxEvent:
    """A feature-availability event waiting to be published."""

    event_id: str
    key: str
    payload: dict[str, Any]
    created_at_epoch: float
    attempts: int = 0
    traceparent: str | None = None
    """The W3C `traceparent` of the write that committed the event (tracing on), sent as a Kafka header."""


def new_event_id() -> str:
    """A UUID of version 7 (RFC 9562): the time in milliseconds, then 74 random bits. The outbox's index
    of event ids stays in time order, so a commit's new ids land on the same few index pages (and the
    relay's deletions of them too) instead of one random page each, as version 4 ids did, which makes
    commits and the relay's claims cheaper under a large backlog (figures: docs/performance.md, "Figures
    behind the code"). Python has no `uuid7` before 3.14. The random bits make ids unique, not secret:
    `random` (reseeded in every forked process) avoids a system call per id that `os.urandom` makes."""
    digits = ((time.time_ns() // 1_000_000).to_bytes(6, "big") + random.getrandbits(80).to_bytes(10, "big")).hex()
    variant = "89ab"[int(digits[16], 16) & 3]
    return f"{digits[:8]}-{digits[8:12]}-7{digits[13:16]}-{variant}{digits[17:20]}-{digits[20:]}"


def feature_available_event(
    *,
    entity_type: str,
    entity_value: str,
    category: str,
    features: Sequence[str],
    compute_id: str | None,
    timestamp_iso: str,
    timestamp_epoch: float,
    traceparent: str | None = None,
    event_type: str = EVENT_TYPE,
    actor: str | None = None,
) -> OutboxEvent:
    """The event announcing one category written (or, with `DELETED_EVENT_TYPE`, deleted), keyed per
    entity so a partition keeps its order; `actor`: who wrote or deleted it (None while keys are off).
    Its `version` is the store's to set, in the transaction that applies the change (`set_version`)."""
    event_id = new_event_id()
    payload = {
        "event_id": event_id,
        "event_type": event_type,
        "timestamp": timestamp_iso,
        "entity_type": entity_type,
        "entity_id": entity_value,
        "resource_type": RESOURCE_TYPE,
        "resource_name": category,
        "compute_id": compute_id or "",
        "features": list(features),
        "actor": actor,
        "version": None,
        "erased_versions": None,
    }
    return OutboxEvent(event_id, f"{entity_type}:{entity_value}", payload, timestamp_epoch, traceparent=traceparent)


def set_version(event: OutboxEvent, version: int) -> None:
    """The category's version after the change the event announces."""
    event.payload["version"] = version


def set_erased_versions(event: OutboxEvent, count: int) -> None:
    """A `feature_deleted` event's count of the category's kept versions (its history) the erasure removed."""
    event.payload["erased_versions"] = count


def ordering_key(event: OutboxEvent) -> str:
    """What the relay keeps in version order: one entity's category."""
    return f"{event.key}/{event.payload['resource_name']}"


@dataclass(frozen=True, slots=True)
class EventSchema:
    """The event's Avro schema: its text for the Schema Registry, parsed for local checks."""

    text: str
    parsed: Schema


def load_event_schema(path: Path = SCHEMA_PATH) -> EventSchema:
    """Parse the schema once and prove the events we build fit it, so a broken schema stops
    start-up instead of failing every publish later."""
    try:
        text = path.read_text()
        parsed = fastavro.parse_schema(json.loads(text))
        sample = feature_available_event(
            entity_type="bright_uid",
            entity_value="user-1",
            category="user_features",
            features=["age"],
            compute_id=None,
            timestamp_iso="2026-01-01T00:00:00.000000+00:00",
            timestamp_epoch=0.0,
        )
        validate(sample.payload, parsed, raise_errors=True)
    except (OSError, ValueError, SchemaParseException, ValidationError) as exc:
        raise ConfigurationError(f"event schema {path} cannot carry feature_available events: {exc}") from exc
    return EventSchema(text, parsed)


@dataclass(frozen=True, slots=True)
class Rejection:
    """Why one event failed on its own, while the pipeline around it worked."""

    reason: str
    permanent: bool
    """No retry can deliver it (larger than the broker accepts, not fitting the schema): it becomes a dead
    letter at once. Otherwise it is retried, and becomes one after `OUTBOX_MAX_ATTEMPTS` such failures."""


@dataclass(slots=True)
class Delivery:
    """What a sink managed: delivered events leave the outbox; `failed` ones failed with the whole pipeline
    (broker or registry unreachable, a batch timing out) and are retried without counting an attempt;
    `rejected` ones failed on their own, and count one."""

    delivered: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    rejected: dict[str, Rejection] = field(default_factory=dict)


class EventSink(Protocol):
    """Where the relay delivers events. Async: a sink whose client blocks (Kafka's producer waits for
    delivery reports) runs it in a worker thread, so the relay never blocks the event loop."""

    name: str

    async def initialise(self) -> list[str]: ...

    async def publish(self, events: Sequence[OutboxEvent]) -> Delivery: ...

    def state(self) -> dict[str, Any]: ...

    async def close(self, timeout: float) -> None: ...


class LogSink:
    """Delivers each event as one structured log line: the default when no Kafka is configured."""

    name = "log"

    async def initialise(self) -> list[str]:
        return []

    async def publish(self, events: Sequence[OutboxEvent]) -> Delivery:
        for event in events:
            line = {"event": event.payload, "event_key": event.key}
            if event.traceparent:
                line["traceparent"] = event.traceparent  # the write's trace, as Kafka's header would carry it
            logger.info(EVENT_TYPE, extra=line)
        return Delivery(delivered=[event.event_id for event in events])

    def state(self) -> dict[str, Any]:
        return {"sink": self.name, "ok": True}

    async def close(self, timeout: float) -> None:
        return None

"""Builders of what tests send: request bodies for the API, and category writes for a store directly."""

import time
from datetime import UTC, datetime
from typing import Any

from components.events.events import DELETED_EVENT_TYPE, OutboxEvent, feature_available_event
from components.features.store.base import TOMBSTONE, CategoryWrite, Erasure
from core.timeutils import epoch_to_iso


def write_body(
    entity_value: str = "user-123",
    categories: dict[str, dict[str, Any]] | None = None,
    *,
    source: str = "prediction_service",
    entity_type: str = "bright_uid",
    **meta: Any,
) -> dict[str, Any]:
    categories = categories or {"user_features": {"age": 30, "income": 60000, "city": "SF"}}
    return {
        "metadata": {"source": source, "compute_id": "compute-123", **meta},
        "data": {
            "entity_type": entity_type,
            "entity_value": entity_value,
            "feature_list": [{"category": name, "features": features} for name, features in categories.items()],
        },
    }


def read_body(entity_value: str, *feature_list: str, entity_type: str = "bright_uid") -> dict[str, Any]:
    return {
        "meta": {"source": "api"},
        "data": {"entity_type": entity_type, "entity_value": entity_value, "feature_list": list(feature_list)},
    }


NOW = "2026-01-01T00:00:00.000000+00:00"
"""Write time and event time of `make_write` unless told otherwise; `LATER` is one second after."""
LATER = "2026-01-01T00:00:01.000000+00:00"


def make_write(
    category: str,
    data: dict[str, Any],
    *,
    event_time: str = NOW,
    updated_at: str = NOW,
    expires_at: float | None = None,
    event_id: str | None = None,
) -> CategoryWrite:
    """One category of entity `bright_uid` `user-1` with its event, shaped as the flows hand it to a store."""
    event = feature_available_event(
        entity_type="bright_uid",
        entity_value="user-1",
        category=category,
        features=list(data),
        compute_id="job-1",
        timestamp_iso=updated_at,
        timestamp_epoch=time.time(),
    )
    if event_id is not None:
        event = type(event)(event_id, event.key, {**event.payload, "event_id": event_id}, event.created_at_epoch)
    metadata = {
        "updated_at": updated_at,
        "source": "prediction_service",
        "compute_id": "job-1",
        "ttl": None,
        "expires_at": epoch_to_iso(expires_at) if expires_at else None,
        "event_time": event_time,
    }
    return CategoryWrite(category, data, metadata, event_time, expires_at, event)


def make_erasure(*categories: str, event_time: str = LATER, expires_at: float | None = None) -> Erasure:
    """A deletion of entity `bright_uid` `user-1`'s categories (every one when none is named), as the flows
    hand it to a store."""

    def event(category: str, features: list[str]) -> OutboxEvent:
        return feature_available_event(
            entity_type="bright_uid",
            entity_value="user-1",
            category=category,
            features=sorted(features),
            compute_id=None,
            timestamp_iso=LATER,
            timestamp_epoch=time.time(),
            event_type=DELETED_EVENT_TYPE,
        )

    expires = expires_at if expires_at is not None else time.time() + 3600
    metadata = {"updated_at": LATER, "source": None, "event_time": event_time, TOMBSTONE: LATER}
    return Erasure(list(categories) or None, event_time, metadata, expires, event)


CLOCK_START = datetime(2026, 3, 1, 12, 0, 0, 250_000, tzinfo=UTC)
"""Where the `clock` fixture of the API suite starts."""


def stop_clock(client: Any) -> float:
    """Pin the app's clock at the current time, so that two reads of the same data answer the same
    `age_seconds`; returns that time (epoch seconds)."""
    now = time.time()
    client.app.state.runtime.flows.clock = lambda: now
    return now

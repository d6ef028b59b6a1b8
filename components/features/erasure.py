"""What a deletion stores: per category deleted, a tombstone and a `feature_deleted` event."""

from collections.abc import Sequence
from datetime import datetime, timedelta

from components.events.events import DELETED_EVENT_TYPE, OutboxEvent, feature_available_event
from components.features.store.base import ERASED_BY, ERASURE_REQUEST_ID, TOMBSTONE, Erasure, Idempotency
from core.request_context import request_id_var
from core.settings import EntityType
from core.timeutils import isoformat
from core.tracing import tracing


def tombstones(
    entity_type: EntityType,
    entity_value: str,
    categories: Sequence[str] | None,
    source: str | None,
    event_time: datetime | None,
    now: datetime,
    tombstone_seconds: int,
    actor: str | None = None,
    idempotency: Idempotency | None = None,
) -> Erasure:
    """The deletion of `categories` (None: every category) at `now`, ordered by `event_time` (default:
    `now`). Each tombstone has no features, is marked `TOMBSTONE` and expires `tombstone_seconds` from
    now, and records who asked (`actor`) and the request that did it: an erasure is a privacy request
    whose trail must outlive the data. Each event names the features the category held, sorted."""
    now_iso = isoformat(now)
    expires = now + timedelta(seconds=tombstone_seconds)
    event_time_iso = isoformat(event_time) if event_time is not None else now_iso
    metadata = {
        "updated_at": now_iso,
        "source": source,
        "compute_id": None,
        "ttl": None,
        "expires_at": isoformat(expires),
        "event_time": event_time_iso,
        "written_by": actor,
        ERASED_BY: actor,
        ERASURE_REQUEST_ID: request_id_var.get(),
        TOMBSTONE: now_iso,
    }

    traceparent = tracing.traceparent()  # taken here, in the request's context, not where the store calls back

    def event(category: str, features: list[str]) -> OutboxEvent:
        return feature_available_event(
            entity_type=entity_type.name,
            entity_value=entity_value,
            category=category,
            features=sorted(features),
            compute_id=None,
            timestamp_iso=now_iso,
            timestamp_epoch=now.timestamp(),
            event_type=DELETED_EVENT_TYPE,
            traceparent=traceparent,
            actor=actor,
        )

    return Erasure(categories, event_time_iso, metadata, expires.timestamp(), event, idempotency)

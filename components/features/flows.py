"""Business logic around the store: freshness, projection, metadata, and a write with its events."""

import time
from collections.abc import Callable, Mapping, Sequence
from datetime import UTC, datetime, timedelta
from functools import lru_cache

from components.events.events import feature_available_event
from components.events.outbox import OutboxRelay
from components.features.erasure import tombstones
from components.features.records import (
    CategoryInput,
    DeleteOutcome,
    EntityFeatures,
    EntityInput,
    FeatureSelection,
    InspectedCategory,
    WriteOutcome,
)
from components.features.store.base import (
    CategoryWrite,
    EntityWrite,
    Idempotency,
    KeepHistory,
    OnlineStore,
    StoredCategory,
)
from core.exceptions import FeatureStoreError
from core.metrics import metrics
from core.request_context import idempotency_var
from core.settings import CategoryHistory, EntityType
from core.timeutils import isoformat
from core.tracing import tracing


@lru_cache(maxsize=4096)
def _epoch(timestamp: str) -> float:
    """An ISO 8601 time as epoch seconds. Cached: the categories of one write, and every entity of a bulk
    write, carry the same time."""
    return datetime.fromisoformat(timestamp).timestamp()


def _age_seconds(stored: StoredCategory, now: float) -> float | None:
    """Seconds since the data's `event_time` (the write time when none was given); None if unknown."""
    event_time = stored.event_time
    try:
        return now - _epoch(event_time) if event_time is not None else None
    except ValueError:
        return None


def _served(stored: StoredCategory | None, now: float, max_age: float | None = None) -> StoredCategory | None:
    """The category as read, `age_seconds` added to its metadata; None when absent, deleted, expired, or
    older than the read allows (`max_age_seconds`)."""
    if stored is None or stored.erased:
        return None
    expires = stored.expires_at_epoch
    if expires is not None and now >= expires:
        return None
    age = _age_seconds(stored, now)
    if max_age is not None and (age is None or age > max_age):
        return None
    stored.set_age(round(age, 6) if age is not None else None)
    return stored


def _project(
    stored: Mapping[str, StoredCategory], selection: FeatureSelection, now: float, max_age: float | None = None
) -> EntityFeatures:
    """What a read serves of one entity: whole categories as stored, named features picked out of theirs."""
    items: dict[str, StoredCategory] = {}
    unavailable = list(selection.not_whitelisted)
    missing_features: list[str] = []
    for category, names in selection.wanted.items():
        found = _served(stored.get(category), now, max_age)
        if found is None:
            unavailable.append(category)
        elif names is None:
            items[category] = found
        else:
            data = found.data
            if len(data) <= len(names) and names.issuperset(data):
                items[category] = found  # every stored feature named: served whole, as stored
                served = len(data)
            else:
                picked = {name: data[name] for name in names if name in data}
                items[category] = found.with_data(picked)
                served = len(picked)
            if served < len(names):
                missing_features.extend(f"{category}:{name}" for name in names if name not in data)
    unavailable.sort()
    missing_features.sort()
    return EntityFeatures(items, unavailable, missing_features)


def _report_ages(entity_type: str, results: Sequence[EntityFeatures]) -> None:
    """`read.feature_age_seconds` for every category served: how stale what models read is. Called only
    while metrics are on; categories come from the whitelist, so the tags stay a bounded set."""
    samples = [
        (age, {"category": category, "entity_type": entity_type})
        for result in results
        for category, found in result.items.items()
        if (age := found.age_seconds) is not None
    ]
    metrics.observe_many("read.feature_age_seconds", samples)


def _inspected(stored: StoredCategory | None, now: float, max_age: int | None) -> InspectedCategory:
    """The state a person debugging a read wants: why a category is or is not served, and what it holds."""
    if stored is None:
        return InspectedCategory("absent", None, max_age)
    age = _age_seconds(stored, now)
    stored.set_age(round(age, 6) if age is not None else None)
    if stored.erased:
        return InspectedCategory("erased", stored, max_age)
    if stored.expires_at_epoch is not None and now >= stored.expires_at_epoch:
        return InspectedCategory("expired", stored, max_age)
    if max_age is not None and (age is None or age > max_age):
        return InspectedCategory("stale", stored, max_age)
    return InspectedCategory("fresh", stored, max_age)


class FeatureFlows:
    def __init__(
        self,
        store: OnlineStore,
        relay: OutboxRelay,
        default_ttl: Mapping[str, int],
        clock: Callable[[], float] = time.time,
        tombstone_seconds: int = 7 * 24 * 3600,
        idempotency_seconds: int = 24 * 3600,
        history: Mapping[str, CategoryHistory] | None = None,
    ) -> None:
        """`clock` (epoch seconds) stamps writes and decides freshness; tests move it. `tombstone_seconds`:
        how long a deleted category is remembered; `idempotency_seconds`, an `Idempotency-Key`; `history`, the
        categories that keep the values their writes replace."""
        self.clock = clock
        self.tombstone_seconds = tombstone_seconds
        self.idempotency_seconds = idempotency_seconds
        self.store = store
        self.relay = relay
        self.default_ttl = default_ttl
        self.history: Mapping[str, CategoryHistory] = history or {}

    async def read_category(
        self, entity_type: EntityType, entity_value: str, category: str, max_age: float | None = None
    ) -> StoredCategory | None:
        with metrics.timer("read.single_item", entity_type=entity_type.name):
            stored = (await self.store.read(entity_type, entity_value, {category: None})).get(category)
            found = _served(stored, self.clock(), max_age)
            if found is not None:
                if metrics.enabled:
                    _report_ages(entity_type.name, [EntityFeatures(items={category: found})])
                return found
        metrics.incr("read.unavailable_category", entity_type=entity_type.name)
        return None

    async def inspect(
        self, entity_type: EntityType, entity_value: str, max_ages: Mapping[str, int | None] | None
    ) -> dict[str, InspectedCategory]:
        """Every category of `max_ages` (each with the registry's freshness bound) in its state; None: every
        category stored for the entity, with no bound. No operation metric: a person's lookup, not a model's
        read, so it stays out of the read latencies."""
        if max_ages is None:
            stored = await self.store.read_entity(entity_type, entity_value)
            max_ages = dict.fromkeys(sorted(stored))
        else:
            stored = await self.store.read(entity_type, entity_value, dict.fromkeys(max_ages)) if max_ages else {}
        now = self.clock()
        return {category: _inspected(stored.get(category), now, max_age) for category, max_age in max_ages.items()}

    async def read_features(
        self, entity_type: EntityType, entity_value: str, selection: FeatureSelection, max_age: float | None = None
    ) -> EntityFeatures:
        with metrics.timer("read.multi_category", entity_type=entity_type.name):
            stored = await self.store.read(entity_type, entity_value, selection.wanted) if selection.wanted else {}
            result = _project(stored, selection, self.clock(), max_age)
        if metrics.enabled:
            _report_ages(entity_type.name, [result])
        if result.unavailable_categories:
            metrics.incr("read.unavailable_category", len(result.unavailable_categories), entity_type=entity_type.name)
        return result

    async def read_batch(
        self,
        entity_type: EntityType,
        entity_values: Sequence[str],
        selection: FeatureSelection,
        max_age: float | None = None,
    ) -> list[EntityFeatures]:
        wanted = selection.wanted
        with metrics.timer("read.batch", entity_type=entity_type.name):
            batch = await self.store.read_batch(entity_type, entity_values, wanted) if wanted else None
            now = self.clock()
            results = []
            for value in entity_values:
                if batch is not None and value in batch.failed:
                    results.append(
                        EntityFeatures(
                            unavailable_categories=sorted({*wanted, *selection.not_whitelisted}),
                            error="store_unavailable",
                        )
                    )
                    continue
                stored = batch.found.get(value, {}) if batch is not None else {}
                results.append(_project(stored, selection, now, max_age))
        if metrics.enabled:
            _report_ages(entity_type.name, results)
        unavailable = sum(len(result.unavailable_categories) for result in results)
        if unavailable:
            metrics.incr("read.unavailable_category", unavailable, entity_type=entity_type.name)
        return results

    @staticmethod
    def _observe_lag(entity_type: EntityType, event_time: datetime | None, now: datetime) -> None:
        """How late the data arrives; a write without event_time is its own event time (no lag)."""
        if event_time is not None and metrics.enabled:
            lag = max(0.0, now.timestamp() - event_time.timestamp())
            metrics.observe("write.event_lag_seconds", lag, entity_type=entity_type.name)

    def _category_writes(
        self, entity_type: EntityType, entity: EntityInput, now: datetime, now_iso: str
    ) -> list[CategoryWrite]:
        """Each category's replacement with its stamped metadata and its `feature_available` event;
        `now_iso` is `now` formatted (once per request, not per entity)."""
        entity_value, provenance = entity.entity_value, entity.provenance
        ttl, compute_id = provenance.ttl, provenance.compute_id
        event_time_iso = isoformat(provenance.event_time) if provenance.event_time is not None else now_iso
        now_epoch = now.timestamp()
        traceparent = tracing.traceparent()  # None while tracing is off
        history = self.history
        writes = []
        for item in entity.categories:
            category, features = item.category, item.features
            category_ttl = ttl if ttl is not None else self.default_ttl.get(category)
            expires = now + timedelta(seconds=category_ttl) if category_ttl is not None else None
            metadata = {
                "updated_at": now_iso,
                "source": provenance.source,
                "compute_id": compute_id,
                "ttl": category_ttl,
                "expires_at": isoformat(expires) if expires is not None else None,
                "event_time": event_time_iso,
                "written_by": provenance.actor,
            }
            event = feature_available_event(
                entity_type=entity_type.name,
                entity_value=entity_value,
                category=category,
                features=list(features),
                compute_id=compute_id,
                timestamp_iso=now_iso,
                timestamp_epoch=now_epoch,
                traceparent=traceparent,
                actor=provenance.actor,
            )
            writes.append(
                CategoryWrite(
                    category=category,
                    data=features,
                    metadata=metadata,
                    event_time=event_time_iso,
                    expires_at_epoch=expires.timestamp() if expires is not None else None,
                    event=event,
                    history=_keep(history[category], now_epoch) if category in history else None,
                )
            )
        return writes

    def _idempotency(self, actor: str | None, entity_value: str | None = None) -> Idempotency | None:
        """The request's `Idempotency-Key` as the store keeps it: one caller's keys never meet another's, and
        each entity of a bulk write has its own record (it commits on its own)."""
        given = idempotency_var.get()
        if given is None:
            return None
        key, fingerprint = given
        scoped = f"{actor or ''} {key}" if entity_value is None else f"{actor or ''} {key} {entity_value}"
        # The real clock, as the stores' expiry (DynamoDB's TTL) reads it, not the one tests move.
        return Idempotency(scoped, fingerprint, time.time() + self.idempotency_seconds)

    async def write(self, entity_type: EntityType, entity: EntityInput) -> WriteOutcome:
        """Stamp metadata, build one event per category and commit them all atomically; then wake the relay.
        A request repeated under its `Idempotency-Key` answers its first outcome."""
        with metrics.timer("write.multi_category", entity_type=entity_type.name):
            now = datetime.fromtimestamp(self.clock(), UTC)
            now_iso = isoformat(now)
            writes = self._category_writes(entity_type, entity, now, now_iso)
            record = self._idempotency(entity.provenance.actor)
            skipped = await self.store.write(entity_type, entity.entity_value, writes, now_iso, record)
        if record is not None and record.replayed is not None:
            return _outcome(entity.categories, record.replayed["result"], record.replayed["timestamp"])
        if len(skipped) < len(writes):
            self.relay.notify()
            self._observe_lag(entity_type, entity.provenance.event_time, now)
        return _outcome(entity.categories, skipped, now_iso)

    async def write_many(
        self, entity_type: EntityType, entities: Sequence[EntityInput]
    ) -> list[WriteOutcome | FeatureStoreError]:
        """`write` for each entity, each atomic on its own, handed to the store together so it can commit
        them at once; per entity, in order, its outcome or the error that kept all of it out."""
        with metrics.timer("write.bulk", entity_type=entity_type.name):
            now = datetime.fromtimestamp(self.clock(), UTC)
            now_iso = isoformat(now)
            writes = [
                EntityWrite(
                    entity.entity_value,
                    self._category_writes(entity_type, entity, now, now_iso),
                    self._idempotency(entity.provenance.actor, entity.entity_value),
                )
                for entity in entities
            ]
            results = await self.store.write_many(entity_type, writes, now_iso) if writes else []
        outcomes: list[WriteOutcome | FeatureStoreError] = [
            result if isinstance(result, FeatureStoreError) else _replayed_or(entity, write, result, now_iso)
            for entity, write, result in zip(entities, writes, results, strict=True)
        ]
        if any(isinstance(outcome, WriteOutcome) and outcome.categories_updated for outcome in outcomes):
            self.relay.notify()
            for entity, outcome in zip(entities, outcomes, strict=True):
                if isinstance(outcome, WriteOutcome) and outcome.categories_updated:
                    self._observe_lag(entity_type, entity.provenance.event_time, now)
        failed = sum(isinstance(outcome, FeatureStoreError) for outcome in outcomes)
        metrics.incr("write.bulk.entities", len(outcomes) - failed, entity_type=entity_type.name)
        if failed:
            metrics.incr("write.bulk.failed", failed, entity_type=entity_type.name)
        return outcomes

    async def delete(
        self,
        entity_type: EntityType,
        entity_value: str,
        categories: Sequence[str] | None,
        *,
        source: str | None,
        event_time: datetime | None,
        actor: str | None = None,
    ) -> DeleteOutcome:
        """Replace the categories' data with tombstones kept for `tombstone_seconds`, each with a
        `feature_deleted` event naming the features removed and who asked (`actor`); then wake the relay."""
        with metrics.timer("delete", entity_type=entity_type.name):
            now = datetime.fromtimestamp(self.clock(), UTC)
            erasure = tombstones(
                entity_type,
                entity_value,
                categories,
                source,
                event_time,
                now,
                self.tombstone_seconds,
                actor,
                self._idempotency(actor),
            )
            deleted = await self.store.delete(entity_type, entity_value, erasure)
        replayed = erasure.idempotency.replayed if erasure.idempotency is not None else None
        if replayed is not None:
            return DeleteOutcome(replayed["result"], replayed["timestamp"])
        if deleted:
            self.relay.notify()
            metrics.incr("delete.categories", len(deleted), entity_type=entity_type.name)
        return DeleteOutcome(deleted, isoformat(now))


def _keep(policy: CategoryHistory, now_epoch: float) -> KeepHistory:
    """What a write of a category with history keeps of the value it replaces, and until when."""
    return KeepHistory(policy.versions, now_epoch + policy.retention_seconds, now_epoch)


def _replayed_or(entity: EntityInput, write: EntityWrite, skipped: list[str], now_iso: str) -> WriteOutcome:
    """A bulk entity's outcome: its first one when its `Idempotency-Key` was used before."""
    replayed = write.idempotency.replayed if write.idempotency is not None else None
    if replayed is not None:
        return _outcome(entity.categories, replayed["result"], replayed["timestamp"])
    return _outcome(entity.categories, skipped, now_iso)


def _outcome(categories: Sequence[CategoryInput], skipped: list[str], timestamp: str) -> WriteOutcome:
    skipped_set = set(skipped)
    return WriteOutcome(
        categories_updated=[item.category for item in categories if item.category not in skipped_set],
        categories_skipped=skipped,
        timestamp=timestamp,
    )

"""A category's history at work (docs/history.md): reads `as_of` a past time, the kept versions listed, and a
compute job's writes rolled back. Reads without `as_of` never come here: they cost what they did."""

import asyncio
from collections.abc import Mapping, Sequence
from datetime import UTC, datetime, timedelta

from components.events.events import feature_available_event
from components.features.flows import FeatureFlows, _epoch, _keep, _project
from components.features.records import EntityFeatures, FeatureSelection, HistoryPage, Rollback
from components.features.store.base import (
    BatchRead,
    CategoryWrite,
    EntityWrite,
    KeptVersion,
    StoredCategory,
)
from core.exceptions import FeatureStoreError, StoreUnavailable
from core.settings import CategoryHistory, EntityType
from core.timeutils import isoformat
from core.tracing import tracing

NO_HISTORY = "no_history"
"""A category that keeps no history, whose value is newer than the time asked."""
OLDER_THAN_HISTORY = "older_than_history"
"""A category whose every kept version is newer than the time asked (or forgotten)."""
HISTORY_READS_IN_FLIGHT = 8
"""Entities of a batch read `as_of` a time whose history is read at once (one query each on DynamoDB)."""
AS_OF_RESOLVED = "as_of_resolved"
"""The metadata field of a value read `as_of` a time: the event time of the version served."""


def _event_epoch(stored: StoredCategory) -> float:
    return _epoch(stored.event_time) if stored.event_time is not None else float("-inf")


def _latest_at(candidates: Sequence[StoredCategory], at: float) -> StoredCategory | None:
    """The value whose event time is the latest at or before `at` (of two with the same, the later version)."""
    best: StoredCategory | None = None
    best_key = (float("-inf"), -1)
    for candidate in candidates:
        event_epoch = _event_epoch(candidate)
        key = (event_epoch, candidate.metadata.get("version") or 0)
        if event_epoch <= at and key > best_key:
            best, best_key = candidate, key
    return best


def usable(kept: Sequence[KeptVersion], policy: CategoryHistory | None, now: float) -> list[KeptVersion]:
    """The kept versions still within their retention, at most the registry's count (a count lowered since they
    were kept), newest first."""
    alive = [version for version in kept if version.kept_until > now]
    return alive[: policy.versions] if policy is not None else alive


def _as_served(version: KeptVersion) -> StoredCategory:
    """A kept version as a read serves it: its own TTL, from its metadata, judged at the time asked."""
    stored = version.stored
    expires_at = stored.metadata.get("expires_at")
    stored.expires_at_epoch = _epoch(expires_at) if isinstance(expires_at, str) else None
    return stored


class HistoryFlows:
    """Works on the store, clock, relay and history policies of the `FeatureFlows` it is given (a reloaded
    registry's policies included)."""

    def __init__(self, flows: FeatureFlows) -> None:
        self.flows = flows

    async def read(
        self,
        entity_type: EntityType,
        entity_values: Sequence[str],
        selection: FeatureSelection,
        max_age: float | None,
        as_of: datetime,
    ) -> list[EntityFeatures]:
        """Each entity's wanted categories as they were at `as_of`: the current value when its event time is at or
        before it, else the latest kept version that is; a category with neither is unavailable, with its reason.
        Ages, TTLs and `max_age` are judged at `as_of` (or now, for a time still to come)."""
        flows, wanted = self.flows, selection.wanted
        now = flows.clock()
        at = min((as_of if as_of.tzinfo is not None else as_of.replace(tzinfo=UTC)).timestamp(), now)
        found: Mapping[str, Mapping[str, StoredCategory]] = {}
        failed: frozenset[str] = frozenset()
        if wanted and len(entity_values) == 1:
            found = {entity_values[0]: await flows.store.read(entity_type, entity_values[0], wanted)}
        elif wanted:
            batch = await flows.store.read_batch(entity_type, entity_values, wanted)
            found, failed = batch.found, batch.failed
        in_flight = asyncio.Semaphore(HISTORY_READS_IN_FLIGHT)

        async def entity(value: str) -> EntityFeatures:
            if value in failed:
                unavailable = sorted({*wanted, *selection.not_whitelisted})
                return EntityFeatures(unavailable_categories=unavailable, error="store_unavailable")
            async with in_flight:
                return await self._entity_at(entity_type, value, found.get(value, {}), selection, max_age, at, now)

        return list(await asyncio.gather(*(entity(value) for value in entity_values)))

    async def _entity_at(
        self,
        entity_type: EntityType,
        entity_value: str,
        stored: Mapping[str, StoredCategory],
        selection: FeatureSelection,
        max_age: float | None,
        at: float,
        now: float,
    ) -> EntityFeatures:
        policies = self.flows.history
        older = [
            category
            for category, current in stored.items()
            if category in selection.wanted and not current.erased and _event_epoch(current) > at
        ]
        looked_up = [category for category in older if category in policies]
        kept = await self.flows.store.read_history(entity_type, entity_value, looked_up) if looked_up else {}
        chosen = {category: current for category, current in stored.items() if category not in older}
        reasons: dict[str, str] = {}
        for category in older:
            versions = usable(kept.get(category, []), policies.get(category), now)
            value = _latest_at([_as_served(version) for version in versions], at)
            if value is not None:
                # Kept versions do not keep `created_at`: the category's, which an erasure would have reset (and
                # the history with it), is the current value's.
                value.metadata.setdefault("created_at", stored[category].metadata.get("created_at"))
                chosen[category] = value
            else:
                reasons[category] = OLDER_THAN_HISTORY if category in policies else NO_HISTORY
        result = _project(chosen, selection, at, max_age)
        for served in result.items.values():
            served.metadata[AS_OF_RESOLVED] = served.metadata.get("event_time")
        result.unavailable_reasons = reasons
        return result

    async def versions(
        self, entity_type: EntityType, entity_value: str, category: str, limit: int, before: int | None
    ) -> HistoryPage:
        """The category's kept versions below version `before` (all when None), newest first, `limit` of them."""
        policy = self.flows.history.get(category)
        kept = (await self.flows.store.read_history(entity_type, entity_value, [category])).get(category, [])
        alive = usable(kept, policy, self.flows.clock())
        if before is not None:
            alive = [version for version in alive if version.version < before]
        page = alive[:limit]
        next_cursor = page[-1].version if len(alive) > limit else None
        return HistoryPage(page, next_cursor, policy)

    async def rollback(
        self,
        entity_type: EntityType,
        entity_values: Sequence[str],
        compute_id: str,
        categories: Sequence[str],
        actor: str | None,
    ) -> list[Rollback]:
        """For each entity, every category among `categories` whose current value `compute_id` wrote gets back its
        latest kept version another job wrote: a write like any other (one version on, its event, the undone
        value kept in history), applied only over the version read. The others are left alone and reported."""
        flows = self.flows
        now = datetime.fromtimestamp(flows.clock(), UTC)
        now_iso = isoformat(now)
        values = list(dict.fromkeys(entity_values))
        batch = (
            await flows.store.read_batch(entity_type, values, dict.fromkeys(categories)) if categories else BatchRead()
        )
        plans: list[tuple[str, list[tuple[CategoryWrite, int]], list[tuple[str, str]]]] = []
        for value in values:
            if value not in batch.failed:
                stored = batch.found.get(value, {})
                plans.append((value, *await self._restores(entity_type, value, stored, compute_id, now, actor)))
        writes = [EntityWrite(value, [write for write, _ in restores]) for value, restores, _ in plans if restores]
        results = iter(await flows.store.write_many(entity_type, writes, now_iso) if writes else [])
        outcomes: dict[str, Rollback] = {}
        for value, restores, untouched in plans:
            result: list[str] | FeatureStoreError = next(results) if restores else []
            if isinstance(result, FeatureStoreError):
                outcomes[value] = Rollback(value, [], untouched, result)
                continue
            skipped = set(result)
            restored = [
                (write.category, write.event.payload["version"], write.replaces_version or 0, kept_version)
                for write, kept_version in restores
                if write.category not in skipped
            ]
            changed = [(write.category, "changed") for write, _ in restores if write.category in skipped]
            outcomes[value] = Rollback(value, restored, sorted([*untouched, *changed]))
        if any(outcome.restored for outcome in outcomes.values()):
            flows.relay.notify()
        unread = StoreUnavailable("the store could not read this entity in time", retry_after=1)
        return [outcomes.get(value) or Rollback(value, [], [], unread) for value in values]

    async def _restores(
        self,
        entity_type: EntityType,
        entity_value: str,
        stored: Mapping[str, StoredCategory],
        compute_id: str,
        now: datetime,
        actor: str | None,
    ) -> tuple[list[tuple[CategoryWrite, int]], list[tuple[str, str]]]:
        """One entity's restores with the kept version each restores, and the categories left alone with their
        reason."""
        policies = self.flows.history
        untouched: list[tuple[str, str]] = []
        targets: dict[str, StoredCategory] = {}
        for category, current in sorted(stored.items()):
            if current.erased:
                continue
            if current.metadata.get("compute_id") != compute_id:
                untouched.append((category, "written_by_other"))
            elif category not in policies:
                untouched.append((category, NO_HISTORY))
            else:
                targets[category] = current
        kept = await self.flows.store.read_history(entity_type, entity_value, list(targets)) if targets else {}
        restores: list[tuple[CategoryWrite, int]] = []
        for category, current in targets.items():
            version = current.metadata.get("version") or 0
            earlier = [
                kept_version
                for kept_version in usable(kept.get(category, []), policies[category], now.timestamp())
                if kept_version.version < version and kept_version.stored.metadata.get("compute_id") != compute_id
            ]
            if not earlier:
                untouched.append((category, "no_earlier_version"))
                continue
            restore = self._restore(entity_type, entity_value, category, earlier[0], version, now, actor)
            restores.append((restore, earlier[0].version))
        return restores, untouched

    def _restore(
        self,
        entity_type: EntityType,
        entity_value: str,
        category: str,
        kept: KeptVersion,
        over_version: int,
        now: datetime,
        actor: str | None,
    ) -> CategoryWrite:
        """The write putting `kept` back: its features, source, compute id, TTL (from now) and event time."""
        old = kept.stored.metadata
        data = kept.stored.data
        now_iso = isoformat(now)
        ttl = old.get("ttl")
        expires = now + timedelta(seconds=ttl) if isinstance(ttl, int) else None
        metadata = {
            "updated_at": now_iso,
            "source": old.get("source"),
            "compute_id": old.get("compute_id"),
            "ttl": ttl,
            "expires_at": isoformat(expires) if expires is not None else None,
            "event_time": old["event_time"],
            "written_by": actor,
        }
        event = feature_available_event(
            entity_type=entity_type.name,
            entity_value=entity_value,
            category=category,
            features=list(data),
            compute_id=old.get("compute_id"),
            timestamp_iso=now_iso,
            timestamp_epoch=now.timestamp(),
            traceparent=tracing.traceparent(),
            actor=actor,
        )
        return CategoryWrite(
            category=category,
            data=data,
            metadata=metadata,
            event_time=old["event_time"],
            expires_at_epoch=expires.timestamp() if expires is not None else None,
            event=event,
            history=_keep(self.flows.history[category], now.timestamp()),
            replaces_version=over_version,
        )

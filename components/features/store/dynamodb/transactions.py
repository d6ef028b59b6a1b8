"""Category writes as DynamoDB transactions: one entity's write (`EntityCommit`), and a bulk write's
entities packed several to a transaction (`commit_packed`).

An entity's write is one conditional update per category plus one outbox put per category, committed
together. Which update form fits (the item exists or not) and whether a category is stale is learnt
from a cancelled transaction's reasons, one per action (see `items.upsert`), and the transaction is
sent again without what was learnt to be stale.

A bulk write packs entities into transactions of up to 100 actions and 4 MB: a transaction carries
each entity whole, so each entity is still all or nothing, and the reasons of a cancelled one say
which entity (and which of its categories) stopped it; the others go again unchanged. Packing ten
5-category entities to a transaction cut the service's CPU per entity by ~3x against a transaction
each (fewer requests to build, sign and send) and the DynamoDB API's work per entity by a quarter.
"""

import asyncio
import time
import uuid
from collections.abc import Sequence
from typing import Any

from components.features.store.base import CategoryWrite
from components.features.store.dynamodb import items
from components.features.store.dynamodb.errors import TRANSACTION_CANCELLED, cancellation, translate_error
from components.features.store.dynamodb.items import CREATE, EVENT_TIME, UPDATE
from components.features.store.dynamodb.outbox import backoff
from core.dynamodb_client import DynamoDBClient, DynamoDBError, DynamoDBServiceError
from core.dynamodb_client.attributes import encode, encode_map
from core.exceptions import FeatureStoreError, PayloadTooLarge, StoreUnavailable
from core.metrics import metrics
from core.settings import EntityType
from core.tracing import tracing

MAX_TRANSACTION_ACTIONS = 100
MAX_WRITE_ATTEMPTS = 8
"""Transactions a write may send that learn nothing new (conflicts with concurrent writes)."""
KEEPS_CONFLICTING = "the write kept conflicting with concurrent writes to the same items"


class EntityCommit:
    """One entity's categories on their way through the transaction protocol: what is still to write,
    in which update form, and which categories turned out stale (skipped)."""

    __slots__ = ("entity_type", "entity_value", "writes", "now_iso", "encoded", "modes", "pending", "skipped", "size")

    def __init__(
        self, entity_type: EntityType, entity_value: str, writes: Sequence[CategoryWrite], now_iso: str
    ) -> None:
        """Raise `PayloadTooLarge`, before anything is sent, for an item over DynamoDB's 400 KB or an
        entity over a transaction's 4 MB."""
        self.entity_type = entity_type
        self.entity_value = entity_value
        self.writes = writes
        self.now_iso = now_iso
        self.encoded = {write.category: (encode(write.data), encode_map(write.metadata)) for write in writes}
        self.size = self._checked_size()
        self.modes = dict.fromkeys(self.encoded, UPDATE)
        self.pending = list(writes)
        self.skipped: set[str] = set()

    def _checked_size(self) -> int:
        """The entity's bytes as DynamoDB counts them: an estimate first, exact when the estimate is near a limit."""
        total = 0
        for exact in (False, True):
            sizes = {
                write.category: items.write_size(
                    self.entity_type, self.entity_value, write, self.encoded[write.category], self.now_iso, exact
                )
                for write in self.writes
            }
            for category, size in sizes.items():
                if size > items.MAX_ITEM_BYTES:
                    raise PayloadTooLarge(
                        f"category {category!r} would be a {size}-byte item; "
                        f"DynamoDB stores at most {items.MAX_ITEM_BYTES} bytes per item"
                    )
            total = sum(sizes.values())
            if total <= items.MAX_TRANSACTION_BYTES:
                return total
        raise PayloadTooLarge(
            f"the write would be {total} bytes; DynamoDB commits at most {items.MAX_TRANSACTION_BYTES} at once"
        )

    @property
    def action_count(self) -> int:
        return 2 * len(self.pending)

    def actions(self, outbox_table: str) -> list[dict[str, Any]]:
        """The pending categories' updates, then their events' puts."""
        entity_type, entity_value, now_iso = self.entity_type, self.entity_value, self.now_iso
        actions = [
            items.upsert(
                entity_type, entity_value, write, *self.encoded[write.category], self.modes[write.category], now_iso
            )
            for write in self.pending
        ]
        actions += [
            {"Put": {"TableName": outbox_table, "Item": items.outbox_item(write.event)}} for write in self.pending
        ]
        return actions

    def cancelled(self, reasons: Sequence[dict[str, Any]]) -> bool:
        """Learn from this entity's share of a cancelled transaction's reasons (its actions' order): drop
        stale categories, switch the update form of those whose existence was guessed wrong. Return
        whether a conflict calls for a pause before trying again; raise the service's error for a
        reason that dooms the entity's write (throttling, validation)."""
        conflicted = False
        retry = []
        for index, write in enumerate(self.pending):
            reason = reasons[index] if index < len(reasons) else {}
            code = reason.get("Code") or "None"
            if code == "ConditionalCheckFailed":
                item = reason.get("Item")
                if item is None:
                    self.modes[write.category] = CREATE
                elif item.get(EVENT_TIME, {}).get("S", "") > write.event_time:
                    self.skipped.add(write.category)
                    continue
                else:
                    self.modes[write.category] = UPDATE
            elif code != "None":
                conflicted |= cancellation(code, reason.get("Message", ""))
            retry.append(write)
        for reason in reasons[len(self.pending) :]:
            code = reason.get("Code") or "None"
            if code != "None":
                conflicted |= cancellation(code, reason.get("Message", ""))
        self.pending = retry
        return conflicted

    def skipped_categories(self) -> list[str]:
        return [write.category for write in self.writes if write.category in self.skipped]


async def _transact(client: DynamoDBClient, actions: list[dict[str, Any]], entity_type: EntityType) -> None:
    started = time.perf_counter()
    try:
        with tracing.span("dynamodb.transact_write_items"):
            await client.transact_write_items(TransactItems=actions, ClientRequestToken=str(uuid.uuid4()))
    finally:
        # Timed by hand: a cancelled transaction is part of the write protocol (first writes, stale
        # categories, conflicts), not an error to count.
        elapsed_ms = (time.perf_counter() - started) * 1000
        metrics.timing("dynamodb.transact_write_items", elapsed_ms, entity_type=entity_type.name)


async def commit(client: DynamoDBClient, entity: EntityCommit, outbox_table: str) -> list[str]:
    """Write one entity; return its skipped categories."""
    for attempt in range(MAX_WRITE_ATTEMPTS):
        if not entity.pending:
            break
        try:
            await _transact(client, entity.actions(outbox_table), entity.entity_type)
            break
        except DynamoDBServiceError as exc:
            if exc.code != TRANSACTION_CANCELLED:
                raise translate_error(exc, "TransactWriteItems") from exc
            if entity.cancelled(exc.cancellation_reasons):
                await asyncio.sleep(backoff(attempt))
        except DynamoDBError as exc:
            raise translate_error(exc, "TransactWriteItems") from exc
    else:
        raise StoreUnavailable(KEEPS_CONFLICTING, retry_after=1)
    return entity.skipped_categories()


def pack(entities: Sequence[EntityCommit]) -> list[list[EntityCommit]]:
    """Consecutive entities grouped so that each group fits one transaction (actions and bytes)."""
    groups: list[list[EntityCommit]] = []
    group: list[EntityCommit] = []
    actions = size = 0
    for entity in entities:
        if group and (
            actions + entity.action_count > MAX_TRANSACTION_ACTIONS or size + entity.size > items.MAX_TRANSACTION_BYTES
        ):
            groups.append(group)
            group, actions, size = [], 0, 0
        group.append(entity)
        actions += entity.action_count
        size += entity.size
    if group:
        groups.append(group)
    return groups


async def commit_packed(
    client: DynamoDBClient, group: list[EntityCommit], outbox_table: str
) -> dict[EntityCommit, FeatureStoreError]:
    """Write a group of entities in shared transactions, each entity whole; return the entities that
    failed, with their errors. A cancelled transaction's reasons are shared out to the entities in
    action order: an entity whose own reason dooms it leaves the group, the others go again. For a
    failure with no reasons to share, see `_uncancelled`."""
    failed: dict[EntityCommit, FeatureStoreError] = {}
    # An attempt that learns something (a category's update form, a stale category) is not a conflict;
    # each category can teach a little, so the bound grows with them.
    attempts = MAX_WRITE_ATTEMPTS + sum(len(entity.writes) for entity in group)
    conflicts = 0
    for _ in range(attempts):
        live = [entity for entity in group if entity.pending and entity not in failed]
        if len(live) <= 1:
            return failed | await _each_alone(client, live, outbox_table)
        actions = [action for entity in live for action in entity.actions(outbox_table)]
        try:
            await _transact(client, actions, live[0].entity_type)
        except DynamoDBServiceError as exc:
            if exc.code != TRANSACTION_CANCELLED:
                return failed | await _uncancelled(client, live, outbox_table, exc)
            reasons = exc.cancellation_reasons
            conflicted = False
            start = 0
            for entity in live:
                share = reasons[start : start + entity.action_count]
                start += entity.action_count
                try:
                    conflicted |= entity.cancelled(share)
                except FeatureStoreError as own:
                    failed[entity] = own
            if conflicted:
                conflicts += 1
                if conflicts >= MAX_WRITE_ATTEMPTS:
                    break
                await asyncio.sleep(backoff(conflicts))
            continue
        except DynamoDBError as exc:
            return failed | await _uncancelled(client, live, outbox_table, exc)
        for entity in live:
            entity.pending = []
        return failed
    error = StoreUnavailable(KEEPS_CONFLICTING, retry_after=1)
    return failed | {entity: error for entity in group if entity.pending and entity not in failed}


async def _uncancelled(
    client: DynamoDBClient, entities: Sequence[EntityCommit], outbox_table: str, exc: DynamoDBError
) -> dict[EntityCommit, FeatureStoreError]:
    """A shared transaction failed with no reasons to share. An outage or throttling is every entity's
    failure; anything else (a request DynamoDB refuses whole) may be one entity's doing, so each is sent
    alone, one after another (the group's share of the write concurrency), to get its own outcome."""
    error = translate_error(exc, "TransactWriteItems")
    if isinstance(error, StoreUnavailable):
        error.__cause__ = exc
        return dict.fromkeys(entities, error)
    return await _each_alone(client, entities, outbox_table)


async def _each_alone(
    client: DynamoDBClient, entities: Sequence[EntityCommit], outbox_table: str
) -> dict[EntityCommit, FeatureStoreError]:
    """Each entity in transactions of its own, one after another; the ones that failed, with their errors."""
    failed: dict[EntityCommit, FeatureStoreError] = {}
    for entity in entities:
        try:
            await commit(client, entity, outbox_table)
        except FeatureStoreError as exc:
            failed[entity] = exc
    return failed

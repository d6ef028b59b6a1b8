"""Deleting an entity's categories on DynamoDB.

Each category deleted becomes a tombstone item: the `features` map holds no data and the deletion's
metadata (marked with `TOMBSTONE`, no `created_at`), `event_time` is the deletion's, and `expires_at`
(the table's TTL attribute) is when DynamoDB may forget it. Its event goes to the outbox table in the
same transaction. A category named that has no item, or only an older tombstone, gets the tombstone
too, without an event (nothing was removed), so a late write older than the deletion stays out. The
category's history items (`history.py`) are deleted in the transaction of its tombstone.
The categories are read first (consistently), then replaced under the condition that they are still
what was read, so a write racing the deletion is never erased unseen: a cancelled transaction is
read and tried again.
"""

import asyncio
import uuid
from collections.abc import Sequence
from typing import Any

from components.events.events import set_erased_versions, set_version
from components.features.store.base import TOMBSTONE, Erasure, chunks
from components.features.store.dynamodb import history, items
from components.features.store.dynamodb.errors import TRANSACTION_CANCELLED, translated, write_error
from components.features.store.dynamodb.items import (
    CATEGORY,
    DATA,
    EVENT_TIME,
    EXPIRES_AT,
    FEATURES,
    LAST_EVENT,
    METADATA,
    VERSION,
)
from components.features.store.dynamodb.outbox import backoff
from core.dynamodb_client import DynamoDBClient, DynamoDBError, DynamoDBServiceError
from core.dynamodb_client.attributes import encode_map
from core.exceptions import StoreUnavailable
from core.metrics import metrics
from core.settings import EntityType

MAX_ERASE_ATTEMPTS = 8
ACTIONS_PER_TRANSACTION = 99
"""A transaction holds at most 100 actions: per category its tombstone, its event and the deletions of its history
items (`history.py`, at most `MAX_HISTORY_VERSIONS` and the current value's copy), and an `Idempotency-Key`'s
record."""


async def _stored(
    client: DynamoDBClient, entity_type: EntityType, entity_value: str, categories: Sequence[str] | None
) -> dict[str, dict[str, Any]]:
    """The entity's items among `categories` (every item of the entity when None), read consistently."""
    found: dict[str, dict[str, Any]] = {}
    if categories is None:
        request: dict[str, Any] = {
            "TableName": entity_type.table,
            "KeyConditionExpression": "#k = :v AND #c < :h",
            "ExpressionAttributeNames": {"#k": entity_type.key_attribute, "#c": CATEGORY},
            "ExpressionAttributeValues": {":v": {"S": entity_value}, ":h": {"S": history.PREFIX}},
            "ConsistentRead": True,
        }
        while True:
            with translated("Query"):
                answer = await client.query(**request)
            found |= {item[CATEGORY]["S"]: item for item in answer.get("Items", [])}
            if "LastEvaluatedKey" not in answer:
                return found
            request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]
    keys = [items.key(entity_type, entity_value, category) for category in categories]
    for chunk in chunks(keys, 100):
        pending: dict[str, Any] = {entity_type.table: {"Keys": list(chunk), "ConsistentRead": True}}
        for attempt in range(MAX_ERASE_ATTEMPTS):
            with translated("BatchGetItem"):
                answer = await client.batch_get_item(RequestItems=pending)
            found |= {item[CATEGORY]["S"]: item for item in answer.get("Responses", {}).get(entity_type.table, [])}
            pending = answer.get("UnprocessedKeys") or {}
            if not pending:
                break
            await asyncio.sleep(backoff(attempt))
        else:
            raise StoreUnavailable("DynamoDB is throttling requests", retry_after=1)
    return found


def _holds_data(item: dict[str, Any]) -> bool:
    """An item that is not a tombstone (an absent one, `{}`, holds nothing)."""
    metadata = item.get(FEATURES, {}).get("M", {}).get(METADATA, {}).get("M", {})
    return bool(item) and TOMBSTONE not in metadata


def _to_replace(item: dict[str, Any], erasure: Erasure) -> bool:
    """Data not newer than the erasure, or no item or an older tombstone (`{}`: no item)."""
    event_time = item.get(EVENT_TIME, {}).get("S", "")
    return event_time < erasure.event_time or (event_time == erasure.event_time and _holds_data(item))


def _tombstone(
    entity_type: EntityType,
    entity_value: str,
    category: str,
    old: dict[str, Any],
    erasure: Erasure,
    last_event: str | None,
) -> dict:
    """The tombstone replacing `old`, one version on; `last_event`: its event's id, or the old item's when
    there is none."""
    version, _ = items.stored_version(old)
    metadata = {**encode_map(erasure.metadata), VERSION: {"N": str(version + 1)}}
    item = {
        **items.key(entity_type, entity_value, category),
        FEATURES: {"M": {DATA: {"M": {}}, METADATA: {"M": metadata}}},
        EVENT_TIME: {"S": erasure.event_time},
        EXPIRES_AT: {"N": f"{erasure.expires_at_epoch:.6f}"},
    }
    if last_event is not None:
        item[LAST_EVENT] = {"S": last_event}
    # Still the item that was read: same event_time, the same write (updated_at) and version.
    stored = old.get(FEATURES, {}).get("M", {}).get(METADATA, {}).get("M", {})
    values: dict[str, Any] = {}
    conditions = []
    for path, value, name in (
        ("#e", old.get(EVENT_TIME), ":e0"),
        ("#f.#m.#u", stored.get("updated_at"), ":u0"),
        ("#f.#m.#v", stored.get(VERSION), ":v0"),
    ):
        if value is None:
            conditions.append(f"attribute_not_exists({path})")
        else:
            conditions.append(f"{path} = {name}")
            values[name] = value
    return {
        "Put": {
            "TableName": entity_type.table,
            "Item": item,
            "ConditionExpression": " AND ".join(conditions),
            "ExpressionAttributeNames": {
                "#e": EVENT_TIME,
                "#f": FEATURES,
                "#m": METADATA,
                "#u": "updated_at",
                "#v": VERSION,
            },
            **({"ExpressionAttributeValues": values} if values else {}),
        }
    }


def _actions(
    entity_type: EntityType,
    entity_value: str,
    chunk: Sequence[tuple[str, dict[str, Any]]],
    erasure: Erasure,
    outbox_table: str,
    kept: dict[str, list[dict[str, Any]]],
) -> tuple[list[dict[str, Any]], list[str]]:
    """The tombstones of `chunk`, the deletions of their history items (`kept`) and the events of those that
    held data; the categories those are."""
    tombstones: list[dict[str, Any]] = []
    events: list[dict[str, Any]] = []
    erased = []
    for category, old in chunk:
        version, previous = items.stored_version(old)
        last_event = previous
        history_items = kept.get(category, [])
        for item in history_items:
            key = {entity_type.key_attribute: item[entity_type.key_attribute], CATEGORY: item[CATEGORY]}
            tombstones.append({"Delete": {"TableName": entity_type.table, "Key": key}})
        if _holds_data(old):
            names = list(old.get(FEATURES, {}).get("M", {}).get(DATA, {}).get("M", {}))
            event = erasure.event(category, names)
            set_version(event, version + 1)
            set_erased_versions(event, sum(history.is_kept(item) for item in history_items))
            events.append({"Put": {"TableName": outbox_table, "Item": items.outbox_item(event, previous)}})
            erased.append(category)
            last_event = event.event_id
        tombstones.append(_tombstone(entity_type, entity_value, category, old, erasure, last_event))
    return tombstones + events, erased


def _batches(
    targets: Sequence[tuple[str, dict[str, Any]]], kept: dict[str, list[dict[str, Any]]]
) -> list[list[tuple[str, dict[str, Any]]]]:
    """`targets` in transactions of at most `ACTIONS_PER_TRANSACTION` actions: a category's tombstone, its event
    and the deletions of its history items always in one."""
    batches: list[list[tuple[str, dict[str, Any]]]] = []
    size = ACTIONS_PER_TRANSACTION
    for target in targets:
        cost = 2 + len(kept.get(target[0], ()))
        if size + cost > ACTIONS_PER_TRANSACTION:
            batches.append([])
            size = 0
        batches[-1].append(target)
        size += cost
    return batches


async def erase(
    client: DynamoDBClient, entity_type: EntityType, entity_value: str, erasure: Erasure, outbox_table: str
) -> list[str]:
    """The categories deleted, in the order asked (by category when all)."""
    done: set[str] = set()
    deleted: set[str] = set()
    record = erasure.idempotency
    for attempt in range(MAX_ERASE_ATTEMPTS):
        stored = await _stored(client, entity_type, entity_value, erasure.categories)
        order = erasure.categories if erasure.categories is not None else sorted(stored)
        targets = [
            (category, stored.get(category, {}))
            for category in order
            if category not in done and _to_replace(stored.get(category, {}), erasure)
        ]
        # With nothing to delete, a key's record still goes: it answers a request sent again as it was answered.
        kept = await history.stored_items(client, entity_type, entity_value)
        batches = _batches(targets, kept) or ([[]] if record is not None else [])
        try:
            for chunk in batches:
                actions, erased = _actions(entity_type, entity_value, chunk, erasure, outbox_table, kept)
                if record is not None:
                    # With the first transaction: the whole outcome is known from the read.
                    holding = deleted | {category for category, old in targets if _holds_data(old)}
                    result = [category for category in order if category in holding]
                    actions.append(items.idempotency_put(outbox_table, record, result, erasure.metadata["updated_at"]))
                with metrics.timer("dynamodb.erase", entity_type=entity_type.name):
                    await client.transact_write_items(TransactItems=actions, ClientRequestToken=str(uuid.uuid4()))
                record = None
                done.update(category for category, _ in chunk)
                deleted.update(erased)
            return [category for category in order if category in deleted]
        except DynamoDBServiceError as exc:
            if exc.code != TRANSACTION_CANCELLED:
                raise write_error(exc, "TransactWriteItems") from exc
            reason = exc.cancellation_reasons[-1] if record is not None and exc.cancellation_reasons else {}
            if record is not None and reason.get("Code") == "ConditionalCheckFailed" and "Item" in reason:
                record.replayed = items.recalled(record, reason["Item"])
                replayed: list[str] = record.replayed["result"]
                return replayed
            # A category changed since it was read (a racing write), or a conflict: read again.
            await asyncio.sleep(backoff(attempt))
        except DynamoDBError as exc:
            raise write_error(exc, "TransactWriteItems") from exc
    raise StoreUnavailable("the deletion kept conflicting with concurrent writes to the same items", retry_after=1)

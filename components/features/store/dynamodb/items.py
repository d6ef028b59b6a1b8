"""The item layout: keys, projections, a stored item read back, the two update forms of a category
write, an outbox event's item, and item sizes as DynamoDB counts them.

One table per entity type, partition key = the entity id attribute, sort key `category`; each item
holds `features.data` and `features.metadata` maps, plus `event_time` (the ordering key) and
`expires_at` (epoch seconds, the table's native TTL attribute). Values travel as DynamoDB's JSON
(`core.dynamodb_client.attributes`): integers as their digits and back as `int`, floats back as
`float`, floats outside DynamoDB's number range as tagged binary; DynamoDB keeps a number's value,
not its spelling, so an integral float (`1.0`) reads back as `1`.
"""

import time
import zlib
from typing import Any

from components.events.events import OutboxEvent
from components.events.outbox import DeadLetter
from components.features.store.base import ERASURE_FIELDS, CategoryWrite, Idempotency, StoredCategory, Wanted, outcome
from core.dynamodb_client.attributes import decode_map
from core.exceptions import IDEMPOTENCY_CONFLICT, IdempotencyConflict
from core.serialization import dumps, loads
from core.settings import EntityType

CATEGORY = "category"
FEATURES = "features"
DATA = "data"
METADATA = "metadata"
EVENT_TIME = "event_time"
EXPIRES_AT = "expires_at"
"""Epoch seconds; the table's TTL attribute, so DynamoDB deletes expired items (within days)."""
VERSION = "version"
"""The metadata field holding the category's version (so reads return it as they are)."""
LAST_EVENT = "last_event"
"""The id of the event of the category's latest change that had one: the next event's `PREVIOUS`."""
PREVIOUS = "previous"
"""An outbox item's predecessor: the event of the same category's change before it, published first."""

MAX_ITEM_BYTES = 400 * 1024
MAX_TRANSACTION_BYTES = 4 * 1024 * 1024
MAX_PROJECTED_FEATURES = 100
"""Beyond this, the projection would near DynamoDB's 4 KB expression limit: read whole items instead."""
OUTBOX_INDEX = "due"
OUTBOX_SHARDS = 4
"""The outbox's due-time index is spread over this many partition keys (a single one would cap
the whole service's write rate at one index partition's); a claim queries each of them."""
DEAD_SHARD = "dead"
"""The due-time index's partition of dead letters, where `due_at` holds the time each one died: no claim
queries it, so they leave the retry loop, and listing them reads this partition alone."""
REASON = "reason"

CREATE, UPDATE = "create", "update"


def key(entity_type: EntityType, entity_value: str, category: str) -> dict[str, Any]:
    return {entity_type.key_attribute: {"S": entity_value}, CATEGORY: {"S": category}}


def projection(entity_type: EntityType, wanted: Wanted) -> dict[str, Any]:
    """Fetch only the wanted features (plus keys, metadata and expiry) where the expression allows."""
    names: set[str] = set()
    for features in wanted.values():
        if features is None:
            return {}
        names |= features
    if len(names) > MAX_PROJECTED_FEATURES:
        return {}
    attribute_names = {
        "#k": entity_type.key_attribute,
        "#c": CATEGORY,
        "#f": FEATURES,
        "#m": METADATA,
        "#x": EXPIRES_AT,
    }
    paths = ["#k", "#c", "#f.#m", "#x"]
    if names:
        attribute_names["#d"] = DATA
    for index, name in enumerate(sorted(names)):
        attribute_names[f"#n{index}"] = name
        paths.append(f"#f.#d.#n{index}")
    return {"ProjectionExpression": ", ".join(paths), "ExpressionAttributeNames": attribute_names}


def version_projection(entity_type: EntityType) -> dict[str, Any]:
    """What a write must know of a stored category before its transaction: keys, version, last event and
    event time (`stored_version`, and whether the write is stale)."""
    return {
        "ProjectionExpression": "#k, #c, #e, #le, #f.#m.#v",
        "ExpressionAttributeNames": {
            "#k": entity_type.key_attribute,
            "#c": CATEGORY,
            "#e": EVENT_TIME,
            "#le": LAST_EVENT,
            "#f": FEATURES,
            "#m": METADATA,
            "#v": VERSION,
        },
    }


def stored(item: dict[str, Any]) -> StoredCategory:
    features = item.get(FEATURES, {}).get("M", {})
    data = features.get(DATA)
    metadata = features.get(METADATA)
    expires = item.get(EXPIRES_AT)
    return StoredCategory(
        decode_map(data["M"]) if data else {},
        decode_map(metadata["M"]) if metadata else {},
        float(expires["N"]) if expires else None,
    )


def upsert(
    entity_type: EntityType,
    entity_value: str,
    write: CategoryWrite,
    data: dict[str, Any],
    metadata: dict[str, Any],
    mode: str,
    now_iso: str,
    version: int,
    *,
    restoring: bool = False,
    last_event: str | None = None,
) -> dict[str, Any]:
    """One category's write as a transaction action, making the category's `version` (one more than
    the stored one) and recording its event as the category's last. For an existing item (UPDATE) it
    sets `features.data` and each metadata field, so `created_at` stays; for a new item (CREATE) the
    whole `features` map with `created_at`. Each is conditional (exists with the version before /
    does not exist, and the stored `event_time` is not newer; for a rollback's restore, `restoring`, the stored
    `last_event` instead), so a cancelled transaction says per category which form and version to retry with and
    which categories are stale."""
    names = {"#k": entity_type.key_attribute, "#f": FEATURES, "#e": EVENT_TIME, "#x": EXPIRES_AT, "#le": LAST_EVENT}
    version_value = {"N": str(version)}
    values: dict[str, Any] = {":e": {"S": write.event_time}, ":le": {"S": write.event.event_id}}
    removals: list[str] = []
    if mode == CREATE:
        stamped = {"created_at": {"S": now_iso}, **metadata, VERSION: version_value}
        values[":f"] = {"M": {DATA: data, METADATA: {"M": stamped}}}
        assignments = ["#f = :f", "#e = :e", "#le = :le"]
        condition = "attribute_not_exists(#k)"
    else:
        # A tombstone (a deleted category) has no created_at and is marked: the write that brings data
        # back starts the category afresh.
        names |= {"#d": DATA, "#m": METADATA, "#ca": "created_at"}
        values |= {":d": data, ":ca": {"S": now_iso}}
        assignments = ["#f.#d = :d", "#e = :e", "#f.#m.#ca = if_not_exists(#f.#m.#ca, :ca)"]
        for index, (field, value) in enumerate(metadata.items()):
            names[f"#m{index}"] = field
            values[f":m{index}"] = value
            assignments.append(f"#f.#m.#m{index} = :m{index}")
        for index, field in enumerate(ERASURE_FIELDS):
            names[f"#t{index}"] = field
            removals.append(f"#f.#m.#t{index}")
        names["#v"] = VERSION
        values[":v"] = version_value
        assignments += ["#f.#m.#v = :v", "#le = :le"]
        if version > 1:
            values[":v0"] = {"N": str(version - 1)}
            version_check = "#f.#m.#v = :v0"
        else:
            version_check = "attribute_not_exists(#f.#m.#v)"
        if restoring:
            # A rollback's restore: over the version it read, whatever the event times; its last event checked
            # too, so the event it adds names the right predecessor.
            if last_event is None:
                order_check = "attribute_not_exists(#le)"
            else:
                values[":le0"] = {"S": last_event}
                order_check = "#le = :le0"
        else:
            order_check = "(attribute_not_exists(#e) OR #e <= :e)"
        condition = f"attribute_exists(#k) AND {version_check} AND {order_check}"
    if write.expires_at_epoch is not None:
        values[":x"] = {"N": f"{write.expires_at_epoch:.6f}"}
        assignments.append("#x = :x")
    else:
        removals.append("#x")
    expression = "SET " + ", ".join(assignments)
    if removals:
        expression += " REMOVE " + ", ".join(removals)
    return {
        "Update": {
            "TableName": entity_type.table,
            "Key": key(entity_type, entity_value, write.category),
            "UpdateExpression": expression,
            "ConditionExpression": condition,
            "ExpressionAttributeNames": names,
            "ExpressionAttributeValues": values,
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }


def stored_version(item: dict[str, Any]) -> tuple[int, str | None]:
    """A stored item's version (0 before versions) and its `LAST_EVENT`."""
    metadata = item.get(FEATURES, {}).get("M", {}).get(METADATA, {}).get("M", {})
    version = metadata.get(VERSION)
    last = item.get(LAST_EVENT)
    return (int(version["N"]) if version else 0), (last["S"] if last else None)


def outbox_item(event: OutboxEvent, previous: str | None = None) -> dict[str, Any]:
    item = {
        "event_id": {"S": event.event_id},
        "event_key": {"S": event.key},
        "payload": {"S": dumps(event.payload).decode()},
        "created_at": {"N": f"{event.created_at_epoch:.6f}"},
        "attempts": {"N": str(event.attempts)},
        "shard": {"S": outbox_shard(event.event_id)},
        "due_at": {"N": f"{event.created_at_epoch:.6f}"},
        "lease_until": {"N": "0"},
    }
    if event.traceparent:
        item["traceparent"] = {"S": event.traceparent}
    if previous is not None:
        item[PREVIOUS] = {"S": previous}
    return item


IDEMPOTENCY_PREFIX = "idempotency#"
"""An `Idempotency` record's key in the outbox table, where no event id starts so: the record has no `shard`, so
the due-time index (and so the relay) never sees it, and it expires through the table's TTL attribute."""


def idempotency_put(outbox_table: str, record: Idempotency, result: list[str], timestamp: str) -> dict[str, Any]:
    """The record as a transaction's put, refused while an unexpired record holds the key: the cancellation
    then returns the stored one."""
    return {
        "Put": {
            "TableName": outbox_table,
            "Item": {
                "event_id": {"S": IDEMPOTENCY_PREFIX + record.key},
                "fingerprint": {"S": record.fingerprint},
                "outcome": {"S": dumps(outcome(result, timestamp)).decode()},
                EXPIRES_AT: {"N": f"{record.expires_at_epoch:.6f}"},
            },
            "ConditionExpression": "attribute_not_exists(#i) OR #x <= :now",
            "ExpressionAttributeNames": {"#i": "event_id", "#x": EXPIRES_AT},
            "ExpressionAttributeValues": {":now": {"N": f"{time.time():.6f}"}},
            "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
        }
    }


def recalled(record: Idempotency, item: dict[str, Any]) -> dict[str, Any]:
    """The first outcome a stored record holds; raise `IdempotencyConflict` when it was another request's."""
    if item.get("fingerprint", {}).get("S") != record.fingerprint:
        raise IdempotencyConflict(IDEMPOTENCY_CONFLICT)
    stored: dict[str, Any] = loads(item["outcome"]["S"])
    return stored


def outbox_shard(event_id: str) -> str:
    return str(zlib.crc32(event_id.encode()) % OUTBOX_SHARDS)


def outbox_event(item: dict[str, Any]) -> OutboxEvent:
    return OutboxEvent(
        item["event_id"]["S"],
        item["event_key"]["S"],
        loads(item["payload"]["S"]),
        float(item["created_at"]["N"]),
        int(item["attempts"]["N"]),
        item["traceparent"]["S"] if "traceparent" in item else None,
    )


def dead_letter(item: dict[str, Any]) -> DeadLetter:
    return DeadLetter(outbox_event(item), item.get(REASON, {}).get("S", ""), float(item["due_at"]["N"]))


# --- sizes -----------------------------------------------------------------------------------------


def _number_size(text: str) -> int:
    digits = text.lstrip("-").split("E")[0].split("e")[0].replace(".", "").strip("0")
    return (len(digits) + 1) // 2 + 1


def attribute_size(attribute: dict[str, Any]) -> int:
    """Bytes DynamoDB counts for one value: strings in UTF-8, numbers by significant digits,
    3 bytes per list or map plus 1 per element (and each map key's length)."""
    ((kind, value),) = attribute.items()
    if kind == "S":
        return len(value.encode("utf-8", "surrogatepass"))
    if kind == "N":
        return _number_size(value)
    if kind == "M":
        return 3 + sum(
            len(name.encode("utf-8", "surrogatepass")) + 1 + attribute_size(item) for name, item in value.items()
        )
    if kind == "L":
        return 3 + sum(1 + attribute_size(item) for item in value)
    if kind == "B":
        return len(value)
    return 1


def item_size(item: dict[str, dict[str, Any]]) -> int:
    return sum(len(name.encode("utf-8")) + attribute_size(value) for name, value in item.items())


def write_size(
    entity_type: EntityType,
    entity_value: str,
    write: CategoryWrite,
    encoded: tuple[dict[str, Any], dict[str, Any]],
    now_iso: str,
    exact: bool,
) -> int:
    """The item's size as DynamoDB counts it, or a cheap upper bound when that is clearly small
    enough: DynamoDB never counts more than three bytes per byte of the value's JSON."""
    if not exact:
        bound = 3 * (len(dumps(write.data)) + len(dumps(write.metadata))) + len(entity_value.encode()) + 1024
        if bound <= MAX_ITEM_BYTES:
            return bound
    data, metadata = encoded
    return item_size(
        {
            **key(entity_type, entity_value, write.category),
            FEATURES: {"M": {DATA: data, METADATA: {"M": {"created_at": {"S": now_iso}, **metadata}}}},
            EVENT_TIME: {"S": write.event_time},
            EXPIRES_AT: {"N": f"{write.expires_at_epoch or 0:.6f}"},
        }
    )

"""A category's history on DynamoDB: items in the entity type's table, beside the category's own.

A history item's sort key is `~<category>#<version, 10 digits>`: `~` sorts after every character a category
name may hold, so a Query of an entity's categories stops short of them (`category < "~"`), one Query
`begins_with("~<category>#")` lists a category's history in version order, and reads by key never meet them.
Each holds the `features` map (`data`, `metadata` with `version`) and `event_time` of one version.

A write of a category with history adds, in its transaction, the copy of the value it writes (the next
write keeps it: no read of the history before the write), sets the replaced version's copy to expire (`expires_at`, the
table's TTL attribute: the write's time plus the retention) and deletes the copy that falls out of the count.
So the copy of the current value has no `expires_at`: the kept versions are the items that have one (an
update that found no copy, a version written before the category kept history or a tombstone, leaves an item
with no `features`, forgotten at its `expires_at`). DynamoDB's TTL deletes within days, so readers judge
`expires_at` themselves; an erasure deletes every history item of the category with its tombstone.
"""

from typing import Any

from components.features.store.base import CategoryWrite, KeepHistory, KeptVersion, StoredCategory
from components.features.store.dynamodb.errors import translated
from components.features.store.dynamodb.items import CATEGORY, DATA, EVENT_TIME, EXPIRES_AT, FEATURES, METADATA
from core.dynamodb_client import DynamoDBClient
from core.dynamodb_client.attributes import decode_map
from core.settings import EntityType

PREFIX = "~"
"""Sorts after `A-Z a-z 0-9 _ . -`, every character of a category name."""
VERSION_DIGITS = 10


def sort_key(category: str, version: int) -> str:
    return f"{PREFIX}{category}#{version:0{VERSION_DIGITS}d}"


def history_key(entity_type: EntityType, entity_value: str, category: str, version: int) -> dict[str, Any]:
    return {entity_type.key_attribute: {"S": entity_value}, CATEGORY: {"S": sort_key(category, version)}}


def category_of(item: dict[str, Any]) -> str:
    """The category a history item belongs to."""
    return item[CATEGORY]["S"][len(PREFIX) :].rpartition("#")[0]


def actions(
    entity_type: EntityType,
    entity_value: str,
    write: CategoryWrite,
    history: KeepHistory,
    encoded: tuple[dict[str, Any], dict[str, Any]],
    version: int,
) -> list[dict[str, Any]]:
    """What a write making the category's `version` adds to its transaction: the copy of its value, the expiry of
    the copy it replaces, and the deletion of the copy past the count."""
    table = entity_type.table
    data, metadata = encoded
    copy = {
        **history_key(entity_type, entity_value, write.category, version),
        FEATURES: {"M": {DATA: data, METADATA: {"M": {**metadata, "version": {"N": str(version)}}}}},
        EVENT_TIME: {"S": write.event_time},
    }
    found = [{"Put": {"TableName": table, "Item": copy}}]
    if version > 1:
        found.append(
            {
                "Update": {
                    "TableName": table,
                    "Key": history_key(entity_type, entity_value, write.category, version - 1),
                    "UpdateExpression": "SET #x = :x",
                    "ExpressionAttributeNames": {"#x": EXPIRES_AT},
                    "ExpressionAttributeValues": {":x": {"N": f"{history.expires_at_epoch:.6f}"}},
                }
            }
        )
    past = version - 1 - history.versions
    if past >= 1:
        key = history_key(entity_type, entity_value, write.category, past)
        found.append({"Delete": {"TableName": table, "Key": key}})
    return found


ACTIONS_PER_WRITE = 3
"""The most `actions` adds per category."""


def is_kept(item: dict[str, Any]) -> bool:
    """A replaced version's copy (not the current value's copy, nor an item holding no value)."""
    return EXPIRES_AT in item and FEATURES in item


def kept_version(item: dict[str, Any]) -> KeptVersion:
    features = item[FEATURES]["M"]
    stored = StoredCategory(decode_map(features[DATA]["M"]), decode_map(features[METADATA]["M"]))
    return KeptVersion(stored, float(item[EXPIRES_AT]["N"]))


async def stored_items(
    client: DynamoDBClient,
    entity_type: EntityType,
    entity_value: str,
    consistent: bool = True,
    category: str | None = None,
) -> dict[str, list[dict[str, Any]]]:
    """Every history item of the entity (of `category` only, when given), by category, in version order: one
    Query, page after page."""
    prefix = PREFIX if category is None else f"{PREFIX}{category}#"
    request: dict[str, Any] = {
        "TableName": entity_type.table,
        "KeyConditionExpression": "#k = :v AND begins_with(#c, :p)",
        "ExpressionAttributeNames": {"#k": entity_type.key_attribute, "#c": CATEGORY},
        "ExpressionAttributeValues": {":v": {"S": entity_value}, ":p": {"S": prefix}},
        "ConsistentRead": consistent,
    }
    found: dict[str, list[dict[str, Any]]] = {}
    while True:
        with translated("Query"):
            answer = await client.query(**request)
        for item in answer.get("Items", []):
            found.setdefault(category_of(item), []).append(item)
        if "LastEvaluatedKey" not in answer:
            return found
        request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

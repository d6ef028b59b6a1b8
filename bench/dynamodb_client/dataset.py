"""The data every client benchmark reads and writes: 200 entities x 5 categories x 20 floats in the
store's item layout, the write the store sends, and the decoding of what comes back."""

import asyncio
import json
import time
import uuid
import zlib
from datetime import UTC, datetime
from typing import Any

from bench import boto3_baseline as dynamodb_values
from core.dynamodb_client import DynamoDBClient, attributes

TABLE, OUTBOX, KEY = "bench_user_features", "bench_outbox", "bright_uid"
CATEGORIES = ["user_features", "credit_features", "transaction_features", "trans_features", "d0_unauth_features"]
ENTITIES = 200
FEATURES = 20


def features(entity: int, category: int) -> dict[str, float]:
    return {f"feature_{index:02d}": (entity * 7 + category * 3 + index) * 1.37 + 0.01 for index in range(FEATURES)}


def metadata(now_iso: str) -> dict[str, Any]:
    return {"updated_at": now_iso, "source": "prediction_service", "compute_id": "bench", "ttl": None}


def key(entity: int, category: str) -> dict[str, Any]:
    return {KEY: {"S": f"bench-{entity}"}, "category": {"S": category}}


def item(entity: int, category_index: int, now_iso: str) -> dict[str, Any]:
    """One category of one entity, laid out as the store writes it."""
    meta = {"created_at": {"S": now_iso}, **dynamodb_values.encode_map(metadata(now_iso))}
    return {
        **key(entity, CATEGORIES[category_index]),
        "features": {"M": {"data": dynamodb_values.encode(features(entity, category_index)), "metadata": {"M": meta}}},
        "event_time": {"S": now_iso},
    }


def write_actions(entity: int, now_iso: str) -> list[dict[str, Any]]:
    """What the store sends for a 1-category write of an existing item: its update form and the outbox put."""
    data = dynamodb_values.encode(features(entity, 0))
    meta = dynamodb_values.encode_map(metadata(now_iso))
    names = {"#k": KEY, "#f": "features", "#e": "event_time", "#x": "expires_at", "#d": "data", "#m": "metadata"}
    values: dict[str, Any] = {":e": {"S": now_iso}, ":d": data}
    assignments = ["#f.#d = :d", "#e = :e"]
    for index, (field, value) in enumerate(meta.items()):
        names[f"#m{index}"] = field
        values[f":m{index}"] = value
        assignments.append(f"#f.#m.#m{index} = :m{index}")
    event_id = str(uuid.uuid4())
    payload = {"event_id": event_id, "features": sorted(features(entity, 0))}
    return [
        {
            "Update": {
                "TableName": TABLE,
                "Key": key(entity, CATEGORIES[0]),
                "UpdateExpression": "SET " + ", ".join(assignments) + " REMOVE #x",
                "ConditionExpression": "attribute_exists(#k) AND (attribute_not_exists(#e) OR #e <= :e)",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        },
        {
            "Put": {
                "TableName": OUTBOX,
                "Item": {
                    "event_id": {"S": event_id},
                    "event_key": {"S": f"bright_uid:bench-{entity}"},
                    "payload": {"S": json.dumps(payload)},
                    "created_at": {"N": f"{time.time():.6f}"},
                    "attempts": {"N": "0"},
                    "shard": {"S": str(zlib.crc32(event_id.encode()) % 4)},
                    "due_at": {"N": f"{time.time():.6f}"},
                    "lease_until": {"N": "0"},
                },
            }
        },
    ]


def fresh_event_time() -> str:
    """The write's event time: newer than every write before it, so the write condition holds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def batch_request(start: int, count: int) -> dict[str, Any]:
    keys = [key((start + offset) % ENTITIES, CATEGORIES[0]) for offset in range(count)]
    return {TABLE: {"Keys": keys, "ConsistentRead": False}}


def decode_items_boto3(items: list[dict[str, Any]]) -> None:
    for found in items:
        stored = found["features"]["M"]
        dynamodb_values.decode_map(stored["data"]["M"])
        dynamodb_values.decode_map(stored["metadata"]["M"])


def decode_items_wire(items: list[dict[str, Any]]) -> None:
    for found in items:
        stored = found["features"]["M"]
        attributes.decode_map(stored["data"]["M"])
        attributes.decode_map(stored["metadata"]["M"])


def seed(client: DynamoDBClient) -> None:
    async def run() -> None:
        for table, schema in ((TABLE, [(KEY, "HASH"), ("category", "RANGE")]), (OUTBOX, [("event_id", "HASH")])):
            await client.create_table(
                TableName=table,
                KeySchema=[{"AttributeName": name, "KeyType": kind} for name, kind in schema],
                AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"} for name, _ in schema],
                BillingMode="PAY_PER_REQUEST",
            )
        stamp = fresh_event_time()
        items = [item(entity, category, stamp) for entity in range(ENTITIES) for category in range(len(CATEGORIES))]
        for start in range(0, len(items), 25):
            chunk = [{"PutRequest": {"Item": found}} for found in items[start : start + 25]]
            answer = await client.batch_write_item(RequestItems={TABLE: chunk})
            assert not answer.get("UnprocessedItems"), "unprocessed writes while seeding"
        await client.close()

    asyncio.run(run())

"""Creating the tables the store needs, with TTL on `expires_at`: at start-up when
`DYNAMODB_CREATE_TABLES` allows it (local endpoints), or by `make dynamodb-tables`. Idempotent."""

import asyncio
import time
from collections.abc import Sequence
from typing import Any

from components.features.store.dynamodb.errors import translated
from components.features.store.dynamodb.items import CATEGORY, EXPIRES_AT, OUTBOX_INDEX
from core.dynamodb_client import DynamoDBClient, DynamoDBServiceError
from core.settings import Settings

ACTIVE_WAIT_SECONDS = 60.0
"""How long a new table may take to become ACTIVE (a local endpoint: at once; AWS: seconds)."""


async def _create_table(client: DynamoDBClient, name: str, keys: Sequence[tuple[str, str]], **extra: Any) -> bool:
    attributes = [{"AttributeName": attribute, "AttributeType": "S"} for attribute, _ in keys]
    try:
        await client.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": attribute, "KeyType": kind} for attribute, kind in keys],
            AttributeDefinitions=attributes + extra.pop("AttributeDefinitions", []),
            BillingMode="PAY_PER_REQUEST",
            **extra,
        )
    except DynamoDBServiceError as exc:
        if exc.code == "ResourceInUseException":
            return False
        raise
    deadline = time.monotonic() + ACTIVE_WAIT_SECONDS
    while (await client.describe_table(TableName=name))["Table"]["TableStatus"] != "ACTIVE":
        if time.monotonic() > deadline:
            raise DynamoDBServiceError("DescribeTable", 400, {"message": f"table {name} is not ACTIVE yet"})
        await asyncio.sleep(1)
    return True


async def _ttl_enabled(client: DynamoDBClient, table: str) -> bool:
    status = (await client.call("DescribeTimeToLive", {"TableName": table})).get("TimeToLiveDescription", {})
    return status.get("TimeToLiveStatus") in ("ENABLED", "ENABLING")


async def _enable_ttl(client: DynamoDBClient, table: str) -> bool:
    if await _ttl_enabled(client, table):
        return False
    try:
        await client.call(
            "UpdateTimeToLive",
            {"TableName": table, "TimeToLiveSpecification": {"Enabled": True, "AttributeName": EXPIRES_AT}},
        )
    except DynamoDBServiceError:
        # Another process (or the first request beside this one) enabled it in the meantime.
        if await _ttl_enabled(client, table):
            return False
        raise
    return True


async def create_tables(client: DynamoDBClient, settings: Settings) -> list[str]:
    """Create the missing tables (pay per request) with TTL on `expires_at`; say what was done."""
    actions = []
    with translated("table creation"):
        for entity in settings.entity_types.values():
            if await _create_table(client, entity.table, [(entity.key_attribute, "HASH"), (CATEGORY, "RANGE")]):
                actions.append(f"created table {entity.table}")
            if await _enable_ttl(client, entity.table):
                actions.append(f"enabled TTL on {entity.table}.{EXPIRES_AT}")
        due_index = {
            "IndexName": OUTBOX_INDEX,
            "KeySchema": [
                {"AttributeName": "shard", "KeyType": "HASH"},
                {"AttributeName": "due_at", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["lease_until", "created_at"]},
        }
        if await _create_table(
            client,
            settings.dynamodb_table_outbox,
            [("event_id", "HASH")],
            AttributeDefinitions=[
                {"AttributeName": "shard", "AttributeType": "S"},
                {"AttributeName": "due_at", "AttributeType": "N"},
            ],
            GlobalSecondaryIndexes=[due_index],
        ):
            actions.append(f"created table {settings.dynamodb_table_outbox}")
        # The records of `Idempotency-Key`s expire through it; events have no `expires_at`.
        if await _enable_ttl(client, settings.dynamodb_table_outbox):
            actions.append(f"enabled TTL on {settings.dynamodb_table_outbox}.{EXPIRES_AT}")
    return actions

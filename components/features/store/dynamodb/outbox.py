"""The outbox table: events written in the same transaction as the features they announce, found
through a due-time index, leased to one replica at a time, deleted once delivered."""

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, TypeVar

from components.features.store.base import chunks
from components.features.store.dynamodb.errors import CONDITION_FAILED, translate_error, translated
from components.features.store.dynamodb.items import OUTBOX_INDEX, OUTBOX_SHARDS, outbox_event
from core.dynamodb_client import DynamoDBClient, DynamoDBError, DynamoDBServiceError
from core.events import OutboxEvent
from core.exceptions import StoreUnavailable
from core.metrics import metrics
from core.outbox import OutboxStats

MAX_BATCH_WRITES = 25

T = TypeVar("T")
R = TypeVar("R")


def backoff(attempt: int) -> float:
    """Seconds before asking again for what DynamoDB left unprocessed (or a conflicting write)."""
    return min(0.5, 0.01 * 2**attempt) * random.uniform(0.5, 1.0)


async def bounded(concurrency: int, call: Callable[[T], Awaitable[R]], items: Sequence[T]) -> list[R]:
    """`call` on every item, at most `concurrency` at once; results in order."""
    if len(items) <= 1:
        return [await call(item) for item in items]
    limit = asyncio.Semaphore(concurrency)

    async def one(item: T) -> R:
        async with limit:
            return await call(item)

    return list(await asyncio.gather(*(one(item) for item in items)))


class DynamoDBOutbox:
    def __init__(self, table: str, deadline_seconds: float, concurrency: int) -> None:
        self.table = table
        self.deadline_seconds = deadline_seconds
        self.concurrency = concurrency

    async def _due(
        self, client: DynamoDBClient, shard: str, now: dict[str, str], limit: int
    ) -> list[tuple[float, str]]:
        """Up to `limit` unleased events of one shard due by `now`, soonest first."""
        found: list[tuple[float, str]] = []
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": OUTBOX_INDEX,
            "KeyConditionExpression": "#s = :shard AND #d <= :now",
            "FilterExpression": "#l <= :now",
            "ExpressionAttributeNames": {"#s": "shard", "#d": "due_at", "#l": "lease_until"},
            "ExpressionAttributeValues": {":shard": {"S": shard}, ":now": now},
            "Limit": limit,
        }
        while len(found) < limit:
            page = await client.query(**request)
            found += [(float(item["due_at"]["N"]), item["event_id"]["S"]) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return found[:limit]

    async def claim_events(self, client: DynamoDBClient, limit: int, lease_seconds: float) -> list[OutboxEvent]:
        """Find the `limit` soonest-due unleased events through the due-time index (never reading the
        whole outbox, however long a Kafka outage made it), and lease each with a conditional
        update, so of two replicas claiming at once only one gets a given event."""
        now = time.time()
        now_value = {"N": f"{now:.6f}"}
        with metrics.timer("dynamodb.outbox_query"), translated("outbox Query"):
            shards = await asyncio.gather(
                *(self._due(client, str(shard), now_value, limit) for shard in range(OUTBOX_SHARDS))
            )
        candidates = sorted(candidate for shard in shards for candidate in shard)

        async def claim(event_id: str) -> OutboxEvent | None:
            try:
                with metrics.timer("dynamodb.outbox_claim"):
                    answer = await client.update_item(
                        TableName=self.table,
                        Key={"event_id": {"S": event_id}},
                        UpdateExpression="SET #l = :until",
                        ConditionExpression="attribute_exists(#i) AND #d <= :now AND #l <= :now",
                        ExpressionAttributeNames={"#i": "event_id", "#d": "due_at", "#l": "lease_until"},
                        ExpressionAttributeValues={":now": now_value, ":until": {"N": f"{now + lease_seconds:.6f}"}},
                        ReturnValues="ALL_NEW",
                    )
            except DynamoDBServiceError as exc:
                if exc.code == CONDITION_FAILED:
                    return None
                raise translate_error(exc, "outbox claim") from exc
            except DynamoDBError as exc:
                raise translate_error(exc, "outbox claim") from exc
            return outbox_event(answer["Attributes"])

        claimed = await bounded(self.concurrency, claim, [event_id for _, event_id in candidates[:limit]])
        return [event for event in claimed if event is not None]

    async def delete_events(self, client: DynamoDBClient, event_ids: Sequence[str]) -> None:
        deadline = time.monotonic() + self.deadline_seconds
        for chunk in chunks(list(event_ids), MAX_BATCH_WRITES):
            request = {self.table: [{"DeleteRequest": {"Key": {"event_id": {"S": event_id}}}} for event_id in chunk]}
            attempt = 0
            while request:
                with metrics.timer("dynamodb.outbox_delete"), translated("outbox BatchWriteItem"):
                    request = (await client.batch_write_item(RequestItems=request)).get("UnprocessedItems") or {}
                if request:
                    if time.monotonic() > deadline:
                        raise StoreUnavailable("DynamoDB left outbox deletions unprocessed (throttled)")
                    await asyncio.sleep(backoff(attempt))
                    attempt += 1

    async def retry_events(self, client: DynamoDBClient, event_ids: Sequence[str], delay_seconds: float) -> None:
        due = {"N": f"{time.time() + delay_seconds:.6f}"}

        async def release(event_id: str) -> None:
            try:
                with metrics.timer("dynamodb.outbox_release"):
                    await client.update_item(
                        TableName=self.table,
                        Key={"event_id": {"S": event_id}},
                        UpdateExpression="SET #a = #a + :one, #d = :due, #l = :zero",
                        ConditionExpression="attribute_exists(#i)",
                        ExpressionAttributeNames={
                            "#i": "event_id",
                            "#a": "attempts",
                            "#d": "due_at",
                            "#l": "lease_until",
                        },
                        ExpressionAttributeValues={":one": {"N": "1"}, ":due": due, ":zero": {"N": "0"}},
                    )
            except DynamoDBServiceError as exc:
                if exc.code != CONDITION_FAILED:
                    raise translate_error(exc, "outbox retry") from exc
            except DynamoDBError as exc:
                raise translate_error(exc, "outbox retry") from exc

        await bounded(self.concurrency, release, list(event_ids))

    async def outbox_stats(self, client: DynamoDBClient) -> OutboxStats:
        """Counts every pending event (the relay calls this every OUTBOX_GAUGE_SECONDS, never a
        request), reading the small items of the due-time index rather than the events."""
        pending, oldest = 0, None
        with metrics.timer("dynamodb.outbox_stats"), translated("outbox Query"):
            for shard in range(OUTBOX_SHARDS):
                request: dict[str, Any] = {
                    "TableName": self.table,
                    "IndexName": OUTBOX_INDEX,
                    "KeyConditionExpression": "#s = :shard",
                    "ProjectionExpression": "#c",
                    "ExpressionAttributeNames": {"#s": "shard", "#c": "created_at"},
                    "ExpressionAttributeValues": {":shard": {"S": str(shard)}},
                }
                while True:
                    page = await client.query(**request)
                    for item in page.get("Items", []):
                        pending += 1
                        created = float(item["created_at"]["N"])
                        oldest = created if oldest is None else min(oldest, created)
                    if "LastEvaluatedKey" not in page:
                        break
                    request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return OutboxStats(pending=pending, oldest_age_seconds=max(0.0, time.time() - oldest) if oldest else 0.0)

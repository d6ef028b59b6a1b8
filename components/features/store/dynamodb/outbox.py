"""The outbox table: events written in the same transaction as the features they announce, found
through a due-time index, leased to one replica at a time, deleted once delivered; dead letters stay
in the table, moved to the index's partition of their own (`items.DEAD_SHARD`)."""

import asyncio
import random
import time
from collections.abc import Awaitable, Callable, Mapping, Sequence
from typing import Any, TypeVar

from components.events.events import OutboxEvent
from components.events.outbox import DeadLetterCursor, DeadLetterPage, OutboxStats
from components.features.store.base import chunks
from components.features.store.dynamodb.errors import CONDITION_FAILED, translate_error, translated
from components.features.store.dynamodb.items import (
    DEAD_SHARD,
    OUTBOX_INDEX,
    OUTBOX_SHARDS,
    PREVIOUS,
    REASON,
    dead_letter,
    outbox_event,
    outbox_shard,
)
from core.dynamodb_client import DynamoDBClient, DynamoDBError, DynamoDBServiceError
from core.exceptions import StoreUnavailable
from core.metrics import metrics

MAX_BATCH_WRITES = 25
MAX_BATCH_KEYS = 100
OUTBOX_NAMES = {
    "#i": "event_id",
    "#s": "shard",
    "#a": "attempts",
    "#d": "due_at",
    "#l": "lease_until",
    "#r": REASON,
}
DEAD = {"S": DEAD_SHARD}

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


def _version(event: OutboxEvent) -> int:
    version: int = event.payload.get("version") or 0
    return version


def _publishable(claimed: Sequence[tuple[OutboxEvent, str | None]], waiting: set[str]) -> set[str]:
    """The ids of the claimed events that may be published now: those whose predecessor is no longer waiting,
    and those whose predecessor is itself publishable in this batch (it is published first: a category's
    backlog goes in one batch, in order, rather than one relay round per event)."""
    ready: set[str] = set()
    grew = True
    while grew:
        grew = False
        for event, previous in claimed:
            if event.event_id not in ready and (previous not in waiting or previous in ready):
                ready.add(event.event_id)
                grew = True
    return ready


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

        until = {"N": f"{now + lease_seconds:.6f}"}

        async def claim(event_id: str) -> tuple[OutboxEvent, str | None] | None:
            try:
                with metrics.timer("dynamodb.outbox_claim"):
                    answer = await client.update_item(
                        TableName=self.table,
                        Key={"event_id": {"S": event_id}},
                        UpdateExpression="SET #l = :until",
                        ConditionExpression="attribute_exists(#i) AND #d <= :now AND #l <= :now",
                        ExpressionAttributeNames={"#i": "event_id", "#d": "due_at", "#l": "lease_until"},
                        ExpressionAttributeValues={":now": now_value, ":until": until},
                        ReturnValues="ALL_NEW",
                    )
            except DynamoDBServiceError as exc:
                if exc.code == CONDITION_FAILED:
                    return None
                raise translate_error(exc, "outbox claim") from exc
            except DynamoDBError as exc:
                raise translate_error(exc, "outbox claim") from exc
            item = answer["Attributes"]
            return outbox_event(item), item[PREVIOUS]["S"] if PREVIOUS in item else None

        leased = await bounded(self.concurrency, claim, [event_id for _, event_id in candidates[:limit]])
        claimed = [lease for lease in leased if lease is not None]
        waiting = await self._pending(client, [previous for _, previous in claimed if previous is not None])
        ready = _publishable(claimed, waiting)
        behind = [event.event_id for event, _ in claimed if event.event_id not in ready]
        if behind:
            await self.retry_events(client, behind, 0.0, count_attempt=False)
        # Stable: each category's events in version order, wherever they were claimed.
        return sorted((event for event, _ in claimed if event.event_id in ready), key=_version)

    async def _pending(self, client: DynamoDBClient, event_ids: Sequence[str]) -> set[str]:
        """Which of `event_ids` are still in the outbox and not dead letters, read consistently. An event
        whose predecessor (the same category's event before it) is one waits for it: the relay publishes
        each category's events in version order. Ids the read could not settle by the deadline count as
        pending (the event waits for the next claim)."""
        pending: set[str] = set()
        deadline = time.monotonic() + self.deadline_seconds
        for chunk in chunks(list(dict.fromkeys(event_ids)), MAX_BATCH_KEYS):
            request: dict[str, Any] = {
                self.table: {
                    "Keys": [{"event_id": {"S": event_id}} for event_id in chunk],
                    "ConsistentRead": True,
                    "ProjectionExpression": "#i, #s",
                    "ExpressionAttributeNames": {"#i": "event_id", "#s": "shard"},
                }
            }
            attempt = 0
            while request:
                with metrics.timer("dynamodb.outbox_order_read"), translated("outbox BatchGetItem"):
                    answer = await client.batch_get_item(RequestItems=request)
                pending.update(
                    item["event_id"]["S"]
                    for item in answer.get("Responses", {}).get(self.table, [])
                    if item.get("shard", {}).get("S") != DEAD_SHARD
                )
                request = answer.get("UnprocessedKeys") or {}
                if request and time.monotonic() > deadline:
                    pending.update(key["event_id"]["S"] for key in request[self.table]["Keys"])
                    break
                if request:
                    await asyncio.sleep(backoff(attempt))
                    attempt += 1
        return pending

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

    async def _update(self, client: DynamoDBClient, event_id: str, action: str, **update: Any) -> bool:
        """One conditional update of an outbox item; False when its condition did not hold."""
        expressions = update["UpdateExpression"] + update["ConditionExpression"]
        names = {name: attribute for name, attribute in OUTBOX_NAMES.items() if name in expressions}
        try:
            with metrics.timer(f"dynamodb.outbox_{action}"):
                await client.update_item(
                    TableName=self.table,
                    Key={"event_id": {"S": event_id}},
                    ExpressionAttributeNames=names,
                    **update,
                )
        except DynamoDBServiceError as exc:
            if exc.code == CONDITION_FAILED:
                return False
            raise translate_error(exc, f"outbox {action}") from exc
        except DynamoDBError as exc:
            raise translate_error(exc, f"outbox {action}") from exc
        return True

    async def retry_events(
        self, client: DynamoDBClient, event_ids: Sequence[str], delay_seconds: float, count_attempt: bool
    ) -> None:
        values = {
            ":add": {"N": str(int(count_attempt))},
            ":due": {"N": f"{time.time() + delay_seconds:.6f}"},
            ":zero": {"N": "0"},
            ":dead": DEAD,
        }

        async def release(event_id: str) -> bool:
            return await self._update(
                client,
                event_id,
                "release",
                UpdateExpression="SET #a = #a + :add, #d = :due, #l = :zero",
                ConditionExpression="attribute_exists(#i) AND #s <> :dead",
                ExpressionAttributeValues=values,
            )

        await bounded(self.concurrency, release, list(event_ids))

    async def dead_letter_events(self, client: DynamoDBClient, reasons: Mapping[str, str]) -> None:
        now = {"N": f"{time.time():.6f}"}

        async def bury(item: tuple[str, str]) -> bool:
            event_id, reason = item
            return await self._update(
                client,
                event_id,
                "dead_letter",
                UpdateExpression="SET #s = :dead, #d = :now, #a = #a + :one, #l = :zero, #r = :reason",
                ConditionExpression="attribute_exists(#i) AND #s <> :dead",
                ExpressionAttributeValues={
                    ":dead": DEAD,
                    ":now": now,
                    ":one": {"N": "1"},
                    ":zero": {"N": "0"},
                    ":reason": {"S": reason},
                },
            )

        await bounded(self.concurrency, bury, list(reasons.items()))

    async def _dead_ids(
        self, client: DynamoDBClient, limit: int, after: DeadLetterCursor | None
    ) -> tuple[list[str], DeadLetterCursor | None]:
        """Up to `limit` dead letters' ids from the index, the longest dead first, and where the next page starts."""
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": OUTBOX_INDEX,
            "KeyConditionExpression": "#s = :dead",
            "ExpressionAttributeNames": {"#s": "shard"},
            "ExpressionAttributeValues": {":dead": DEAD},
        }
        if after is not None:
            request["ExclusiveStartKey"] = {
                "event_id": {"S": after.event_id},
                "shard": DEAD,
                "due_at": {"N": f"{after.dead_at_epoch:.6f}"},
            }
        ids: list[str] = []
        with metrics.timer("dynamodb.outbox_dead_query"), translated("outbox Query"):
            while len(ids) < limit:
                page = await client.query(**request, Limit=limit - len(ids))
                ids += [item["event_id"]["S"] for item in page.get("Items", [])]
                if "LastEvaluatedKey" not in page:
                    return ids, None
                request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        last = request["ExclusiveStartKey"]
        return ids, DeadLetterCursor(float(last["due_at"]["N"]), last["event_id"]["S"])

    async def list_dead_letters(
        self, client: DynamoDBClient, limit: int, after: DeadLetterCursor | None
    ) -> DeadLetterPage:
        """The index holds ids and times; the letters themselves are read from the table by BatchGetItem."""
        ids, following = await self._dead_ids(client, limit, after)
        found: dict[str, dict[str, Any]] = {}
        deadline = time.monotonic() + self.deadline_seconds
        for chunk in chunks(ids, MAX_BATCH_KEYS):
            request = {
                self.table: {"Keys": [{"event_id": {"S": event_id}} for event_id in chunk], "ConsistentRead": True}
            }
            attempt = 0
            while request:
                with metrics.timer("dynamodb.outbox_dead_read"), translated("outbox BatchGetItem"):
                    answer = await client.batch_get_item(RequestItems=request)
                for item in answer.get("Responses", {}).get(self.table, []):
                    found[item["event_id"]["S"]] = item
                request = answer.get("UnprocessedKeys") or {}
                if request:
                    if time.monotonic() > deadline:
                        raise StoreUnavailable("DynamoDB left dead letters unread (throttled)")
                    await asyncio.sleep(backoff(attempt))
                    attempt += 1
        letters = [
            dead_letter(found[event_id])
            for event_id in ids
            if event_id in found and found[event_id].get("shard", {}).get("S") == DEAD_SHARD
        ]
        return DeadLetterPage(letters, following)

    async def redrive_dead_letters(
        self, client: DynamoDBClient, event_ids: Sequence[str] | None, limit: int
    ) -> list[str]:
        if event_ids is None:
            event_ids, _ = await self._dead_ids(client, limit, None)
        now = {"N": f"{time.time():.6f}"}

        async def redrive(event_id: str) -> bool:
            return await self._update(
                client,
                event_id,
                "redrive",
                UpdateExpression="SET #s = :shard, #d = :now, #a = :zero, #l = :zero REMOVE #r",
                ConditionExpression="#s = :dead",
                ExpressionAttributeValues={
                    ":dead": DEAD,
                    ":shard": {"S": outbox_shard(event_id)},
                    ":now": now,
                    ":zero": {"N": "0"},
                },
            )

        unique = list(dict.fromkeys(event_ids))
        done = await bounded(self.concurrency, redrive, unique)
        return [event_id for event_id, redriven in zip(unique, done, strict=True) if redriven]

    async def _count_dead(self, client: DynamoDBClient) -> int:
        request: dict[str, Any] = {
            "TableName": self.table,
            "IndexName": OUTBOX_INDEX,
            "KeyConditionExpression": "#s = :dead",
            "ExpressionAttributeNames": {"#s": "shard"},
            "ExpressionAttributeValues": {":dead": DEAD},
            "Select": "COUNT",
        }
        count = 0
        while True:
            page = await client.query(**request)
            count += page.get("Count", 0)
            if "LastEvaluatedKey" not in page:
                return count
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]

    async def outbox_stats(self, client: DynamoDBClient) -> OutboxStats:
        """Counts every pending event and dead letter (the relay calls this every OUTBOX_GAUGE_SECONDS,
        never a request), reading the small items of the due-time index rather than the events."""
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
            dead = await self._count_dead(client)
        return OutboxStats(
            pending=pending,
            oldest_age_seconds=max(0.0, time.time() - oldest) if oldest else 0.0,
            dead_letters=dead,
        )

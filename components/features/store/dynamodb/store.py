"""Production online store on DynamoDB, through the process-wide asyncio client
(`core.dynamodb_client`): every call is network I/O awaited on the event loop, never a thread.

Reads: GetItem for one category, BatchGetItem in 100-key chunks (at most `DYNAMODB_BATCH_CONCURRENCY`
in flight per read) for more, keys left unprocessed asked again with backoff until the read deadline.
Writes: one transaction per entity, one conditional update per category plus its event in the
outbox table (see `transactions`); a bulk write's entities several at once.
"""

import asyncio
import time
from collections.abc import Mapping, Sequence
from typing import Any

from components.events.events import OutboxEvent
from components.events.outbox import DeadLetterCursor, DeadLetterPage, OutboxStats
from components.features.store.base import (
    BatchRead,
    CategoryWrite,
    EntityWrite,
    Erasure,
    Idempotency,
    KeptVersion,
    StoredCategory,
    Wanted,
    chunks,
)
from components.features.store.dynamodb import history, items
from components.features.store.dynamodb.erase import erase
from components.features.store.dynamodb.errors import (
    translated,
)
from components.features.store.dynamodb.items import CATEGORY
from components.features.store.dynamodb.outbox import DynamoDBOutbox, backoff, bounded
from components.features.store.dynamodb.tables import create_tables
from components.features.store.dynamodb.transactions import MAX_TRANSACTION_ACTIONS, EntityCommit, Known, commit
from core.dynamodb_client import DynamoDBClient, DynamoDBError, get_client_async
from core.dynamodb_client.retries import THROTTLING, failure_kind
from core.exceptions import FeatureStoreError, OutcomeUnknown, StoreUnavailable
from core.metrics import metrics
from core.settings import EntityType, Settings

MAX_BATCH_KEYS = 100
PROBE_KEY = "readiness-probe"
"""The outbox key the write probe deletes; no event ever has it (event ids are UUIDs)."""


class DynamoDBStore:
    name = "dynamodb"
    max_categories_per_write = (MAX_TRANSACTION_ACTIONS - 1) // 2
    """A transaction holds at most 100 actions: one update per category plus one outbox put, and the record of
    an `Idempotency-Key`."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.consistent = settings.dynamodb_consistent_reads
        self.deadline_seconds = settings.dynamodb_read_deadline_seconds
        self.concurrency = settings.dynamodb_batch_concurrency
        self.write_concurrency = settings.dynamodb_write_concurrency
        self.outbox = DynamoDBOutbox(settings.dynamodb_table_outbox, self.deadline_seconds, self.concurrency)
        self._client: DynamoDBClient | None = None
        self._ready = False
        self.writable = True
        self._known: Known = {}

    @property
    def client(self) -> DynamoDBClient:
        """The shared client, once `initialise` (or the first call) has fetched it."""
        if self._client is None:
            raise StoreUnavailable("the DynamoDB client is not created yet")
        return self._client

    async def _connected(self) -> DynamoDBClient:
        client = self._client
        if client is None:
            await self.initialise()
            client = self.client
        return client

    async def initialise(self) -> list[str]:
        """Fetch the process-wide client (built on first use, in a thread: resolving credentials and the
        endpoint may block) and create the tables where allowed. Idempotent."""
        if self._ready:
            return []
        with translated("client creation"):
            client = await get_client_async(self.settings)
        actions = []
        if not self._ready:
            where = self.settings.dynamodb_endpoint_url or self.settings.aws_region
            actions.append(f"DynamoDB client ready ({where})")
            if self.settings.dynamodb_create_tables:
                actions += await create_tables(client, self.settings)
            self._client = client
            self._ready = True
        return actions

    async def check(self) -> None:
        """DescribeTable for every table and a write probe, one attempt each, concurrently (the caller
        bounds the time: a retry budget of seconds would outlast any readiness probe's timeout)."""
        client = await self._connected()
        tables = [entity.table for entity in self.settings.entity_types.values()] + [self.outbox.table]

        async def status(table: str) -> None:
            with translated(f"DescribeTable {table}"):
                answer = await client.call("DescribeTable", {"TableName": table}, max_attempts=1)
            state = answer["Table"]["TableStatus"]
            if state not in ("ACTIVE", "UPDATING"):
                raise StoreUnavailable(f"DynamoDB table {table} is {state}")

        async def probe() -> None:
            # Deleting an item that never exists: a write DynamoDB must accept, which changes nothing.
            # BatchWriteItem, the call that removes delivered events, so the probe needs no permission more.
            request = {"DeleteRequest": {"Key": {"event_id": {"S": PROBE_KEY}}}}
            with translated("the write probe"):
                await client.call("BatchWriteItem", {"RequestItems": {self.outbox.table: [request]}}, max_attempts=1)
            self.writable = True

        await asyncio.gather(*(status(table) for table in tables), probe())

    async def close(self) -> None:
        """Close the shared client's connections of the running loop (a later call opens new ones)."""
        if self._client is not None:
            await self._client.close()

    # --- reads ---

    async def _fetch(
        self,
        client: DynamoDBClient,
        table: str,
        keys: Sequence[dict[str, Any]],
        projection: dict[str, Any],
        deadline: float,
        consistent: bool | None = None,
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """BatchGetItem one chunk, retrying unprocessed keys with backoff until the deadline; return
        the items found and the keys still unprocessed."""
        consistent = self.consistent if consistent is None else consistent
        request = {table: {"Keys": list(keys), "ConsistentRead": consistent, **projection}}
        found: list[dict[str, Any]] = []
        attempt = 0
        while True:
            with metrics.timer("dynamodb.batch_get_item"), translated("BatchGetItem"):
                response = await client.batch_get_item(RequestItems=request)
            found += response.get("Responses", {}).get(table, [])
            unprocessed = response.get("UnprocessedKeys", {}).get(table)
            if not unprocessed or not unprocessed.get("Keys"):
                return found, []
            delay = backoff(attempt)
            attempt += 1
            if time.monotonic() + delay >= deadline:
                return found, unprocessed["Keys"]
            await asyncio.sleep(delay)
            request = {table: unprocessed}

    async def read(self, entity_type: EntityType, entity_value: str, wanted: Wanted) -> dict[str, StoredCategory]:
        client = self._client or await self._connected()
        projection = items.projection(entity_type, wanted)
        if len(wanted) == 1:
            (category,) = wanted
            with metrics.timer("dynamodb.get_item", entity_type=entity_type.name), translated("GetItem"):
                answer = await client.get_item(
                    TableName=entity_type.table,
                    Key=items.key(entity_type, entity_value, category),
                    ConsistentRead=self.consistent,
                    **projection,
                )
            item = answer.get("Item")
            return {category: items.stored(item)} if item else {}
        deadline = time.monotonic() + self.deadline_seconds
        keys = [items.key(entity_type, entity_value, category) for category in wanted]
        found: dict[str, StoredCategory] = {}
        for chunk in chunks(keys, MAX_BATCH_KEYS):
            fetched, unprocessed = await self._fetch(client, entity_type.table, chunk, projection, deadline)
            if unprocessed:
                raise StoreUnavailable(
                    "DynamoDB left keys unprocessed past the read deadline (throttled)", retry_after=1
                )
            found |= {item[CATEGORY]["S"]: items.stored(item) for item in fetched}
        return found

    async def read_entity(self, entity_type: EntityType, entity_value: str) -> dict[str, StoredCategory]:
        """One Query of the entity's categories, page after page (its history items sort after them)."""
        client = self._client or await self._connected()
        request: dict[str, Any] = {
            "TableName": entity_type.table,
            "KeyConditionExpression": "#k = :v AND #c < :h",
            "ExpressionAttributeNames": {"#k": entity_type.key_attribute, "#c": CATEGORY},
            "ExpressionAttributeValues": {":v": {"S": entity_value}, ":h": {"S": history.PREFIX}},
            "ConsistentRead": self.consistent,
        }
        found: dict[str, StoredCategory] = {}
        with metrics.timer("dynamodb.query_entity", entity_type=entity_type.name), translated("Query"):
            while True:
                answer = await client.query(**request)
                found |= {item[CATEGORY]["S"]: items.stored(item) for item in answer.get("Items", [])}
                if "LastEvaluatedKey" not in answer:
                    return found
                request["ExclusiveStartKey"] = answer["LastEvaluatedKey"]

    async def read_batch(self, entity_type: EntityType, entity_values: Sequence[str], wanted: Wanted) -> BatchRead:
        """Every wanted category of every entity in 100-key chunks, fetched concurrently; an entity whose
        keys are still unfetched at the deadline is reported failed instead of failing the rest."""
        client = self._client or await self._connected()
        values = list(dict.fromkeys(entity_values))
        keys = [items.key(entity_type, value, category) for value in values for category in wanted]
        projection = items.projection(entity_type, wanted)
        deadline = time.monotonic() + self.deadline_seconds
        key_attribute = entity_type.key_attribute

        async def fetch(
            chunk: Sequence[dict[str, Any]],
        ) -> tuple[list[dict[str, Any]], Sequence[dict[str, Any]], FeatureStoreError | None]:
            try:
                fetched, unprocessed = await self._fetch(client, entity_type.table, chunk, projection, deadline)
            except FeatureStoreError as exc:
                return [], chunk, exc
            return fetched, unprocessed, None

        results = await bounded(self.concurrency, fetch, list(chunks(keys, MAX_BATCH_KEYS)))
        found: dict[str, dict[str, StoredCategory]] = {}
        failed: set[str] = set()
        errors = [error for _, _, error in results if error is not None]
        for fetched, unprocessed, _ in results:
            for item in fetched:
                found.setdefault(item[key_attribute]["S"], {})[item[CATEGORY]["S"]] = items.stored(item)
            failed.update(key[key_attribute]["S"] for key in unprocessed)
        if errors and len(failed) == len(values):
            raise errors[0]
        for value in failed:
            found.pop(value, None)
        return BatchRead(found=found, failed=frozenset(failed))

    async def read_history(
        self, entity_type: EntityType, entity_value: str, categories: Sequence[str]
    ) -> dict[str, list[KeptVersion]]:
        """One Query of the entity's history items (of the one category asked, or of all of them)."""
        client = self._client or await self._connected()
        only = categories[0] if len(categories) == 1 else None
        with metrics.timer("dynamodb.query_history", entity_type=entity_type.name):
            found = await history.stored_items(client, entity_type, entity_value, self.consistent, only)
        wanted = set(categories)
        return {
            category: [history.kept_version(item) for item in reversed(kept) if history.is_kept(item)]
            for category, kept in found.items()
            if category in wanted and any(history.is_kept(item) for item in kept)
        }

    # --- writes ---

    async def write(
        self,
        entity_type: EntityType,
        entity_value: str,
        writes: Sequence[CategoryWrite],
        now_iso: str,
        idempotency: Idempotency | None = None,
    ) -> list[str]:
        entity = EntityCommit(entity_type, entity_value, writes, now_iso, self._known, idempotency)
        client = await self._writing_client()
        failed = await self._learn_versions(client, entity_type, [entity])
        if failed:
            raise failed[entity_value]
        return await self._commit(client, entity)

    async def write_many(
        self, entity_type: EntityType, entities: Sequence[EntityWrite], now_iso: str
    ) -> list[list[str] | FeatureStoreError]:
        """The versions this process does not know read for all entities at once (100 keys a call), then one
        transaction per entity (see `transactions`), at most `DYNAMODB_WRITE_CONCURRENCY` in flight."""
        results: list[list[str] | FeatureStoreError] = []
        commits: list[EntityCommit] = []
        for entity in entities:
            try:
                commits.append(
                    EntityCommit(
                        entity_type, entity.entity_value, entity.writes, now_iso, self._known, entity.idempotency
                    )
                )
                results.append([])
            except FeatureStoreError as exc:
                results.append(exc)
        try:
            client = await self._writing_client()
        except StoreUnavailable as exc:
            return [exc] * len(entities)
        failed = await self._learn_versions(client, entity_type, commits)

        async def one(entity: EntityCommit) -> list[str] | FeatureStoreError:
            if entity.entity_value in failed:
                return failed[entity.entity_value]
            try:
                return await self._commit(client, entity)
            except FeatureStoreError as exc:
                return exc

        committed = iter(await bounded(self.write_concurrency, one, commits))
        return [result if isinstance(result, FeatureStoreError) else next(committed) for result in results]

    async def _writing_client(self) -> DynamoDBClient:
        """The client, or StoreUnavailable, which marks the store unwritable like a failed write."""
        try:
            return self._client or await self._connected()
        except StoreUnavailable as exc:
            self._failed_write(exc)
            raise

    async def _commit(self, client: DynamoDBClient, entity: EntityCommit) -> list[str]:
        try:
            skipped = await commit(client, entity, self.outbox.table, self._known)
        except (StoreUnavailable, OutcomeUnknown) as exc:
            self._failed_write(exc)
            raise
        self.writable = True
        return skipped

    async def _learn_versions(
        self, client: DynamoDBClient, entity_type: EntityType, entities: Sequence[EntityCommit]
    ) -> dict[str, FeatureStoreError]:
        """Read, consistently, the stored versions of the categories the entities' writes could not guess (see
        `transactions`); return the entities whose read failed, with the error (nothing of theirs is written).
        Keys left unprocessed past the deadline keep their guess: the transaction corrects a wrong one."""
        keys = [
            items.key(entity_type, entity.entity_value, category) for entity in entities for category in entity.unknown
        ]
        if not keys:
            return {}
        projection = items.version_projection(entity_type)
        deadline = time.monotonic() + self.deadline_seconds
        key_attribute = entity_type.key_attribute

        async def fetch(chunk: Sequence[dict[str, Any]]) -> list[dict[str, Any]] | FeatureStoreError:
            try:
                with metrics.timer("dynamodb.read_versions", entity_type=entity_type.name):
                    fetched, _ = await self._fetch(
                        client, entity_type.table, chunk, projection, deadline, consistent=True
                    )
            except FeatureStoreError as exc:
                if isinstance(exc, StoreUnavailable):
                    self._failed_write(exc)
                return exc
            return fetched

        chunked = list(chunks(keys, MAX_BATCH_KEYS))
        found: dict[str, dict[str, dict[str, Any]]] = {}
        failed: dict[str, FeatureStoreError] = {}
        for chunk, result in zip(chunked, await bounded(self.concurrency, fetch, chunked), strict=True):
            if isinstance(result, FeatureStoreError):
                failed |= {key[key_attribute]["S"]: result for key in chunk}
                continue
            for item in result:
                found.setdefault(item[key_attribute]["S"], {})[item[CATEGORY]["S"]] = item
        for entity in entities:
            if entity.entity_value not in failed:
                entity.learn(found.get(entity.entity_value, {}))
        return failed

    def _failed_write(self, exc: StoreUnavailable | OutcomeUnknown) -> None:
        """DynamoDB unreachable, failing or its tables gone: not writable until a write or the probe
        passes. Throttling and conflicts are load, which every replica shares: no reason to stop one."""
        cause = exc.__cause__
        if isinstance(cause, DynamoDBError) and failure_kind(cause) != THROTTLING:
            self.writable = False

    async def delete(self, entity_type: EntityType, entity_value: str, erasure: Erasure) -> list[str]:
        client = self._client or await self._connected()
        for category in erasure.categories or ():
            self._known.pop((entity_type.table, entity_value, category), None)
        return await erase(client, entity_type, entity_value, erasure, self.outbox.table)

    # --- outbox ---

    async def claim_events(self, limit: int, lease_seconds: float) -> list[OutboxEvent]:
        return await self.outbox.claim_events(await self._connected(), limit, lease_seconds)

    async def delete_events(self, event_ids: Sequence[str]) -> None:
        await self.outbox.delete_events(await self._connected(), event_ids)

    async def retry_events(self, event_ids: Sequence[str], delay_seconds: float, *, count_attempt: bool) -> None:
        await self.outbox.retry_events(await self._connected(), event_ids, delay_seconds, count_attempt)

    async def dead_letter_events(self, reasons: Mapping[str, str]) -> None:
        await self.outbox.dead_letter_events(await self._connected(), reasons)

    async def list_dead_letters(self, limit: int, after: DeadLetterCursor | None) -> DeadLetterPage:
        return await self.outbox.list_dead_letters(await self._connected(), limit, after)

    async def redrive_dead_letters(self, event_ids: Sequence[str] | None, limit: int) -> list[str]:
        return await self.outbox.redrive_dead_letters(await self._connected(), event_ids, limit)

    async def outbox_stats(self) -> OutboxStats:
        return await self.outbox.outbox_stats(await self._connected())

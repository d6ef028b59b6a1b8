"""Production online store on DynamoDB, through the process-wide low-level client (`core.dynamodb`).

Layout: one table per entity type, partition key = the entity id attribute, sort key `category`;
each item holds `features.data` and `features.metadata` maps, plus `event_time` (the ordering key)
and `expires_at` (epoch seconds, the table's native TTL attribute). Events wait in an outbox table
keyed by `event_id`, written in the same transaction as the features they announce.

A category is written by one of two updates: for an existing item, one that sets `features.data`
and each metadata field, so `created_at` stays; for a new item, one that sets the whole `features`
map with `created_at`. Each is conditional (exists / does not exist, and the stored `event_time` is
not newer), so a cancelled transaction says per category which form to retry and which categories
are stale; those are left out and the rest is committed again.
"""

import logging
import random
import threading
import time
import uuid
import zlib
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from typing import Any, ParamSpec, TypeVar

import anyio.to_thread
from botocore.exceptions import BotoCoreError, ClientError, ParamValidationError

from components.features.store.base import BatchRead, CategoryWrite, StoredCategory, Wanted
from components.features.store.dynamodb_values import decode_map, encode, encode_map, item_size
from core.dynamodb import get_client
from core.events import OutboxEvent
from core.exceptions import FeatureStoreError, PayloadTooLarge, StoreUnavailable
from core.metrics import metrics
from core.outbox import OutboxStats
from core.serialization import dumps, loads
from core.settings import EntityType, Settings

CATEGORY = "category"
FEATURES = "features"
DATA = "data"
METADATA = "metadata"
EVENT_TIME = "event_time"
EXPIRES_AT = "expires_at"
"""Epoch seconds; the table's TTL attribute, so DynamoDB deletes expired items (within days)."""

MAX_ITEM_BYTES = 400 * 1024
MAX_TRANSACTION_BYTES = 4 * 1024 * 1024
MAX_TRANSACTION_ACTIONS = 100
MAX_BATCH_KEYS = 100
MAX_BATCH_WRITES = 25
OUTBOX_INDEX = "due"
OUTBOX_SHARDS = 4
"""The outbox's due-time index is spread over this many partition keys (a single one would cap
the whole service's write rate at one index partition's); a claim queries each of them."""
MAX_PROJECTED_FEATURES = 100
"""Beyond this, the projection would near DynamoDB's 4 KB expression limit: read whole items instead."""
MAX_WRITE_ATTEMPTS = 8

logger = logging.getLogger("feature_store.dynamodb")

_CREATE, _UPDATE = "create", "update"
_SIZE_ERRORS = ("item size", "size has exceeded", "cannot exceed 4 mb", "transaction request cannot exceed")
_THROTTLED = {"ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}


def _backoff(attempt: int) -> float:
    return min(0.5, 0.01 * 2**attempt) * random.uniform(0.5, 1.0)


def _chunks(items: Sequence[Any], size: int) -> Iterator[Sequence[Any]]:
    for start in range(0, len(items), size):
        yield items[start : start + size]


def _code(exc: ClientError) -> str:
    return exc.response.get("Error", {}).get("Code", "Unknown")


def _size_error(message: str) -> bool:
    lowered = message.lower()
    return any(marker in lowered for marker in _SIZE_ERRORS)


def translate_error(exc: Exception, action: str) -> FeatureStoreError:
    """DynamoDB's errors in the service's terms: size limits are the client's (413); throttling,
    outages, missing tables and credentials are ours to retry (503); anything else is a bug (500).
    Clients see the error's code only; the log keeps DynamoDB's own words (endpoints, table names)."""
    logger.warning("DynamoDB %s failed: %s", action, exc)
    if isinstance(exc, ClientError):
        code, message = _code(exc), exc.response.get("Error", {}).get("Message", "")
        if code == "ValidationException" and _size_error(message):
            return PayloadTooLarge(f"DynamoDB refused the item: {message}")
        if code in ("ValidationException", "SerializationException"):
            return FeatureStoreError(f"DynamoDB rejected {action} ({code})")
        if "Throttl" in code or "LimitExceeded" in code or "ThroughputExceeded" in code:
            return StoreUnavailable(f"DynamoDB is throttling {action} ({code})", retry_after=1)
        return StoreUnavailable(f"DynamoDB could not serve {action} ({code})", retry_after=2)
    if isinstance(exc, ParamValidationError):
        return FeatureStoreError(f"invalid DynamoDB request for {action}")
    return StoreUnavailable(f"DynamoDB unreachable for {action} ({type(exc).__name__})", retry_after=2)


@contextmanager
def _translated(action: str) -> Iterator[None]:
    try:
        yield
    except (ClientError, BotoCoreError) as exc:
        raise translate_error(exc, action) from exc


def _create_table(client: Any, name: str, keys: Sequence[tuple[str, str]], **extra: Any) -> bool:
    attributes = [{"AttributeName": attribute, "AttributeType": "S"} for attribute, _ in keys]
    try:
        client.create_table(
            TableName=name,
            KeySchema=[{"AttributeName": attribute, "KeyType": kind} for attribute, kind in keys],
            AttributeDefinitions=attributes + extra.pop("AttributeDefinitions", []),
            BillingMode="PAY_PER_REQUEST",
            **extra,
        )
    except ClientError as exc:
        if _code(exc) == "ResourceInUseException":
            return False
        raise
    client.get_waiter("table_exists").wait(TableName=name, WaiterConfig={"Delay": 1, "MaxAttempts": 60})
    return True


def _enable_ttl(client: Any, table: str) -> bool:
    status = client.describe_time_to_live(TableName=table).get("TimeToLiveDescription", {})
    if status.get("TimeToLiveStatus") in ("ENABLED", "ENABLING"):
        return False
    client.update_time_to_live(TableName=table, TimeToLiveSpecification={"Enabled": True, "AttributeName": EXPIRES_AT})
    return True


def create_tables(client: Any, settings: Settings) -> list[str]:
    """Create the missing tables (pay per request) with TTL on `expires_at`; say what was done. Idempotent."""
    actions = []
    with _translated("table creation"):
        for entity in settings.entity_types.values():
            if _create_table(client, entity.table, [(entity.key_attribute, "HASH"), (CATEGORY, "RANGE")]):
                actions.append(f"created table {entity.table}")
            if _enable_ttl(client, entity.table):
                actions.append(f"enabled TTL on {entity.table}.{EXPIRES_AT}")
        due_index = {
            "IndexName": OUTBOX_INDEX,
            "KeySchema": [
                {"AttributeName": "shard", "KeyType": "HASH"},
                {"AttributeName": "due_at", "KeyType": "RANGE"},
            ],
            "Projection": {"ProjectionType": "INCLUDE", "NonKeyAttributes": ["lease_until", "created_at"]},
        }
        if _create_table(
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
    return actions


def _stored(item: dict[str, Any]) -> StoredCategory:
    features = item.get(FEATURES, {}).get("M", {})
    data = features.get(DATA)
    metadata = features.get(METADATA)
    expires = item.get(EXPIRES_AT)
    return StoredCategory(
        decode_map(data["M"]) if data else {},
        decode_map(metadata["M"]) if metadata else {},
        float(expires["N"]) if expires else None,
    )


class BlockingDynamoDBStore:
    max_categories_per_write = MAX_TRANSACTION_ACTIONS // 2
    """A transaction holds at most 100 actions: one update per category plus one outbox put."""

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.outbox_table = settings.dynamodb_table_outbox
        self.consistent = settings.dynamodb_consistent_reads
        self.deadline_seconds = settings.dynamodb_read_deadline_seconds
        self._client: Any = None
        self._lock = threading.Lock()
        self._pool = ThreadPoolExecutor(settings.dynamodb_batch_threads, thread_name_prefix="dynamodb-batch")

    @property
    def client(self) -> Any:
        if self._client is None:
            self.initialise()
        return self._client

    def initialise(self) -> list[str]:
        if self._client is not None:
            return []
        with self._lock:
            if self._client is not None:
                return []
            with _translated("client creation"):
                client = get_client(self.settings)
            actions = [f"DynamoDB client ready ({self.settings.dynamodb_endpoint_url or self.settings.aws_region})"]
            if self.settings.dynamodb_create_tables:
                actions += create_tables(client, self.settings)
            self._client = client
        return actions

    def check(self) -> None:
        client = self.client
        tables = [entity.table for entity in self.settings.entity_types.values()] + [self.outbox_table]
        for table in tables:
            with _translated(f"DescribeTable {table}"):
                status = client.describe_table(TableName=table)["Table"]["TableStatus"]
            if status not in ("ACTIVE", "UPDATING"):
                raise StoreUnavailable(f"DynamoDB table {table} is {status}")

    # --- reads ---

    def _projection(self, entity_type: EntityType, wanted: Wanted) -> dict[str, Any]:
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

    def _key(self, entity_type: EntityType, entity_value: str, category: str) -> dict[str, Any]:
        return {entity_type.key_attribute: {"S": entity_value}, CATEGORY: {"S": category}}

    def _fetch(
        self, table: str, keys: Sequence[dict[str, Any]], projection: dict[str, Any], deadline: float
    ) -> tuple[list[dict[str, Any]], list[dict[str, Any]]]:
        """BatchGetItem one chunk, retrying unprocessed keys with backoff until the deadline; return
        the items found and the keys still unprocessed."""
        request = {table: {"Keys": list(keys), "ConsistentRead": self.consistent, **projection}}
        items: list[dict[str, Any]] = []
        attempt = 0
        while True:
            with metrics.timer("dynamodb.batch_get_item"), _translated("BatchGetItem"):
                response = self.client.batch_get_item(RequestItems=request)
            items += response.get("Responses", {}).get(table, [])
            unprocessed = response.get("UnprocessedKeys", {}).get(table)
            if not unprocessed or not unprocessed.get("Keys"):
                return items, []
            delay = _backoff(attempt)
            attempt += 1
            if time.monotonic() + delay >= deadline:
                return items, unprocessed["Keys"]
            time.sleep(delay)
            request = {table: unprocessed}

    def read(self, entity_type: EntityType, entity_value: str, wanted: Wanted) -> dict[str, StoredCategory]:
        projection = self._projection(entity_type, wanted)
        if len(wanted) == 1:
            (category,) = wanted
            with metrics.timer("dynamodb.get_item", entity_type=entity_type.name), _translated("GetItem"):
                item = self.client.get_item(
                    TableName=entity_type.table,
                    Key=self._key(entity_type, entity_value, category),
                    ConsistentRead=self.consistent,
                    **projection,
                ).get("Item")
            return {category: _stored(item)} if item else {}
        deadline = time.monotonic() + self.deadline_seconds
        found: dict[str, StoredCategory] = {}
        keys = [self._key(entity_type, entity_value, category) for category in wanted]
        for chunk in _chunks(keys, MAX_BATCH_KEYS):
            items, unprocessed = self._fetch(entity_type.table, chunk, projection, deadline)
            if unprocessed:
                raise StoreUnavailable(
                    "DynamoDB left keys unprocessed past the read deadline (throttled)", retry_after=1
                )
            found |= {item[CATEGORY]["S"]: _stored(item) for item in items}
        return found

    def read_batch(self, entity_type: EntityType, entity_values: Sequence[str], wanted: Wanted) -> BatchRead:
        """Every wanted category of every entity in 100-key chunks fetched in parallel; an entity whose
        keys are still unfetched at the deadline is reported failed instead of failing the rest."""
        values = list(dict.fromkeys(entity_values))
        keys = [self._key(entity_type, value, category) for value in values for category in wanted]
        projection = self._projection(entity_type, wanted)
        deadline = time.monotonic() + self.deadline_seconds
        key_attribute = entity_type.key_attribute

        def fetch(
            chunk: Sequence[dict[str, Any]],
        ) -> tuple[list[dict[str, Any]], Sequence[dict[str, Any]], FeatureStoreError | None]:
            try:
                items, unprocessed = self._fetch(entity_type.table, chunk, projection, deadline)
            except FeatureStoreError as exc:
                return [], chunk, exc
            return items, unprocessed, None

        chunks = list(_chunks(keys, MAX_BATCH_KEYS))
        results = [fetch(chunks[0])] if len(chunks) == 1 else list(self._pool.map(fetch, chunks))
        found: dict[str, dict[str, StoredCategory]] = {}
        failed: set[str] = set()
        errors = [error for _, _, error in results if error is not None]
        for items, unprocessed, _ in results:
            for item in items:
                found.setdefault(item[key_attribute]["S"], {})[item[CATEGORY]["S"]] = _stored(item)
            failed.update(key[key_attribute]["S"] for key in unprocessed)
        if errors and len(failed) == len(values):
            raise errors[0]
        for value in failed:
            found.pop(value, None)
        return BatchRead(found=found, failed=frozenset(failed))

    # --- writes ---

    def _upsert(
        self,
        entity_type: EntityType,
        entity_value: str,
        write: CategoryWrite,
        data: dict[str, Any],
        metadata: dict[str, Any],
        mode: str,
        now_iso: str,
    ) -> dict[str, Any]:
        names = {"#k": entity_type.key_attribute, "#f": FEATURES, "#e": EVENT_TIME, "#x": EXPIRES_AT}
        values: dict[str, Any] = {":e": {"S": write.event_time}}
        if mode == _CREATE:
            values[":f"] = {"M": {DATA: data, METADATA: {"M": {"created_at": {"S": now_iso}, **metadata}}}}
            assignments = ["#f = :f", "#e = :e"]
            condition = "attribute_not_exists(#k)"
        else:
            names |= {"#d": DATA, "#m": METADATA}
            values[":d"] = data
            assignments = ["#f.#d = :d", "#e = :e"]
            for index, (field, value) in enumerate(metadata.items()):
                names[f"#m{index}"] = field
                values[f":m{index}"] = value
                assignments.append(f"#f.#m.#m{index} = :m{index}")
            condition = "attribute_exists(#k) AND (attribute_not_exists(#e) OR #e <= :e)"
        expression = "SET " + ", ".join(assignments)
        if write.expires_at_epoch is not None:
            values[":x"] = {"N": f"{write.expires_at_epoch:.6f}"}
            expression += ", #x = :x"
        else:
            expression += " REMOVE #x"
        return {
            "Update": {
                "TableName": entity_type.table,
                "Key": self._key(entity_type, entity_value, write.category),
                "UpdateExpression": expression,
                "ConditionExpression": condition,
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        }

    def _outbox_put(self, event: OutboxEvent) -> dict[str, Any]:
        return {
            "Put": {
                "TableName": self.outbox_table,
                "Item": {
                    "event_id": {"S": event.event_id},
                    "event_key": {"S": event.key},
                    "payload": {"S": dumps(event.payload).decode()},
                    "created_at": {"N": f"{event.created_at_epoch:.6f}"},
                    "attempts": {"N": str(event.attempts)},
                    "shard": {"S": str(zlib.crc32(event.event_id.encode()) % OUTBOX_SHARDS)},
                    "due_at": {"N": f"{event.created_at_epoch:.6f}"},
                    "lease_until": {"N": "0"},
                },
            }
        }

    def _item_size(
        self,
        entity_type: EntityType,
        entity_value: str,
        write: CategoryWrite,
        encoded: tuple,
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
                **self._key(entity_type, entity_value, write.category),
                FEATURES: {"M": {DATA: data, METADATA: {"M": {"created_at": {"S": now_iso}, **metadata}}}},
                EVENT_TIME: {"S": write.event_time},
                EXPIRES_AT: {"N": f"{write.expires_at_epoch or 0:.6f}"},
            }
        )

    def _check_sizes(
        self,
        entity_type: EntityType,
        entity_value: str,
        writes: Sequence[CategoryWrite],
        encoded: dict[str, tuple],
        now_iso: str,
    ) -> None:
        """Refuse, before anything is sent, an item over DynamoDB's 400 KB or a transaction over 4 MB."""
        for exact in (False, True):
            sizes = {
                write.category: self._item_size(
                    entity_type, entity_value, write, encoded[write.category], now_iso, exact
                )
                for write in writes
            }
            for category, size in sizes.items():
                if size > MAX_ITEM_BYTES:
                    raise PayloadTooLarge(
                        f"category {category!r} would be a {size}-byte item; "
                        f"DynamoDB stores at most {MAX_ITEM_BYTES} bytes per item"
                    )
            total = sum(sizes.values())
            if total <= MAX_TRANSACTION_BYTES:
                return
        raise PayloadTooLarge(
            f"the write would be {total} bytes; DynamoDB commits at most {MAX_TRANSACTION_BYTES} at once"
        )

    def write(
        self, entity_type: EntityType, entity_value: str, writes: Sequence[CategoryWrite], now_iso: str
    ) -> list[str]:
        encoded = {write.category: (encode(write.data), encode_map(write.metadata)) for write in writes}
        self._check_sizes(entity_type, entity_value, writes, encoded, now_iso)
        modes = dict.fromkeys(encoded, _UPDATE)
        skipped: set[str] = set()
        pending = list(writes)
        for attempt in range(MAX_WRITE_ATTEMPTS):
            if not pending:
                break
            actions = [
                self._upsert(entity_type, entity_value, write, *encoded[write.category], modes[write.category], now_iso)
                for write in pending
            ]
            actions += [self._outbox_put(write.event) for write in pending]
            started = time.perf_counter()
            try:
                self.client.transact_write_items(TransactItems=actions, ClientRequestToken=str(uuid.uuid4()))
                break
            except ClientError as exc:
                if _code(exc) != "TransactionCanceledException":
                    raise translate_error(exc, "TransactWriteItems") from exc
                pending, conflicted = self._after_cancel(
                    pending, exc.response.get("CancellationReasons") or [], modes, skipped
                )
                if conflicted:
                    time.sleep(_backoff(attempt))
            except BotoCoreError as exc:
                raise translate_error(exc, "TransactWriteItems") from exc
            finally:
                # Timed by hand: a cancelled transaction is part of the write protocol (first writes,
                # stale categories, conflicts), not an error to count.
                elapsed_ms = (time.perf_counter() - started) * 1000
                metrics.timing("dynamodb.transact_write_items", elapsed_ms, entity_type=entity_type.name)
        else:
            raise StoreUnavailable("the write kept conflicting with concurrent writes to the same items", retry_after=1)
        return [write.category for write in writes if write.category in skipped]

    def _after_cancel(
        self, pending: list[CategoryWrite], reasons: list[dict[str, Any]], modes: dict[str, str], skipped: set[str]
    ) -> tuple[list[CategoryWrite], bool]:
        """Read a cancelled transaction's reasons: drop stale categories, switch the update form of
        those whose existence was guessed wrong; return what to retry and whether to back off first."""
        conflicted = False
        retry = []
        for index, write in enumerate(pending):
            reason = reasons[index] if index < len(reasons) else {}
            code = reason.get("Code") or "None"
            if code == "ConditionalCheckFailed":
                item = reason.get("Item")
                if item is None:
                    modes[write.category] = _CREATE
                elif item.get(EVENT_TIME, {}).get("S", "") > write.event_time:
                    skipped.add(write.category)
                    continue
                else:
                    modes[write.category] = _UPDATE
            elif code != "None":
                conflicted |= self._cancellation(code, reason.get("Message", ""))
            retry.append(write)
        for reason in reasons[len(pending) :]:
            code = reason.get("Code") or "None"
            if code != "None":
                conflicted |= self._cancellation(code, reason.get("Message", ""))
        return retry, conflicted

    @staticmethod
    def _cancellation(code: str, message: str) -> bool:
        """True for a conflict worth retrying; raise for anything else that cancelled the transaction."""
        if code == "TransactionConflict":
            return True
        if code in _THROTTLED:
            raise StoreUnavailable(f"DynamoDB is throttling writes ({code})", retry_after=1)
        if code == "ValidationError" and _size_error(message):
            raise PayloadTooLarge(f"DynamoDB refused the item: {message}")
        logger.warning("DynamoDB cancelled a write: %s: %s", code, message)
        raise FeatureStoreError(f"DynamoDB cancelled the write ({code})")

    # --- outbox ---

    def _due(self, shard: str, now: dict[str, str], limit: int) -> list[tuple[float, str]]:
        """Up to `limit` unleased events of one shard due by `now`, soonest first."""
        found: list[tuple[float, str]] = []
        request: dict[str, Any] = {
            "TableName": self.outbox_table,
            "IndexName": OUTBOX_INDEX,
            "KeyConditionExpression": "#s = :shard AND #d <= :now",
            "FilterExpression": "#l <= :now",
            "ExpressionAttributeNames": {"#s": "shard", "#d": "due_at", "#l": "lease_until"},
            "ExpressionAttributeValues": {":shard": {"S": shard}, ":now": now},
            "Limit": limit,
        }
        while len(found) < limit:
            page = self.client.query(**request)
            found += [(float(item["due_at"]["N"]), item["event_id"]["S"]) for item in page.get("Items", [])]
            if "LastEvaluatedKey" not in page:
                break
            request["ExclusiveStartKey"] = page["LastEvaluatedKey"]
        return found[:limit]

    def claim_events(self, limit: int, lease_seconds: float) -> list[OutboxEvent]:
        """Find the `limit` soonest-due unleased events through the due-time index (never reading the
        whole outbox, however long a Kafka outage made it), and lease each with a conditional
        update, so of two replicas claiming at once only one gets a given event."""
        now = time.time()
        now_value = {"N": f"{now:.6f}"}
        candidates: list[tuple[float, str]] = []
        with metrics.timer("dynamodb.outbox_query"), _translated("outbox Query"):
            for shard in range(OUTBOX_SHARDS):
                candidates += self._due(str(shard), now_value, limit)
        candidates.sort()

        def claim(event_id: str) -> OutboxEvent | None:
            try:
                with metrics.timer("dynamodb.outbox_claim"):
                    item = self.client.update_item(
                        TableName=self.outbox_table,
                        Key={"event_id": {"S": event_id}},
                        UpdateExpression="SET #l = :until",
                        ConditionExpression="attribute_exists(#i) AND #d <= :now AND #l <= :now",
                        ExpressionAttributeNames={"#i": "event_id", "#d": "due_at", "#l": "lease_until"},
                        ExpressionAttributeValues={":now": now_value, ":until": {"N": f"{now + lease_seconds:.6f}"}},
                        ReturnValues="ALL_NEW",
                    )["Attributes"]
            except ClientError as exc:
                if _code(exc) == "ConditionalCheckFailedException":
                    return None
                raise translate_error(exc, "outbox claim") from exc
            except BotoCoreError as exc:
                raise translate_error(exc, "outbox claim") from exc
            return OutboxEvent(
                item["event_id"]["S"],
                item["event_key"]["S"],
                loads(item["payload"]["S"]),
                float(item["created_at"]["N"]),
                int(item["attempts"]["N"]),
            )

        claimed = self._pool.map(claim, [event_id for _, event_id in candidates[:limit]])
        return [event for event in claimed if event is not None]

    def delete_events(self, event_ids: Sequence[str]) -> None:
        deadline = time.monotonic() + self.deadline_seconds
        for chunk in _chunks(list(event_ids), MAX_BATCH_WRITES):
            request = {
                self.outbox_table: [{"DeleteRequest": {"Key": {"event_id": {"S": event_id}}}} for event_id in chunk]
            }
            attempt = 0
            while request:
                with metrics.timer("dynamodb.outbox_delete"), _translated("outbox BatchWriteItem"):
                    request = self.client.batch_write_item(RequestItems=request).get("UnprocessedItems") or {}
                if request:
                    if time.monotonic() > deadline:
                        raise StoreUnavailable("DynamoDB left outbox deletions unprocessed (throttled)")
                    time.sleep(_backoff(attempt))
                    attempt += 1

    def retry_events(self, event_ids: Sequence[str], delay_seconds: float) -> None:
        due = {"N": f"{time.time() + delay_seconds:.6f}"}

        def release(event_id: str) -> None:
            try:
                with metrics.timer("dynamodb.outbox_release"):
                    self.client.update_item(
                        TableName=self.outbox_table,
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
            except ClientError as exc:
                if _code(exc) != "ConditionalCheckFailedException":
                    raise translate_error(exc, "outbox retry") from exc
            except BotoCoreError as exc:
                raise translate_error(exc, "outbox retry") from exc

        list(self._pool.map(release, event_ids))

    def outbox_stats(self) -> OutboxStats:
        """Counts every pending event (the relay calls this every OUTBOX_GAUGE_SECONDS, never a
        request), reading the small items of the due-time index rather than the events."""
        pending, oldest = 0, None
        with metrics.timer("dynamodb.outbox_stats"), _translated("outbox Query"):
            for shard in range(OUTBOX_SHARDS):
                for page in self.client.get_paginator("query").paginate(
                    TableName=self.outbox_table,
                    IndexName=OUTBOX_INDEX,
                    KeyConditionExpression="#s = :shard",
                    ProjectionExpression="#c",
                    ExpressionAttributeNames={"#s": "shard", "#c": "created_at"},
                    ExpressionAttributeValues={":shard": {"S": str(shard)}},
                ):
                    for item in page.get("Items", []):
                        pending += 1
                        created = float(item["created_at"]["N"])
                        oldest = created if oldest is None else min(oldest, created)
        return OutboxStats(pending=pending, oldest_age_seconds=max(0.0, time.time() - oldest) if oldest else 0.0)

    def close(self) -> None:
        """The client is process-wide and stays open; only this store's threads stop."""
        self._pool.shutdown(wait=False)


P = ParamSpec("P")
R = TypeVar("R")


async def _in_thread(call: Callable[P, R], *args: P.args, **kwargs: P.kwargs) -> R:
    return await anyio.to_thread.run_sync(lambda: call(*args, **kwargs))


class DynamoDBStore:
    """The store's async interface over the boto3 client, whose calls block: each runs in a worker thread."""

    name = "dynamodb"
    max_categories_per_write = BlockingDynamoDBStore.max_categories_per_write

    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.blocking = BlockingDynamoDBStore(settings)

    @property
    def client(self) -> Any:
        return self.blocking.client

    async def initialise(self) -> list[str]:
        return await _in_thread(self.blocking.initialise)

    async def check(self) -> None:
        await _in_thread(self.blocking.check)

    async def read(self, entity_type: EntityType, entity_value: str, wanted: Wanted) -> dict[str, StoredCategory]:
        return await _in_thread(self.blocking.read, entity_type, entity_value, wanted)

    async def read_batch(self, entity_type: EntityType, entity_values: Sequence[str], wanted: Wanted) -> BatchRead:
        return await _in_thread(self.blocking.read_batch, entity_type, entity_values, wanted)

    async def write(
        self, entity_type: EntityType, entity_value: str, writes: Sequence[CategoryWrite], now_iso: str
    ) -> list[str]:
        return await _in_thread(self.blocking.write, entity_type, entity_value, writes, now_iso)

    async def claim_events(self, limit: int, lease_seconds: float) -> list[OutboxEvent]:
        return await _in_thread(self.blocking.claim_events, limit, lease_seconds)

    async def delete_events(self, event_ids: Sequence[str]) -> None:
        await _in_thread(self.blocking.delete_events, event_ids)

    async def retry_events(self, event_ids: Sequence[str], delay_seconds: float) -> None:
        await _in_thread(self.blocking.retry_events, event_ids, delay_seconds)

    async def outbox_stats(self) -> OutboxStats:
        return await _in_thread(self.blocking.outbox_stats)

    async def close(self) -> None:
        self.blocking.close()

"""One entity's category writes as one DynamoDB transaction (`EntityCommit`, `commit`).

An entity's write is one conditional update per category plus one outbox put per category, committed
together. Each update names the version it replaces, so the writer must know the stored version first:
from what this process last wrote (`Known`), or else from one consistent read of the categories' versions
before the transaction (`EntityCommit.unknown`, `EntityCommit.learn`; the store batches the read for a bulk
write). A guess proven wrong (another replica wrote since) is corrected from the cancelled transaction's
reasons, one per action (see `items.upsert`), and the transaction is sent again without what was learnt
to be stale.

Why read first: most writes replace a value some other process (or this one before a restart) wrote. Guessing
"new" cost a cancelled transaction for each of them, which DynamoDB bills as writes; the read costs a read
unit per category. The service's own CPU is about the same either way (two calls); DynamoDB's work per write
measured 13-33% less (docs/performance.md, "Figures behind the code").

A bulk write sends one transaction per entity, several at once (`DynamoDBStore.write_many`), not
several entities per transaction. Packing ten 5-category entities into one 100-action transaction was
tried: it cut the service's CPU per entity, but the server spent more per entity with such transactions in
flight (figures: docs/performance.md, "Figures behind the code"), and DynamoDB's own guidance is to split transactions that need not be one ("simpler
transactions improve throughput and are more likely to succeed"): one stale category or conflict
would cancel ten entities' writes.
"""

import asyncio
import time
import uuid
from collections.abc import Mapping, Sequence
from typing import Any

from components.events.events import set_version
from components.features.store.base import CategoryWrite, Idempotency
from components.features.store.dynamodb import history, items
from components.features.store.dynamodb.errors import TRANSACTION_CANCELLED, cancellation, write_error
from components.features.store.dynamodb.items import CREATE, EVENT_TIME, UPDATE
from components.features.store.dynamodb.outbox import backoff
from core.dynamodb_client import DynamoDBClient, DynamoDBError, DynamoDBServiceError
from core.dynamodb_client.attributes import encode, encode_map
from core.exceptions import PayloadTooLarge, StoreUnavailable
from core.metrics import metrics
from core.settings import EntityType
from core.tracing import tracing

MAX_TRANSACTION_ACTIONS = 100
MAX_WRITE_ATTEMPTS = 8
"""Transactions a write may send that learn nothing new (conflicts with concurrent writes)."""
MAX_WRITE_ROUNDS = 64
"""Transactions a write may send at all: each one past `MAX_WRITE_ATTEMPTS` lost a race to a concurrent writer of
the same category, which committed a version meanwhile (so the writers as a whole made progress)."""
KEEPS_CONFLICTING = "the write kept conflicting with concurrent writes to the same items"


Known = dict[tuple[str, str, str], tuple[int, str | None]]
"""(table, entity value, category) -> the category's version and last event id as this process last wrote
them: the guess a write starts from. A wrong guess (another replica wrote since) costs one cancelled
transaction, which returns the stored item and so the right values."""
MAX_KNOWN = 100_000


class EntityCommit:
    """One entity's categories on their way through the transaction protocol: what is still to write,
    in which update form over which stored version (and last event), and which categories turned out
    stale (skipped)."""

    __slots__ = (
        "entity_type",
        "entity_value",
        "writes",
        "now_iso",
        "encoded",
        "modes",
        "stored",
        "pending",
        "skipped",
        "raced",
        "idempotency",
        "unknown",
    )

    def __init__(
        self,
        entity_type: EntityType,
        entity_value: str,
        writes: Sequence[CategoryWrite],
        now_iso: str,
        known: Known | None = None,
        idempotency: Idempotency | None = None,
    ) -> None:
        """Raise `PayloadTooLarge`, before anything is sent, for an item over DynamoDB's 400 KB or an
        entity over a transaction's 4 MB."""
        self.entity_type = entity_type
        self.entity_value = entity_value
        self.writes = writes
        self.now_iso = now_iso
        self.encoded = {write.category: (encode(write.data), encode_map(write.metadata)) for write in writes}
        self._check_size()
        if any(write.history is not None for write in writes):
            self._check_actions()
        self.modes: dict[str, str] = {}
        self.stored: dict[str, tuple[int, str | None]] = {}
        self.unknown: list[str] = []
        """Categories whose stored version this process does not know: to `learn` before the transaction."""
        table = entity_type.table
        for write in writes:
            guess = known.get((table, entity_value, write.category)) if known else None
            if guess is None and write.replaces_version is None:
                self.unknown.append(write.category)
            if write.replaces_version is not None:
                # A restore goes over that version or not at all; its last event is checked, so a wrong guess
                # costs one cancelled transaction, which returns it.
                last = guess[1] if guess is not None and guess[0] == write.replaces_version else None
                guess = (write.replaces_version, last)
            self.modes[write.category] = CREATE if guess is None else UPDATE
            self.stored[write.category] = guess or (0, None)
        self.pending = list(writes)
        self.skipped: set[str] = set()
        self.raced = False
        """A category's stored version moved between two attempts: a concurrent writer, worth a pause."""
        self.idempotency = idempotency

    def learn(self, found: Mapping[str, dict[str, Any]]) -> None:
        """Take the unknown categories' stored versions from a read of them (`items.version_projection`):
        absent is new, a newer stored `event_time` is stale (skipped without being sent), anything else an
        update over the version read."""
        for write in list(self.pending):
            category = write.category
            if category not in self.unknown:
                continue
            item = found.get(category)
            if item is None:
                continue
            if _newer(item, write):
                self.skipped.add(category)
                self.pending.remove(write)
                continue
            self.modes[category] = UPDATE
            self.stored[category] = items.stored_version(item)
        self.unknown = []

    def _check_actions(self) -> None:
        """A transaction holds at most 100 actions: a category with history takes up to five."""
        count = 2 * len(self.writes) + 1
        count += sum(history.ACTIONS_PER_WRITE for write in self.writes if write.history is not None)
        if count > MAX_TRANSACTION_ACTIONS:
            raise PayloadTooLarge(
                f"the write would be {count} DynamoDB actions (a category with history takes "
                f"{2 + history.ACTIONS_PER_WRITE}); DynamoDB commits at most {MAX_TRANSACTION_ACTIONS} at once"
            )

    def _check_size(self) -> None:
        """Count the entity's bytes as DynamoDB does: an estimate first, exact when the estimate is near a limit."""
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
            # A category with history writes its value twice: the item and the history's copy.
            total = sum(sizes.values())
            total += sum(sizes[write.category] for write in self.writes if write.history is not None)
            if total <= items.MAX_TRANSACTION_BYTES:
                return
        raise PayloadTooLarge(
            f"the write would be {total} bytes; DynamoDB commits at most {items.MAX_TRANSACTION_BYTES} at once"
        )

    def actions(self, outbox_table: str) -> list[dict[str, Any]]:
        """The pending categories' updates, then their events' puts, each one version on from the stored one
        and naming the category's previous event."""
        entity_type, entity_value, now_iso = self.entity_type, self.entity_value, self.now_iso
        actions = []
        events = []
        for write in self.pending:
            category = write.category
            version, previous = self.stored[category]
            set_version(write.event, version + 1)
            actions.append(
                items.upsert(
                    entity_type,
                    entity_value,
                    write,
                    *self.encoded[category],
                    self.modes[category],
                    now_iso,
                    version + 1,
                    restoring=write.replaces_version is not None,
                    last_event=previous,
                )
            )
            events.append({"Put": {"TableName": outbox_table, "Item": items.outbox_item(write.event, previous)}})
        actions += events
        if self.idempotency is not None:
            actions.append(
                items.idempotency_put(outbox_table, self.idempotency, self.skipped_categories(), self.now_iso)
            )
        for write in self.pending:
            if write.history is not None:
                version = self.stored[write.category][0] + 1
                encoded = self.encoded[write.category]
                actions += history.actions(entity_type, entity_value, write, write.history, encoded, version)
        return actions

    def remember(self, known: Known) -> None:
        """Keep the written categories' versions for this entity's next write."""
        if self.idempotency is not None and self.idempotency.replayed is not None:
            return
        if len(known) >= MAX_KNOWN:
            known.clear()
        table = self.entity_type.table
        for write in self.writes:
            if write.category not in self.skipped:
                version, _ = self.stored[write.category]
                known[(table, self.entity_value, write.category)] = (version + 1, write.event.event_id)

    def cancelled(self, reasons: Sequence[dict[str, Any]]) -> bool:
        """Learn from a cancelled transaction's reasons (one per action, in order): drop
        stale categories, switch the update form and the stored version of those guessed wrong. Return
        whether a conflict calls for a pause before trying again (`raced` says whether a concurrent writer
        committed a version meanwhile); raise the service's error for a reason that dooms the entity's
        write (throttling, validation)."""
        self.raced = False
        conflicted = False
        retry = []
        if self.idempotency is not None:
            reason = reasons[2 * len(self.pending)] if len(reasons) > 2 * len(self.pending) else {}
            if reason.get("Code") == "ConditionalCheckFailed" and "Item" in reason:
                self.idempotency.replayed = items.recalled(self.idempotency, reason["Item"])
                self.pending = []
                return False
            reasons = reasons[: 2 * len(self.pending)]
        for index, write in enumerate(self.pending):
            reason = reasons[index] if index < len(reasons) else {}
            code = reason.get("Code") or "None"
            if code == "ConditionalCheckFailed" and write.replaces_version is not None:
                item = reason.get("Item")
                if item is None or items.stored_version(item)[0] != write.replaces_version:
                    self.skipped.add(write.category)
                    continue
                self.modes[write.category] = UPDATE
                self.stored[write.category] = items.stored_version(item)
            elif code == "ConditionalCheckFailed":
                item = reason.get("Item")
                if item is None:
                    self.modes[write.category] = CREATE
                    self.stored[write.category] = (0, None)
                elif _newer(item, write):
                    self.skipped.add(write.category)
                    continue
                else:
                    stored = items.stored_version(item)
                    self.raced |= self.modes[write.category] == UPDATE and stored != self.stored[write.category]
                    self.modes[write.category] = UPDATE
                    self.stored[write.category] = stored
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


def _newer(item: dict[str, Any], write: CategoryWrite) -> bool:
    """Whether the stored category's `event_time` is newer than the write's: the write is stale, skipped."""
    stored: str = item.get(EVENT_TIME, {}).get("S", "")
    return stored > write.event_time


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


async def commit(client: DynamoDBClient, entity: EntityCommit, outbox_table: str, known: Known) -> list[str]:
    """Write one entity; return its skipped categories."""
    stalled = 0
    for attempt in range(MAX_WRITE_ROUNDS):
        if not entity.pending and (entity.idempotency is None or entity.idempotency.replayed is not None):
            break
        try:
            await _transact(client, entity.actions(outbox_table), entity.entity_type)
            break
        except DynamoDBServiceError as exc:
            if exc.code != TRANSACTION_CANCELLED:
                raise write_error(exc, "TransactWriteItems") from exc
            conflicted = entity.cancelled(exc.cancellation_reasons)
            if not entity.raced:
                stalled += 1
                if stalled >= MAX_WRITE_ATTEMPTS:
                    raise StoreUnavailable(KEEPS_CONFLICTING, retry_after=1) from exc
            if conflicted or entity.raced:
                await asyncio.sleep(backoff(min(attempt, 5)))
        except DynamoDBError as exc:
            raise write_error(exc, "TransactWriteItems") from exc
    else:
        raise StoreUnavailable(KEEPS_CONFLICTING, retry_after=1)
    entity.remember(known)
    return entity.skipped_categories()

"""Fixtures and helpers the store tests share: the entity type they write, and DynamoDB's client
watched (or answered for) call by call."""

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from components.events.events import OutboxEvent
from components.features.store.base import OnlineStore
from core.dynamodb_client import DynamoDBClient, DynamoDBServiceError
from core.settings import EntityType, Settings


async def drain(store: OnlineStore) -> list[OutboxEvent]:
    """Every pending event, claimed and deleted batch after batch as the relay does (a category's events
    come one claim after another, in version order)."""
    published: list[OutboxEvent] = []
    while claimed := await store.claim_events(10, 30):
        published += claimed
        await store.delete_events([event.event_id for event in claimed])
    return published


@pytest.fixture
def user(settings: Settings) -> EntityType:
    return settings.entity_types["bright_uid"]


@pytest.fixture
def dynamo(store: Any) -> DynamoDBClient:
    """The shared client a DynamoDB store uses (the fixture initialised the store)."""
    client: DynamoDBClient = store.client
    return client


def spy(
    monkeypatch: pytest.MonkeyPatch,
    client: DynamoDBClient,
    operation: str,
    before: Callable[..., Awaitable[Any]] | None = None,
) -> list[dict]:
    """Record each call's arguments; `await before(call_number, kwargs)` may answer instead of the server."""
    calls: list[dict] = []
    real = getattr(client, operation)

    async def wrapper(**kwargs: Any) -> Any:
        calls.append(kwargs)
        if before is not None:
            answer = await before(len(calls), kwargs)
            if answer is not None:
                return answer
        return await real(**kwargs)

    monkeypatch.setattr(client, operation, wrapper)
    return calls


def spy_operations(monkeypatch: pytest.MonkeyPatch, client: DynamoDBClient) -> list[str]:
    """Record the name of every operation the client sends."""
    operations: list[str] = []
    real = client.call

    async def recording(operation: str, payload: dict[str, Any]) -> dict[str, Any]:
        operations.append(operation)
        return await real(operation, payload)

    monkeypatch.setattr(client, "call", recording)
    return operations


def client_error(code: str, operation: str, **extra: Any) -> DynamoDBServiceError:
    """DynamoDB's answer to a failed call, as the client raises it."""
    body = {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": f"{code} for the test", **extra}
    return DynamoDBServiceError(operation, 400, body)

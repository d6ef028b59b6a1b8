"""A pytest plugin that records every request the service's DynamoDB client sends, as a JSON line in the file
`DYNAMODB_CALLS_FILE` names: the operation (the request's X-Amz-Target), its parameters, whether table
creation sent it, and whether a test called the client itself rather than through the service's code. tests/deploy/test_aws.py runs store suites under it to learn what the IAM policy must allow."""

import contextvars
import json
import os
import sys
from pathlib import Path
from typing import Any

import pytest

import components.features.store.dynamodb as dynamodb_package
from components.features.store.dynamodb import store as dynamodb_store
from components.features.store.dynamodb import tables as dynamodb_tables
from core.dynamodb_client import DynamoDBClient

CREATING_TABLES = contextvars.ContextVar("creating_tables", default=False)
ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "core" / "dynamodb_client"


def called_by_a_test() -> bool:
    """Whether the first caller outside the client (and this plugin) is a test, asking DynamoDB directly."""
    frame = sys._getframe(2)
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if not path.is_relative_to(CLIENT) and path != Path(__file__):
            return path.is_relative_to(ROOT / "tests")
        frame = frame.f_back  # type: ignore[assignment]
    return False


def pytest_configure(config: pytest.Config) -> None:
    calls = Path(os.environ["DYNAMODB_CALLS_FILE"])
    attempt = DynamoDBClient._attempt
    create_tables = dynamodb_tables.create_tables

    async def recording(self: DynamoDBClient, operation: str, body: bytes) -> dict[str, Any]:
        with calls.open("a") as log:
            line = {
                "operation": operation,
                "creating": CREATING_TABLES.get(),
                "by_test": called_by_a_test(),
                "payload": json.loads(body),
            }
            log.write(json.dumps(line) + "\n")
        return await attempt(self, operation, body)

    async def creating(*args: Any, **kwargs: Any) -> list[str]:
        token = CREATING_TABLES.set(True)
        try:
            return await create_tables(*args, **kwargs)
        finally:
            CREATING_TABLES.reset(token)

    DynamoDBClient._attempt = recording  # type: ignore[method-assign]
    for module in (dynamodb_tables, dynamodb_package, dynamodb_store):
        module.create_tables = creating  # type: ignore[attr-defined]

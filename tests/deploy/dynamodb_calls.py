"""What the service's DynamoDB client sends, request by request: the operation (the request's X-Amz-Target), its
parameters, whether table creation sent it, and whether a test called the client itself rather than through the
service's code. tests/deploy/test_iam.py learns from it what the IAM policy must allow, recorded while the
`CODE_PATH` suites run on Dynoxide: in this session when they ran in it first (`SessionRecorder`), else in a pytest
of their own with this module as a plugin, writing JSON lines to the file `DYNAMODB_CALLS_FILE` names."""

import json
import os
import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from _pytest.mark import KeywordMatcher
from _pytest.mark.expression import Expression

from components.features.store.dynamodb.tables import create_tables
from core.dynamodb_client import DynamoDBClient

CODE_PATH = [
    "tests/components/features/store/test_contract.py",  # reads, writes, deletions, the outbox, the store check
    "tests/components/features/store/test_dynamodb.py",
    "tests/components/features/store/test_contract_history.py",  # history: copies, pruning, its erasure, its reads
    "tests/components/events/test_outbox.py",  # the relay: claims, deliveries, retries, dead letters and their redrive
]
"""The suites whose DynamoDB requests are recorded, each run on Dynoxide only."""
SELECTED = "dynamodb and not moto and not sqlite"
"""Their tests on Dynoxide, as `pytest -k` selects them."""
TABLE_CREATION = create_tables.__code__
ROOT = Path(__file__).resolve().parents[2]
CLIENT = ROOT / "core" / "dynamodb_client"
Call = dict[str, Any]


def called_by_a_test() -> bool:
    """Whether the first caller outside the client (and this plugin) is a test, asking DynamoDB directly."""
    frame = sys._getframe(2)
    while frame is not None:
        path = Path(frame.f_code.co_filename)
        if not path.is_relative_to(CLIENT) and path != Path(__file__):
            return path.is_relative_to(ROOT / "tests")
        frame = frame.f_back  # type: ignore[assignment]
    return False


def creating_tables() -> bool:
    """Whether table creation sent the request: `create_tables` is among its callers, however it was imported."""
    frame = sys._getframe(2)
    while frame is not None:
        if frame.f_code is TABLE_CREATION:
            return True
        frame = frame.f_back  # type: ignore[assignment]
    return False


def record_calls(recording: Callable[[], bool], record: Callable[[Call], None]) -> Callable[[], None]:
    """Hand every request the client sends while `recording()` to `record`; returns what undoes it."""
    attempt = DynamoDBClient._attempt

    async def recorded(self: DynamoDBClient, operation: str, body: bytes) -> dict[str, Any]:
        if recording():
            call = {"operation": operation, "creating": creating_tables(), "by_test": called_by_a_test()}
            record(call | {"payload": json.loads(body)})
        return await attempt(self, operation, body)

    def undo() -> None:
        DynamoDBClient._attempt = attempt  # type: ignore[method-assign]

    DynamoDBClient._attempt = recorded  # type: ignore[method-assign]
    return undo


def pytest_configure(config: pytest.Config) -> None:
    """As the plugin of a pytest of its own (`-p tests.deploy.dynamodb_calls`): every request, to the file."""
    calls = Path(os.environ["DYNAMODB_CALLS_FILE"])

    def record(call: Call) -> None:
        with calls.open("a") as log:
            log.write(json.dumps(call) + "\n")

    record_calls(lambda: True, record)


def is_iam_test(item: pytest.Item) -> bool:
    return item.path.name == "test_iam.py"


class SessionRecorder:
    """Records the requests of the `CODE_PATH` tests on Dynoxide while they run in this session, when the IAM
    tests run in it too (after them): they then read these calls instead of running those tests a second time.
    With the suites spread over workers, that holds when one worker ran them all; otherwise the IAM tests
    run them in a pytest of their own."""

    NAME = "dynamodb-calls-in-session"

    def __init__(self) -> None:
        self.calls: list[Call] = []
        self.wanted: set[str] = set()
        self.finished: set[str] = set()
        self.failed: set[str] = set()
        self.current: str | None = None
        self.undo: Callable[[], None] | None = None

    @pytest.hookimpl(wrapper=True)
    def pytest_collection_modifyitems(self, items: list[pytest.Item]) -> Iterator[None]:
        """What the recording run would select, from every test collected (before `-k` or `-m` deselect any);
        then the IAM tests moved after every other, whatever order the collection was shuffled in."""
        selected = Expression.compile(SELECTED)
        for item in items:
            if item.path.relative_to(ROOT).as_posix() in CODE_PATH and selected.evaluate(
                KeywordMatcher.from_item(item)
            ):
                self.wanted.add(item.nodeid)
        yield
        items.sort(key=is_iam_test)

    @pytest.hookimpl(trylast=True)
    def pytest_collection_finish(self, session: pytest.Session) -> None:
        """Record only if every wanted test and an IAM test are to run."""
        to_run = {item.nodeid for item in session.items}
        iam = any(is_iam_test(item) for item in session.items)
        if iam and self.wanted and self.wanted <= to_run:
            self.undo = record_calls(lambda: self.current in self.wanted, self.calls.append)

    @pytest.hookimpl(wrapper=True)
    def pytest_runtest_protocol(self, item: pytest.Item) -> Iterator[None]:
        self.current = item.nodeid
        try:
            return (yield)
        finally:
            self.current = None

    def pytest_runtest_logreport(self, report: pytest.TestReport) -> None:
        if report.failed:
            self.failed.add(report.nodeid)
        if report.when == "teardown":
            self.finished.add(report.nodeid)

    def pytest_unconfigure(self) -> None:
        if self.undo is not None:
            self.undo()

    def recorded(self) -> list[Call] | None:
        """The calls, once every wanted test has run and passed in this session; None otherwise."""
        if self.undo is None or not self.wanted <= self.finished or self.wanted & self.failed:
            return None
        return self.calls

"""The template's IAM policies grant exactly what the service's DynamoDB client calls, on exactly the tables it
calls them on, as the store suites exercise it on a local DynamoDB server, and as docs/deployment.md's table says."""

import json
import os
import re
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from devservers import ROOT
from tests.deploy.dynamodb_calls import CODE_PATH, SELECTED, Call, SessionRecorder

# Unless they ran earlier in the session, the fixture runs three store suites in a pytest of its own.
pytestmark = [pytest.mark.backends("sqlite"), pytest.mark.timeout(600)]

TRANSACTION_ACTIONS = {
    "Put": "PutItem",
    "Update": "UpdateItem",
    "Delete": "DeleteItem",
    "ConditionCheck": "ConditionCheckItem",
}
"""IAM authorises each action inside TransactWriteItems as the single-item call it stands for."""
Grant = tuple[str, str]
"""An IAM action and what it is granted on: `entity` (each entity table), `outbox`, or `outbox/index/<name>`."""


def table_role(table: str, index: str | None = None) -> str:
    """The tests name their tables `<prefix>_user`, `<prefix>_account` and `<prefix>_outbox`."""
    role = "outbox" if table.endswith("_outbox") else "entity"
    return f"{role}/index/{index}" if index else role


def grants_of(operation: str, payload: dict[str, Any]) -> Iterator[Grant]:
    """What one request needs IAM to allow."""
    if operation == "TransactWriteItems":
        for item in payload["TransactItems"]:
            ((kind, action),) = item.items()
            yield f"dynamodb:{TRANSACTION_ACTIONS[kind]}", table_role(action["TableName"])
    elif operation == "TransactGetItems":
        for item in payload["TransactItems"]:
            yield "dynamodb:GetItem", table_role(item["Get"]["TableName"])
    elif operation in ("BatchGetItem", "BatchWriteItem"):
        for table in payload["RequestItems"]:
            yield f"dynamodb:{operation}", table_role(table)
    else:
        yield f"dynamodb:{operation}", table_role(payload["TableName"], payload.get("IndexName"))


def calls_of_a_run_of_their_own(tmp_path_factory: pytest.TempPathFactory) -> list[Call]:
    """The suites' tests on Dynoxide, run in a pytest of their own that records what the client sends."""
    calls = tmp_path_factory.mktemp("iam") / "calls.jsonl"
    result = subprocess.run(
        [
            sys.executable,
            "-m",
            "pytest",
            *CODE_PATH,
            "-q",
            "-p",
            "no:cacheprovider",
            "-p",
            "tests.deploy.dynamodb_calls",
        ]
        + ["-k", SELECTED],
        cwd=ROOT,
        env={**os.environ, "DYNAMODB_CALLS_FILE": str(calls)},
        capture_output=True,
        text=True,
        check=False,
        timeout=300,
    )
    assert result.returncode == 0, result.stdout[-3000:]
    return [json.loads(line) for line in calls.read_text().splitlines()]


@pytest.fixture(scope="module")
def called(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> dict[str, set[Grant]]:
    """What the client asked of DynamoDB while the suites ran: by the running service, and by table creation.
    Recorded in this session when the suites' tests on Dynoxide all ran and passed in it before."""
    recorder: SessionRecorder | None = request.config.pluginmanager.get_plugin(SessionRecorder.NAME)
    calls = recorder.recorded() if recorder else None
    if calls is None:
        calls = calls_of_a_run_of_their_own(tmp_path_factory)
    found: dict[str, set[Grant]] = {"service": set(), "creation": set()}
    for call in calls:
        if call["by_test"]:
            continue
        found["creation" if call["creating"] else "service"].update(grants_of(call["operation"], call["payload"]))
    return found


def resource_role(resource: Any) -> str:
    """A policy's resource, as `table_role` names it."""
    tables = {"UserTable": "entity", "AccountTable": "entity", "OutboxTable": "outbox"}
    if "Fn::GetAtt" in resource:
        return tables[resource["Fn::GetAtt"][0]]
    table, index = re.fullmatch(r"\$\{(\w+)\.Arn\}/index/(\w+)", resource["Fn::Sub"]).groups()  # type: ignore[union-attr]
    return f"{tables[table]}/index/{index}"


def granted(template: dict[str, Any], policy: str) -> set[Grant]:
    statements = template["Resources"][policy]["Properties"]["PolicyDocument"]["Statement"]
    found = set()
    for statement in statements:
        assert statement["Effect"] == "Allow" and "Condition" not in statement
        actions = statement["Action"] if isinstance(statement["Action"], list) else [statement["Action"]]
        resources = statement["Resource"] if isinstance(statement["Resource"], list) else [statement["Resource"]]
        found |= {(action, resource_role(resource)) for action in actions for resource in resources}
    return found


def test_the_service_policy_grants_what_the_service_calls_and_nothing_else(
    template: dict[str, Any], called: dict[str, set[Grant]]
) -> None:
    assert granted(template, "ServicePolicy") == called["service"]


def test_the_creation_policy_grants_what_table_creation_calls(
    template: dict[str, Any], called: dict[str, set[Grant]]
) -> None:
    assert granted(template, "TableCreationPolicy") == called["creation"]


DOCUMENTED_ON = {
    "the entity tables": {"entity"},
    "the outbox table": {"outbox"},
    "all three tables": {"entity", "outbox"},
}
"""What the table's "on" column says, as `table_role` names it."""


def documented(creation: bool) -> set[Grant]:
    """docs/deployment.md's IAM table: the running service's rows, or the table-creation row."""
    text = (ROOT / "docs" / "deployment.md").read_text()
    table = next(part for part in text.split("### IAM", 1)[1].split("\n\n") if part.startswith("| actions"))
    found = set()
    for row in table.splitlines()[2:]:
        actions, on, purpose = (cell.strip() for cell in row.strip("|").split("|"))
        if ("table creation" in purpose) != creation:
            continue
        index = re.search(r"`\.\.\./table/<outbox>/index/(\w+)`", on)
        roles = {f"outbox/index/{index.group(1)}"} if index else DOCUMENTED_ON[on]
        found |= {(action, role) for action in re.findall(r"`(dynamodb:\w+)`", actions) for role in roles}
    return found


def test_the_documented_permissions_are_the_policies(template: dict[str, Any]) -> None:
    assert documented(creation=False) == granted(template, "ServicePolicy")
    assert documented(creation=True) == granted(template, "TableCreationPolicy")


def test_the_recorder_sees_the_suites(tmp_path: Path) -> None:
    """Every suite named still exists, so a rename cannot silently shrink what is recorded."""
    for suite in CODE_PATH:
        assert (ROOT / suite).is_file(), suite

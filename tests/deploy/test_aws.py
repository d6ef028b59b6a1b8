"""The CloudFormation template: lint-clean, the same tables as the service creates, outputs named after the
settings they fill, and deployed into moto's CloudFormation, tables the service runs on."""

import re
import subprocess
import sys
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any, cast

import boto3
import pytest

from components.features.store import create_store
from components.features.store.dynamodb import create_tables
from core.dynamodb_client import DynamoDBClient
from core.settings import Settings
from devservers import ROOT
from main import create_app
from tests.components.features.store import test_contract as contract
from tests.conftest import AppClient
from tests.deploy.conftest import TEMPLATE

pytestmark = [pytest.mark.anyio, pytest.mark.backends("sqlite")]

CHECKOV = ROOT / ".servers" / "checkov" / "bin" / "checkov"
TABLES = {"UserTable": "bright_uid", "AccountTable": "account_id", "OutboxTable": "outbox"}
"""The template's tables, by what the service calls them: an entity type's name, or the outbox."""


def resolve(value: Any, parameters: dict[str, str]) -> Any:
    """`{"Ref": parameter}` replaced by the parameter's value, everywhere in `value`."""
    if isinstance(value, dict):
        if set(value) == {"Ref"} and value["Ref"] in parameters:
            return parameters[value["Ref"]]
        return {key: resolve(item, parameters) for key, item in value.items()}
    if isinstance(value, list):
        return [resolve(item, parameters) for item in value]
    return value


def defaults(template: dict[str, Any]) -> dict[str, str]:
    return {name: str(parameter["Default"]) for name, parameter in template["Parameters"].items()}


def table_shape(table: dict[str, Any]) -> dict[str, Any]:
    """What makes a table usable by the service: its keys, their types, its indexes and its TTL."""
    return {
        "KeySchema": table["KeySchema"],
        "AttributeDefinitions": sorted(table["AttributeDefinitions"], key=lambda item: item["AttributeName"]),
        "GlobalSecondaryIndexes": [
            {key: index[key] for key in ("IndexName", "KeySchema", "Projection")}
            for index in table.get("GlobalSecondaryIndexes", [])
        ],
        "TimeToLiveSpecification": table.get("TimeToLiveSpecification"),
    }


class RecordingClient:
    """Answers table creation as an empty account would, and keeps each request."""

    def __init__(self) -> None:
        self.tables: dict[str, dict[str, Any]] = {}

    async def create_table(self, **request: Any) -> dict[str, Any]:
        self.tables[request["TableName"]] = request
        return {}

    async def describe_table(self, TableName: str) -> dict[str, Any]:
        return {"Table": {"TableStatus": "ACTIVE"}}

    async def call(self, operation: str, payload: dict[str, Any]) -> dict[str, Any]:
        if operation == "UpdateTimeToLive":
            self.tables[payload["TableName"]]["TimeToLiveSpecification"] = payload["TimeToLiveSpecification"]
        return {}


async def test_the_templates_tables_are_the_ones_the_service_creates(template: dict[str, Any]) -> None:
    """Keys, attribute types, the due index and TTL: a change to tables.py must be made in the template too."""
    settings = Settings(_env_file=None)
    recorder = RecordingClient()
    await create_tables(cast(DynamoDBClient, recorder), settings)
    names = {
        "bright_uid": settings.dynamodb_table_bright_uid,
        "account_id": settings.dynamodb_table_account_id,
        "outbox": settings.dynamodb_table_outbox,
    }
    for resource, table in TABLES.items():
        declared = resolve(template["Resources"][resource]["Properties"], defaults(template))
        assert declared["TableName"] == names[table]
        assert table_shape(declared) == table_shape(recorder.tables[names[table]]), resource


def test_parameters_default_to_the_settings_defaults(template: dict[str, Any]) -> None:
    settings = Settings(_env_file=None)
    assert defaults(template)["UserKeyAttribute"] == settings.dynamodb_key_bright_uid
    assert defaults(template)["AccountKeyAttribute"] == settings.dynamodb_key_account_id
    assert defaults(template)["OutboxTableName"] == settings.dynamodb_table_outbox


def setting_named(output: str) -> str:
    """`DynamoDBTableBrightUid` -> `DYNAMODB_TABLE_BRIGHT_UID`."""
    return re.sub(r"(?<!^)(?=[A-Z])", "_", output.replace("DynamoDB", "Dynamodb")).upper()


def test_outputs_are_named_after_what_they_fill(template: dict[str, Any]) -> None:
    settings = {name.upper() for name in Settings.model_fields}
    filled = {setting_named(name) for name in template["Outputs"]} & settings
    assert filled == {
        "DYNAMODB_TABLE_BRIGHT_UID",
        "DYNAMODB_TABLE_ACCOUNT_ID",
        "DYNAMODB_TABLE_OUTBOX",
        "DYNAMODB_KEY_BRIGHT_UID",
        "DYNAMODB_KEY_ACCOUNT_ID",
        "AWS_REGION",
    }
    others = set(template["Outputs"]) - {name for name in template["Outputs"] if setting_named(name) in settings}
    assert others == {"ServicePolicyArn", "KeyPolicyArn", "TableCreationPolicyArn", "ServiceRoleArn"}


def test_cfn_lint_finds_nothing() -> None:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run([str(cfn_lint), str(TEMPLATE)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.slow
def test_checkov_finds_nothing_unjustified(template: dict[str, Any]) -> None:
    """Each check the template skips says why, beside the resource it skips it for."""
    assert CHECKOV.exists(), f"{CHECKOV} is missing: run `make servers`"
    command = [str(CHECKOV), "--quiet", "--compact", "--skip-download", "--framework", "cloudformation"]
    result = subprocess.run(
        [*command, "--file", str(TEMPLATE)],
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stdout + result.stderr
    for name, resource in template["Resources"].items():
        for skip in resource.get("Metadata", {}).get("checkov", {}).get("skip", []):
            assert len(skip.get("comment", "")) > 20, f"{name} skips {skip['id']} without saying why"


@pytest.fixture(scope="module")
def stack_outputs(moto_endpoint: str) -> Iterator[dict[str, str]]:
    """The template deployed into moto's CloudFormation, under table names of its own, with an IRSA role."""
    prefix = f"cfn{uuid.uuid4().hex[:8]}"
    parameters = {
        "UserTableName": f"{prefix}_user",
        "AccountTableName": f"{prefix}_account",
        "OutboxTableName": f"{prefix}_outbox",
        "OidcProviderUrl": "oidc.eks.us-east-1.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE",
    }
    cloudformation = boto3.client("cloudformation", endpoint_url=moto_endpoint, region_name="us-east-1")
    cloudformation.create_stack(
        StackName=prefix,
        TemplateBody=TEMPLATE.read_text(),
        Parameters=[{"ParameterKey": key, "ParameterValue": value} for key, value in parameters.items()],
        Capabilities=["CAPABILITY_IAM"],
    )
    (stack,) = cloudformation.describe_stacks(StackName=prefix)["Stacks"]
    assert stack["StackStatus"] == "CREATE_COMPLETE", stack
    yield {output["OutputKey"]: output["OutputValue"] for output in stack["Outputs"]}


def settings_from(outputs: dict[str, str], endpoint: str) -> Settings:
    """What a ConfigMap filled in from the outputs holds, on the local endpoint, tables never created."""
    filled = {setting_named(name).lower(): value for name, value in outputs.items()}
    values = {name: value for name, value in filled.items() if name in Settings.model_fields}
    return Settings(
        _env_file=None,
        store_backend="dynamodb",
        dynamodb_endpoint_url=endpoint,
        dynamodb_create_tables=False,
        kafka_broker_url="",
        statsd_host="",
        **values,
    )


@pytest.mark.slow
def test_the_service_is_ready_on_the_stacks_tables(stack_outputs: dict[str, str], moto_endpoint: str) -> None:
    with AppClient(create_app(settings_from(stack_outputs, moto_endpoint))) as client:
        response = client.get("/api/v1/ready")
        assert response.status_code == 200, response.text


@pytest.mark.slow
async def test_the_contract_round_trip_passes_on_the_stacks_tables(
    stack_outputs: dict[str, str], moto_endpoint: str
) -> None:
    """The storage contract suite's own write/read and delete tests (in that order: they share an entity), and
    its store check, on the tables the template made."""
    settings = settings_from(stack_outputs, moto_endpoint)
    store = create_store(settings)
    await store.initialise()
    try:
        user = settings.entity_types["bright_uid"]
        await contract.test_write_then_read_round_trips_json_types(store, user, type)
        await contract.test_delete_leaves_a_tombstone_with_its_event(store, user)
        await contract.test_check_passes_on_a_working_store(store)
    finally:
        await store.close()


@pytest.mark.slow
def test_the_irsa_role_trusts_only_the_service_account(stack_outputs: dict[str, str], moto_endpoint: str) -> None:
    iam = boto3.client("iam", endpoint_url=moto_endpoint, region_name="us-east-1")
    role = iam.get_role(RoleName=stack_outputs["ServiceRoleArn"].rpartition("/")[2])["Role"]
    (statement,) = role["AssumeRolePolicyDocument"]["Statement"]
    assert statement["Action"] == "sts:AssumeRoleWithWebIdentity"
    conditions = statement["Condition"]["StringEquals"]
    assert set(conditions.values()) == {"system:serviceaccount:feature-store:feature-store-api", "sts.amazonaws.com"}


def test_the_irsa_role_holds_the_service_policy_only(template: dict[str, Any]) -> None:
    """moto does not attach a role's managed policies, so the template says it."""
    assert template["Resources"]["ServiceRole"]["Properties"]["ManagedPolicyArns"] == [{"Ref": "ServicePolicy"}]
    assert template["Resources"]["KeyPolicy"]["Properties"]["Roles"]["Fn::If"][1] == [{"Ref": "ServiceRole"}]

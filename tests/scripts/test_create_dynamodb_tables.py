"""`make dynamodb-tables`: the script creates every table with TTL, and a second run changes nothing."""

import os
import subprocess
import sys

from devservers import ROOT
from tests.conftest import dynamodb_tables


def test_creates_the_tables_once(dynamodb_endpoint: str) -> None:
    tables = dynamodb_tables()
    env = {
        **os.environ,
        "DYNAMODB_ENDPOINT_URL": dynamodb_endpoint,
        **{name.upper(): str(value) for name, value in tables.items() if name.startswith("dynamodb_table_")},
    }

    def run() -> str:
        result = subprocess.run(
            [sys.executable, "scripts/create_dynamodb_tables.py"], cwd=ROOT, env=env, capture_output=True, text=True
        )
        assert result.returncode == 0, result.stderr
        return result.stdout

    first = run()
    for name in ("dynamodb_table_bright_uid", "dynamodb_table_account_id", "dynamodb_table_outbox"):
        assert f"created table {tables[name]}\n" in first
    assert f"enabled TTL on {tables['dynamodb_table_bright_uid']}.expires_at" in first
    assert run().strip().endswith("all tables already exist")

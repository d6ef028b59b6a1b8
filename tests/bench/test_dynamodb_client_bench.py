"""A short run of the DynamoDB client benchmark, so it cannot rot; speed is not asserted here."""

import json
import subprocess
import sys
from pathlib import Path

import pytest

from bench.dynamodb_client import CALLS

ROOT = Path(__file__).resolve().parents[2]
CLIENTS = {"boto3", "aiohttp", "aiohttp-uvloop", "httpx", "aiohttp-bridge"}


@pytest.mark.slow
@pytest.mark.timing
def test_client_benchmark_smoke_run(tmp_path: Path) -> None:
    output = tmp_path / "clients.json"
    completed = subprocess.run(
        [sys.executable, "-m", "bench.dynamodb_client", "--scale", "0.01", "--rounds", "1", "--json", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    report = json.loads(output.read_text())
    measured = {(row["operation"], row["client"], row["mode"]) for row in report["calls"]}
    for operation in CALLS:
        for client in CLIENTS:
            assert {(operation, client, "seq"), (operation, client, "c4")} <= measured
    assert all(row["cpu_ms"] > 0 for row in report["calls"])
    assert len(report["decode"]) == 2 and all(value > 0 for value in report["decode"].values())
    assert len(report["breakdown"]) == 3 and all(value > 0 for value in report["breakdown"].values())
    assert "| GetItem +decode | seq |" in completed.stdout

"""The `feature-store` command line against the service under uvicorn."""

import io
import json
import os
import subprocess
import sys

import pytest

from devservers import ROOT
from feature_store_client.cli import main

pytestmark = pytest.mark.backends("sqlite")


@pytest.fixture
def url(start_service) -> str:
    return start_service().url


def run(capsys: pytest.CaptureFixture[str], *argv: str, stdin: str = "") -> tuple[int, str, str]:
    status = main(list(argv), stdin=io.StringIO(stdin))
    captured = capsys.readouterr()
    return status, captured.out, captured.err


def test_write_then_get_as_json_and_table(url: str, capsys) -> None:
    status, out, _ = run(
        capsys,
        "--url",
        url,
        "write",
        "user-1",
        "user_features:age=30",
        "user_features:city=SF",
        "--source",
        "prediction_service",
    )
    assert status == 0 and json.loads(out)["categories_updated"] == ["user_features"]
    status, out, _ = run(
        capsys,
        "--url",
        url,
        "write",
        "user-1",
        "--json",
        "-",
        "--source",
        "prediction_service",
        stdin='{"credit_features": {"credit_score": 750}}',
    )
    assert status == 0

    status, out, _ = run(capsys, "--url", url, "get", "user-1", "user_features")
    assert status == 0 and json.loads(out)["features"]["data"] == {"age": 30, "city": "SF"}
    status, out, _ = run(capsys, "--url", url, "-o", "table", "get", "user-1", "user_features:age", "credit_features")
    assert status == 0
    assert out.splitlines()[0].split() == ["category", "feature", "value"]
    assert ["user_features", "age", "30"] in [line.split() for line in out.splitlines()]
    assert ["credit_features", "credit_score", "750"] in [line.split() for line in out.splitlines()]


def test_get_batch_registry_and_ready(url: str, capsys, tmp_path) -> None:
    run(capsys, "--url", url, "write", "user-2", "user_features:age=2", "--source", "prediction_service")
    (tmp_path / "ids.txt").write_text("user-1\nuser-2\n")
    status, out, _ = run(
        capsys, "--url", url, "get-batch", "user-0", "--from-file", str(tmp_path / "ids.txt"), "-f", "user_features"
    )
    assert status == 0
    assert [result["entity_value"] for result in json.loads(out)["results"]] == ["user-0", "user-1", "user-2"]
    status, out, _ = run(capsys, "--url", url, "-o", "table", "registry")
    assert status == 0 and "user_features" in out
    status, out, _ = run(capsys, "--url", url, "ready")
    assert status == 0 and json.loads(out)["status"] == "ready"


def test_errors_exit_non_zero_with_the_request_id(url: str, capsys) -> None:
    status, _, err = run(capsys, "--url", url, "--request-id", "cli-1", "get", "nobody", "user_features")
    assert status == 1 and "request_id cli-1" in err and "status 404" in err
    status, _, err = run(capsys, "--url", url, "write", "user-1", "not-an-assignment")
    assert status == 2 and "CATEGORY:FEATURE=VALUE" in err


def test_the_command_runs_as_a_module_with_the_environment(url: str) -> None:
    env = {**os.environ, "FEATURE_STORE_URL": url, "PYTHONPATH": str(ROOT / "client")}
    done = subprocess.run(
        [sys.executable, "-m", "feature_store_client", "limits"], env=env, capture_output=True, text=True, timeout=30
    )
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["max_batch_entities"] == 1000

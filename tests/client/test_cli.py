"""The `feature-store` command line against the service under uvicorn."""

import io
import json
import os
import subprocess
import sys

import pytest

from devservers import ROOT
from feature_store_client.cli import main, parser

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

    status, out, _ = run(capsys, "get", "user-1", "user_features", "--output", "table", "--url", url)
    assert status == 0 and ["user_features", "age", "30"] in [line.split() for line in out.splitlines()]


@pytest.mark.parametrize(
    "argv",
    [
        ["--url", "http://a", "--timeout", "3", "-o", "table", "--request-id", "r-1", "--api-key", "k", "limits"],
        ["limits", "--url", "http://a", "--timeout", "3", "-o", "table", "--request-id", "r-1", "--api-key", "k"],
        ["--url", "http://b", "-o", "json", "limits", "--url", "http://a", "--timeout", "3", "-o", "table"]
        + ["--request-id", "r-1", "--api-key", "k"],
    ],
)
def test_global_options_go_before_or_after_the_command(argv: list[str]) -> None:
    """After the command, an option wins over the same option before it."""
    args = parser().parse_args(argv)
    assert (args.url, args.timeout, args.output, args.request_id, args.api_key) == ("http://a", 3, "table", "r-1", "k")


def test_global_options_keep_their_defaults_after_any_command() -> None:
    for argv in (["limits"], ["get", "user-1", "user_features"], ["delete", "user-1"], ["registry"]):
        args = parser().parse_args(argv)
        assert args.output == "json" and args.request_id is None and args.timeout > 0, argv


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


def test_load_reports_invalid_lines_and_refused_entities_by_line(url: str, capsys, tmp_path) -> None:
    lines = [
        '{"entity_value": "user-l1", "categories": {"user_features": {"age": 1}}}',
        "{not json",
        "",
        '{"entity_value": "user-l2", "feature_list": [{"category": "user_features", "features": {"age": 2}}]}',
        '{"entity_value": "user-l3"}',
        '{"entity_value": "user-l4", "categories": {"made_up": {"x": 1}}}',
        '{"entity_value": "user-l5", "categories": {"user_features": {"bad name": 1}}}',
        '{"entity_value": "user-l6", "categories": {"user_features": {"age": 6}}, "meta": {"compute_id": "own"}}',
        "[1, 2]",
    ]
    path = tmp_path / "entities.jsonl"
    path.write_text("\n".join(lines) + "\n")
    status, out, err = run(
        capsys, "--url", url, "load", str(path), "--source", "prediction_service", "--compute-id", "job-l", "--progress"
    )
    assert status == 1, err
    summary = json.loads(out)
    failures_file = tmp_path / "entities.jsonl.failures.jsonl"
    assert summary.pop("elapsed_seconds") > 0 and summary.pop("lines_per_second") > 0
    assert summary == {
        "lines": 8,
        "written": 3,
        "failed": 2,
        "invalid_lines": 3,
        "resumed_after_line": 0,
        "failures_file": str(failures_file),
    }
    failures = [json.loads(line) for line in failures_file.read_text().splitlines()]
    assert [(failure["line"], failure["error"]) for failure in failures] == [
        (2, "invalid_json"),
        (5, "invalid_entity"),
        (6, "validation_error"),
        (7, "validation_error"),
        (9, "invalid_entity"),
    ]
    assert [failure.get("entity_value") for failure in failures] == [None, "user-l3", "user-l4", "user-l5", None]
    assert "8/8 lines, 5 failed" in err, "the progress bar ends on every line"

    status, out, _ = run(capsys, "--url", url, "get", "user-l6", "user_features")
    assert status == 0 and json.loads(out)["features"]["metadata"]["compute_id"] == "own"
    status, out, _ = run(capsys, "--url", url, "get", "user-l2", "user_features")
    assert json.loads(out)["features"]["metadata"]["compute_id"] == "job-l"

    good = tmp_path / "good.jsonl"
    good.write_text(lines[0] + "\n")
    status, out, err = run(capsys, "--url", url, "load", "-", "--failures", str(failures_file), stdin=good.read_text())
    assert status == 1 and json.loads(out)["failed"] == 1, "without --source the writer is unnamed"
    assert "source" in json.dumps(json.loads(failures_file.read_text())["detail"])
    status, out, err = run(
        capsys, "--url", url, "load", str(good), "--failures", str(failures_file), "--source", "prediction_service"
    )
    assert status == 0 and json.loads(out)["failures_file"] is None and err == ""
    assert not failures_file.exists(), "no failures: an earlier run's file is not left to be mistaken for this one's"


def test_delete(url: str, capsys) -> None:
    run(
        capsys,
        "--url",
        url,
        "write",
        "user-d",
        "user_features:age=1",
        "credit_features:score=2",
        "--source",
        "prediction_service",
    )
    status, out, _ = run(capsys, "--url", url, "delete", "user-d", "credit_features")
    assert status == 0 and json.loads(out)["categories_deleted"] == ["credit_features"]
    status, _, err = run(capsys, "--url", url, "get", "user-d", "credit_features")
    assert status == 1 and "status 404" in err
    status, out, _ = run(capsys, "--url", url, "-o", "table", "delete", "user-d")
    assert status == 0 and ["categories_deleted", '["user_features"]'] in [line.split() for line in out.splitlines()]

"""`feature-store load` of JSON Lines against the service under uvicorn: lines that cannot be sent fail
alone, an interrupted load of a file or of standard input resumes without sending again what was answered,
and a large file loads in bounded memory."""

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench import peak_rss
from devservers import ROOT
from feature_store_client import FeatureStoreClient
from feature_store_client.cli import main
from tests.client.conftest import WRITER, Recorder
from tests.client.test_dataframe import REGISTRY

pytestmark = pytest.mark.backends("sqlite")


@pytest.fixture
def url(start_service, tmp_path: Path) -> str:
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY)
    return start_service(FEATURE_REGISTRY_FILE=str(registry), MAX_BATCH_WRITE_ENTITIES="10").url


def run(capsys: pytest.CaptureFixture[str], *argv: str, stdin: str = "") -> tuple[int, dict[str, Any] | None, str]:
    status = main(list(argv), stdin=io.StringIO(stdin))
    captured = capsys.readouterr()
    return status, json.loads(captured.out) if captured.out else None, captured.err


def entity_line(i: int) -> str:
    return json.dumps({"entity_value": f"u{i}", "categories": {"typed": {"count": i, "name": f"name-{i}"}}})


def lines_with_gaps(count: int) -> str:
    """`count` entities, a blank line after every seventh and one line that is not JSON."""
    lines = []
    for i in range(count):
        lines.append(entity_line(i))
        if i % 7 == 6:
            lines.append("")
        if i == 30:
            lines.append("{not json")
    return "\n".join(lines) + "\n"


def stored(url: str, count: int) -> list[dict[str, Any]]:
    with FeatureStoreClient(url) as store:
        answer = store.read_batch([f"u{i}" for i in range(count)], ["typed:*"])
    return [result.values.get("typed", {}) for result in answer.results]


def test_lines_that_cannot_be_sent_or_are_refused_fail_alone(url: str, capsys, tmp_path: Path) -> None:
    huge = {"entity_value": "big", "categories": {"typed": {"ids": list(range(200_000))}}}
    lines = [
        entity_line(0),
        '{"entity_value": "nan", "categories": {"typed": {"score": NaN}}}',
        json.dumps(huge),
        '{"entity_value": "refused", "categories": {"typed": {"count": "many"}}}',
        entity_line(1),
    ]
    path = tmp_path / "entities.jsonl"
    path.write_text("\n".join(lines))
    status, summary, err = run(capsys, "--url", url, "load", str(path), "--source", WRITER)
    assert status == 1, err
    assert summary is not None and (summary["lines"], summary["written"], summary["failed"]) == (5, 2, 2)
    assert summary["invalid_lines"] == 1
    failures = [json.loads(line) for line in Path(summary["failures_file"]).read_text().splitlines()]
    assert [(failure["line"], failure["entity_value"], failure["error"]) for failure in failures] == [
        (2, "nan", "invalid_number"),
        (3, "big", "payload_too_large"),
        (4, "refused", "validation_error"),
    ]
    assert stored(url, 2) == [{"count": 0, "name": "name-0"}, {"count": 1, "name": "name-1"}]


def resume_after_interruption(
    url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Stopped after two parts, by Ctrl-C (`interrupt`) or a lost connection, then resumed."""
    path = tmp_path / "entities.jsonl"
    path.write_text(lines_with_gaps(45))
    command = ["--url", url, "--timeout", "2", "load", str(path), "--source", WRITER, "--concurrency", "1"]

    first = Recorder(monkeypatch, 2, how)
    status, summary, err = run(capsys, *command)
    assert status == (130 if how == "interrupt" else 1) and "--resume" in err
    assert summary is not None and summary["lines"] == 20 and summary["checkpoint"] == f"{path}.checkpoint.json"
    monkeypatch.undo()

    second = Recorder(monkeypatch, None, how)
    status, summary, err = run(capsys, *command, "--resume", "--progress")
    assert status == 1, err
    assert summary is not None and (summary["lines"], summary["written"], summary["failed"]) == (46, 45, 0)
    assert summary["invalid_lines"] == 1 and summary["resumed_after_line"] == 22
    assert "46/46 lines, 1 failed" in err, "the total counts the lines answered before the interruption"
    answered = first.sent[:20] if how == "connection" else first.sent
    assert sorted(answered + second.sent) == sorted(f"u{i}" for i in range(45)), "each line sent once"
    assert [json.loads(line)["line"] for line in Path(summary["failures_file"]).read_text().splitlines()] == [36]
    assert stored(url, 45) == [{"count": i, "name": f"name-{i}"} for i in range(45)]
    assert not Path(f"{path}.checkpoint.json").exists()


@pytest.mark.backends("sqlite", "dynamodb")
def test_a_file_load_stopped_by_ctrl_c_resumes_and_writes_every_line_once(
    url: str, capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    resume_after_interruption(url, capsys, tmp_path, monkeypatch, "interrupt")


def test_a_file_load_that_lost_its_connection_resumes_and_writes_every_line_once(
    url: str, capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's side is the same as after Ctrl-C: the embedded store only."""
    resume_after_interruption(url, capsys, tmp_path, monkeypatch, "connection")


def test_an_interrupted_load_from_standard_input_resumes_on_the_same_input(
    url: str, capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    text = lines_with_gaps(25)
    checkpoint = tmp_path / "nightly.checkpoint.json"
    command = ["--url", url, "load", "-", "--source", WRITER, "--concurrency", "1", "--checkpoint", str(checkpoint)]
    command += ["--failures", str(tmp_path / "nightly.failures.jsonl")]

    first = Recorder(monkeypatch, 1, "interrupt")
    status, summary, _ = run(capsys, *command, stdin=text)
    assert status == 130 and summary is not None and summary["lines"] == 10 and checkpoint.exists()
    monkeypatch.undo()

    other = text.replace('"u3"', '"x3"')
    status, summary, err = run(capsys, *command, "--resume", stdin=other)
    assert status == 2 and summary is None and "standard input does not start with" in err
    assert len(err.strip().splitlines()) == 1

    second = Recorder(monkeypatch, None, "interrupt")
    status, summary, err = run(capsys, *command, "--resume", stdin=text)
    assert status == 0, err
    assert summary is not None and (summary["lines"], summary["written"], summary["invalid_lines"]) == (25, 25, 0)
    assert sorted(first.sent + second.sent) == sorted(f"u{i}" for i in range(25)), "each line sent once"
    assert not checkpoint.exists()


def test_json_lines_load_without_the_arrow_extra(url: str, tmp_path: Path) -> None:
    path = tmp_path / "entities.jsonl"
    path.write_text("".join(entity_line(i) + "\n" for i in range(25)))
    blocked = "import sys; sys.modules['pyarrow'] = sys.modules['pandas'] = None; "
    load = "from feature_store_client.cli import main; sys.exit(main(sys.argv[1:]))"
    argv = ["--url", url, "load", str(path), "--source", WRITER]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "client")}
    done = subprocess.run([sys.executable, "-c", blocked + load, *argv], env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    assert json.loads(done.stdout)["written"] == 25
    assert stored(url, 25) == [{"count": i, "name": f"name-{i}"} for i in range(25)]


def test_a_missing_file_or_a_checkpoint_of_another_version_exits_2(url: str, capsys, tmp_path: Path) -> None:
    status, _, err = run(capsys, "--url", url, "load", str(tmp_path / "nothing.jsonl"))
    assert status == 2 and "nothing.jsonl" in err and len(err.strip().splitlines()) == 1
    path = tmp_path / "entities.jsonl"
    path.write_text(entity_line(0) + "\n")
    Path(f"{path}.checkpoint.json").write_text(json.dumps({"input": [], "rows_done": 1, "written": 1, "failed": 0}))
    status, _, err = run(capsys, "--url", url, "load", str(path), "--resume")
    assert status == 2 and "another version of the input" in err


LARGE_LINES = 200_000
RSS_GROWTH_MB = 30
"""Most the load may add to the peak RSS of the same command answering `limits`. Measured: about 14 MB;
reading the file whole, as loads once did, added 78 MB for these 17 MB of lines."""


def run_measured(argv: list[str]) -> tuple[int, str, float]:
    """The command line in a process of its own, as the benchmark runs it: its exit status, what it printed
    and its own peak RSS in MB (`bench.peak_rss`: wait4's would be pytest's RSS at the fork)."""
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "client"), str(ROOT)])}
    command = [sys.executable, "-m", "bench.peak_rss", "feature_store_client", *argv]
    done = subprocess.run(command, env=env, capture_output=True, text=True, timeout=500)
    return done.returncode, done.stdout, peak_rss.peak_rss_mb(done.stderr)


@pytest.mark.slow
@pytest.mark.timeout(600)
def test_a_large_file_loads_in_bounded_memory(start_service, tmp_path: Path, report) -> None:
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY)
    url = start_service(FEATURE_REGISTRY_FILE=str(registry)).url
    path = tmp_path / "large.jsonl"
    with path.open("w") as file:
        file.writelines(entity_line(i) + "\n" for i in range(LARGE_LINES))
    status, _, baseline = run_measured(["--url", url, "limits"])
    assert status == 0
    status, out, peak = run_measured(["--url", url, "--timeout", "60", "load", str(path), "--source", WRITER])
    assert status == 0, out
    summary = json.loads(out)
    assert (summary["lines"], summary["written"], summary["failed"]) == (LARGE_LINES, LARGE_LINES, 0)
    report(f"peak RSS {peak:.1f} MB loading {LARGE_LINES} lines, {baseline:.1f} MB answering limits")
    assert peak - baseline < RSS_GROWTH_MB, f"peak RSS {peak:.0f} MB, {baseline:.0f} MB answering limits"
    last = LARGE_LINES - 1
    with FeatureStoreClient(url) as store:
        assert store.read_category(f"u{last}", "typed").data == {"count": last, "name": f"name-{last}"}

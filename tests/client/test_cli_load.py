"""`feature-store load` of Parquet and CSV files against the service under uvicorn: types read back
equal, bad rows are reported by row number, bad arguments exit 2, and an interrupted load resumes
without sending again what was answered."""

import io
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest

from devservers import ROOT
from feature_store_client import FeatureStoreClient
from feature_store_client.cli import main
from tests.client.conftest import WRITER, Recorder
from tests.client.test_dataframe import REGISTRY, expected, typed_table

pa = pytest.importorskip("pyarrow")
pq = pytest.importorskip("pyarrow.parquet")

pytestmark = pytest.mark.backends("sqlite")  # argument checks; the loads that write name both backends


@pytest.fixture
def url(start_service, tmp_path: Path) -> str:
    registry = tmp_path / "registry.yaml"
    registry.write_text(REGISTRY)
    return start_service(FEATURE_REGISTRY_FILE=str(registry), MAX_BATCH_WRITE_ENTITIES="10").url


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, dict[str, Any] | None, str]:
    status = main(list(argv), stdin=io.StringIO(""))
    captured = capsys.readouterr()
    return status, json.loads(captured.out) if captured.out else None, captured.err


def stored(url: str, count: int) -> list[dict[str, Any]]:
    with FeatureStoreClient(url) as store:
        answer = store.read_batch([f"u{i}" for i in range(count)], ["typed:*"])
    return [result.values.get("typed", {}) for result in answer.results]


@pytest.mark.backends("sqlite", "dynamodb")
def test_a_parquet_file_and_a_directory_round_trip_every_type(url: str, capsys, tmp_path: Path) -> None:
    table = typed_table(25).rename_columns(["entity_value", *typed_table(1).column_names[1:]])
    pq.write_table(table, tmp_path / "features.parquet", row_group_size=7)
    status, summary, err = run(capsys, "--url", url, "load", str(tmp_path / "features.parquet"), "--source", WRITER)
    assert status == 0, err
    assert summary is not None and (summary["rows"], summary["written"], summary["failed"]) == (25, 25, 0)
    assert summary["failures_file"] is None and not (tmp_path / "features.parquet.checkpoint.json").exists()
    assert stored(url, 25) == [expected(i) for i in range(25)]

    (tmp_path / "parts").mkdir()
    pq.write_table(table.slice(0, 10), tmp_path / "parts" / "part-0.parquet")
    pq.write_table(table.slice(10), tmp_path / "parts" / "part-1.parquet")
    status, summary, err = run(capsys, "--url", url, "load", str(tmp_path / "parts"), "--source", WRITER, "--progress")
    assert status == 0 and summary is not None and summary["written"] == 25
    assert "25/25 rows, 0 failed" in err and "rows/s, ETA" in err, "the total from Parquet's metadata"


@pytest.mark.backends("sqlite", "dynamodb")
def test_a_csv_file_with_a_category_mapping_and_column_types(url: str, capsys, tmp_path: Path) -> None:
    path = tmp_path / "scores.csv"
    path.write_text("user,count,score,when,level\n007,1,0.5,2026-01-02T00:00:00Z,3\nu1,2,nan,,4\n,3,1.5,,5\n")
    status, summary, err = run(
        capsys,
        "--url",
        url,
        "load",
        str(path),
        "--entity-column",
        "user",
        "--category",
        "typed=count,score",
        "--category",
        "other=level",
        "--event-time-column",
        "when",
        "--column-types",
        "count=int,when=timestamp",
        "--source",
        WRITER,
        "--progress",
    )
    assert status == 1 and summary is not None
    assert (summary["rows"], summary["written"], summary["failed"]) == (3, 1, 2)
    assert "rows/s" in err
    failures = [json.loads(line) for line in Path(summary["failures_file"]).read_text().splitlines()]
    assert [(failure["row"], failure["error"]) for failure in failures] == [
        (1, "invalid_number"),
        (2, "missing_entity"),
    ]
    with FeatureStoreClient(url) as store:
        written = store.read_category("007", "typed")
    assert written.data == {"count": 1, "score": 0.5} and written.metadata.event_time is not None


def test_every_type_a_csv_file_holds_round_trips(url: str, capsys, tmp_path: Path) -> None:
    path = tmp_path / "typed.csv"
    path.write_text(
        "entity_value,typed:count,typed:score,typed:flag,typed:name,typed:day,typed:seen_at,typed:maybe\n"
        "u0,1,0.5,true,007,2026-01-01,2026-01-02T03:04:05.600000Z,\n"
        'u1,2,1.5,false,"with, comma",2026-01-02,2026-01-02T04:04:05.600+01:00,7\n'
    )
    status, summary, err = run(
        capsys, "--url", url, "load", str(path), "--column-types", "typed:name=string", "--source", WRITER
    )
    assert status == 0, err
    assert summary is not None and (summary["rows"], summary["written"]) == (2, 2)
    common = {"day": "2026-01-01", "seen_at": "2026-01-02T03:04:05.600000+00:00"}
    assert stored(url, 2) == [
        {"count": 1, "score": 0.5, "flag": True, "name": "007", **common},
        {"count": 2, "score": 1.5, "flag": False, "name": "with, comma", **common, "day": "2026-01-02", "maybe": 7},
    ]


def test_rows_refused_by_the_registry_are_reported_and_the_load_goes_on(url: str, capsys, tmp_path: Path) -> None:
    counts = [None if i == 12 else i for i in range(30)]
    table = pa.table({"entity_value": [f"u{i}" for i in range(30)], "typed:count": pa.array(counts, pa.int64())})
    pq.write_table(table, tmp_path / "mixed.parquet")
    status, summary, _ = run(
        capsys, "--url", url, "load", str(tmp_path / "mixed.parquet"), "--source", WRITER, "--nulls", "null"
    )
    assert status == 1 and summary is not None and (summary["written"], summary["failed"]) == (29, 1)
    failure = json.loads(Path(summary["failures_file"]).read_text())
    assert (failure["row"], failure["entity_value"], failure["error"]) == (12, "u12", "validation_error")


@pytest.mark.parametrize(
    ("argv", "reason"),
    [
        (["--entity-column", "nobody"], "missing_column"),
        (["--format", "csv"], "CSV"),
        (["--category", "typed"], "--category"),
    ],
)
def test_bad_arguments_exit_2_with_the_reason_on_one_line(
    url: str, capsys, tmp_path: Path, argv: list[str], reason: str
) -> None:
    pq.write_table(typed_table(3), tmp_path / "features.parquet")
    status, summary, err = run(capsys, "--url", url, "load", str(tmp_path / "features.parquet"), *argv)
    assert status == 2 and summary is None
    assert reason in err and len(err.strip().splitlines()) == 1


def test_a_missing_or_unreadable_file_exits_2(url: str, capsys, tmp_path: Path) -> None:
    status, _, err = run(capsys, "--url", url, "load", str(tmp_path / "nothing.parquet"))
    assert status == 2 and "nothing.parquet" in err
    (tmp_path / "broken.parquet").write_text("not parquet")
    status, _, err = run(capsys, "--url", url, "load", str(tmp_path / "broken.parquet"))
    assert status == 2 and len(err.strip().splitlines()) == 1
    status, _, err = run(capsys, "--url", url, "load", str(tmp_path / "data.xlsx"))
    assert status == 2 and "--format" in err


def resume_after_interruption(
    url: str, capsys: pytest.CaptureFixture[str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, how: str
) -> None:
    """Stopped after two parts, by Ctrl-C (`interrupt`) or a lost connection, then resumed."""
    table = typed_table(45).rename_columns(["entity_value", *typed_table(1).column_names[1:]])
    path = tmp_path / "features.parquet"
    pq.write_table(table, path, row_group_size=20)
    command = ["--url", url, "--timeout", "2", "load", str(path), "--source", WRITER, "--concurrency", "1"]

    first = Recorder(monkeypatch, 2, how)
    status, summary, err = run(capsys, *command)
    assert status == (130 if how == "interrupt" else 1) and "--resume" in err
    assert summary is not None and summary["rows"] == 20 and (tmp_path / "features.parquet.checkpoint.json").exists()
    monkeypatch.undo()

    second = Recorder(monkeypatch, None, how)
    status, summary, err = run(capsys, *command, "--resume")
    assert status == 0, err
    assert summary is not None and (summary["rows"], summary["written"], summary["failed"]) == (45, 45, 0)
    assert summary["resumed_from_row"] == 20
    answered = first.sent[:20] if how == "connection" else first.sent
    assert sorted(answered + second.sent) == sorted(f"u{i}" for i in range(45)), "each row sent once"
    assert stored(url, 45) == [expected(i) for i in range(45)]
    assert not (tmp_path / "features.parquet.checkpoint.json").exists()


@pytest.mark.backends("sqlite", "dynamodb")
def test_a_load_stopped_by_ctrl_c_resumes_and_writes_every_row_once(
    url: str, capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    resume_after_interruption(url, capsys, tmp_path, monkeypatch, "interrupt")


def test_a_load_that_lost_its_connection_resumes_and_writes_every_row_once(
    url: str, capsys, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The store's side is the same as after Ctrl-C: the embedded store only."""
    resume_after_interruption(url, capsys, tmp_path, monkeypatch, "connection")


def test_a_load_killed_mid_way_resumes_from_its_checkpoint(url: str, capsys, tmp_path: Path) -> None:
    """A crash (SIGKILL) leaves the last checkpoint written whole; the checkpoint may live apart from the input."""
    rows = 5000
    path = tmp_path / "features.parquet"
    pq.write_table(pa.table({"entity_value": [f"u{i}" for i in range(rows)], "typed:count": range(rows)}), path)
    (tmp_path / "state").mkdir()
    checkpoint = tmp_path / "state" / "nightly.json"
    command = [
        "--url",
        url,
        "load",
        str(path),
        "--source",
        WRITER,
        "--concurrency",
        "1",
        "--checkpoint",
        str(checkpoint),
    ]
    env = {**os.environ, "PYTHONPATH": str(ROOT / "client")}
    process = subprocess.Popen([sys.executable, "-m", "feature_store_client", *command], env=env)
    deadline = time.monotonic() + 60
    while not checkpoint.exists() and process.poll() is None and time.monotonic() < deadline:
        time.sleep(0.01)
    process.kill()
    assert process.wait() == -signal.SIGKILL, "the load ended before it could be killed"
    assert 0 < json.loads(checkpoint.read_text())["rows_done"] < rows

    status, summary, err = run(capsys, *command, "--resume")
    assert status == 0, err
    assert summary is not None and (summary["rows"], summary["written"], summary["failed"]) == (rows, rows, 0)
    assert 0 < summary["resumed_from_row"] < rows and not checkpoint.exists()
    with FeatureStoreClient(url) as store:
        answer = store.read_batch([f"u{i}" for i in range(rows)], ["typed:count"])
    assert [result.values["typed"]["count"] for result in answer.results] == list(range(rows))


def test_a_checkpoint_of_another_input_is_refused(url: str, capsys, tmp_path: Path) -> None:
    path = tmp_path / "features.parquet"
    pq.write_table(typed_table(3), path)
    Path(f"{path}.checkpoint.json").write_text(json.dumps({"input": [], "rows_done": 2, "written": 2, "failed": 0}))
    status, _, err = run(capsys, "--url", url, "load", str(path), "--entity-column", "user", "--resume")
    assert status == 2 and "another version of the input" in err

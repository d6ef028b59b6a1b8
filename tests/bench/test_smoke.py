"""A short run of the whole benchmark, so the suite cannot rot; speed is not asserted here."""

import json
import subprocess
import sys
from pathlib import Path

from bench.run import SCENARIOS

ROOT = Path(__file__).resolve().parents[2]


def test_benchmark_smoke_run(tmp_path: Path) -> None:
    completed = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--output", str(tmp_path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=240,
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    report = json.loads((tmp_path / "smoke.json").read_text())
    measured = {(r["scenario"], r["backend"], r["mode"]) for r in report["results"]}
    for backend in ("sqlite", "dynamodb"):
        for scenario in SCENARIOS:
            assert {(scenario, backend, "max"), (scenario, backend, "rate")} <= measured
    assert all(r["errors"] == 0 and r["rps"] > 0 for r in report["results"]), report["results"]
    assert report["bare"]["rps"] > 0
    assert set(report["cold_start"]) == {"sqlite", "dynamodb"}
    assert report["dynamodb_added_latency"]["raw_boto3_get_item_p50_ms"] > 0
    assert (tmp_path / "smoke.png").stat().st_size > 0

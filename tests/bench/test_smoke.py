"""A short run of the whole benchmark, so the suite cannot rot; speed is not asserted here."""

import json
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from bench.scenarios import BULK_VERSUS, CPU_RATIO_BOUNDS, SCENARIOS, TAIL_LATENCY_BOUNDS_MS

# The smoke run starts every server and load generator the benchmark uses, and loads two Parquet files.
pytestmark = [pytest.mark.slow, pytest.mark.timing, pytest.mark.timeout(330)]

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> tuple[dict[str, Any], str, Path]:
    """One smoke run for the module: its JSON report, what it printed, and its output directory."""
    output = tmp_path_factory.mktemp("bench")
    completed = subprocess.run(
        [sys.executable, "-m", "bench.run", "--smoke", "--output", str(output)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=300,  # every scenario on both backends, the metrics and JWT cost comparisons, two file loads
    )
    assert completed.returncode == 0, completed.stdout[-3000:] + completed.stderr[-3000:]
    return json.loads((output / "smoke.json").read_text()), completed.stdout, output


def test_benchmark_smoke_run(smoke: tuple[dict[str, Any], str, Path]) -> None:
    report, printed, output = smoke
    measured = {(r["scenario"], r["backend"], r["mode"]) for r in report["results"]}
    for backend in ("sqlite", "dynamodb"):
        for scenario, shape in SCENARIOS.items():
            assert (scenario, backend, "max") in measured
            # A fixed rate sends one request again and again: under one Idempotency-Key, replays.
            assert ((scenario, backend, "rate") in measured) is not shape.idempotency_keys
    assert all(r["rps"] > 0 and r["requests"] > 0 for r in report["results"]), report["results"]
    assert all(r["errors"] == 0 for r in report["results"] if r["mode"] == "max"), report["results"]
    for r in report["results"]:
        if r["mode"] == "rate":
            # At a constant rate, the smoke run's services (both backends at once on a busy machine) may
            # stall and refuse the excess as overloaded; any other answer than 200 or 503 is a fault.
            assert set(r["statuses"]) <= {"200", "503"} and r["statuses"].get("200"), r
            assert r["p999_ms"] >= r["p99_ms"] >= r["p50_ms"] > 0, r
    assert report["bare"]["rps"] > 0
    # The bare endpoint at a constant rate too: the floor under the scenarios' tail latencies.
    bare_rate = report["bare_rate"]
    assert bare_rate["mode"] == "rate" and bare_rate["statuses"].get("200"), bare_rate
    assert bare_rate["p99_ms"] >= bare_rate["p50_ms"] > 0 and bare_rate["cpu_ms_per_request"] > 0, bare_rate
    assert re.search(r"^bare_fastapi +- +rate ", printed, re.MULTILINE) and "busy" in printed
    # The tail scenarios again with the service's own pause metrics, read from its Prometheus endpoint.
    assert [row["scenario"] for row in report["tail_pauses"]] == list(TAIL_LATENCY_BOUNDS_MS)
    assert all(row["served"] > 0 and row["steal_ms"] >= 0 for row in report["tail_pauses"]), report
    assert set(report["cold_start"]) == {"sqlite", "dynamodb"}
    assert report["dynamodb_added_latency"]["raw_boto3_get_item_p50_ms"] > 0
    assert (output / "smoke.png").stat().st_size > 0


def test_cpu_per_request_for_every_scenario_and_backend(smoke: tuple[dict[str, Any], str, Path]) -> None:
    """The service's CPU per request at full load, and Dynoxide's beside DynamoDB's; fixed-rate runs
    carry it too; writes also the CPU until the relay had published their events."""
    report, _, _ = smoke
    assert report["bare"]["cpu_ms_per_request"] > 0
    for r in report["results"]:
        if r["mode"] == "max":
            assert r["cpu_ms_per_request"] > 0, r
            assert 0 <= r["cpu_system_share"] <= 1, r
            if r["backend"] == "dynamodb":
                assert r["store_cpu_ms_per_request"] > 0, r
        assert r["cpu_ms_per_request"] is not None, r
        assert (r["store_cpu_ms_per_request"] is None) == (r["backend"] == "sqlite"), r
        if SCENARIOS[r["scenario"]].events:
            assert r["cpu_ms_per_request_with_relay"] >= r["cpu_ms_per_request"], r
        else:
            assert r["cpu_ms_per_request_with_relay"] is None, r


def test_cpu_ratio_table_checks_the_targets(smoke: tuple[dict[str, Any], str, Path]) -> None:
    """Every scenario's DynamoDB / embedded ratio, judged against its bound where it has one; a missed
    bound is reported, and does not fail the run."""
    report, printed, _ = smoke
    ratios = {row["scenario"]: row for row in report["cpu_ratios"]}
    assert set(ratios) == set(SCENARIOS)
    for scenario, row in ratios.items():
        assert row["ratio"] == round(row["dynamodb_cpu_ms"] / row["sqlite_cpu_ms"], 2), row
        assert row["bound"] == CPU_RATIO_BOUNDS.get(scenario), row
        assert row["met"] == (None if row["bound"] is None else row["ratio"] <= row["bound"]), row
    table = printed.split("DynamoDB / embedded store:")[1].split("\n\n")[0]
    lines = {line.split()[0]: line for line in table.splitlines() if line.split() and line.split()[0] in SCENARIOS}
    assert set(lines) == set(SCENARIOS)
    for scenario, line in lines.items():
        verdict = {None: f"{ratios[scenario]['ratio']:.2f}x", True: "x  met", False: "x  not met"}
        assert line.rstrip().endswith(verdict[ratios[scenario]["met"]]), line


def test_bulk_writes_are_reported_per_entity_beside_single_writes(smoke: tuple[dict[str, Any], str, Path]) -> None:
    """Entities a second and CPU per entity of the bulk write and of single-entity writes, on both backends."""
    report, printed, _ = smoke
    rows = {(row["scenario"], row["backend"]): row for row in report["bulk_writes"]}
    assert set(rows) == {(bulk, backend) for bulk in BULK_VERSUS for backend in ("sqlite", "dynamodb")}
    results = {(r["scenario"], r["backend"]): r for r in report["results"] if r["mode"] == "max"}
    for (bulk, backend), row in rows.items():
        entities = results[(bulk, backend)]["entities"]
        assert entities == row["entities_per_request"] > 1
        assert row["bulk_entities_per_s"] == round(results[(bulk, backend)]["rps"] * entities, 1), row
        assert row["bulk_cpu_ms_per_entity"] == round(results[(bulk, backend)]["cpu_ms_per_request"] / entities, 4)
        single_rps = results[(row["versus"], backend)]["rps"]
        assert row["speedup"] == round(results[(bulk, backend)]["rps"] * entities / single_rps, 2)
        assert row["met"] == (row["speedup"] >= row["bound"])
    assert "Bulk writes at full load" in printed


def test_jwt_cost_beside_api_keys(smoke: tuple[dict[str, Any], str, Path]) -> None:
    """A JWT caller's read measured beside an API key's (each load's every read answered), judged against
    the bound; a missed bound is reported, and does not fail the run."""
    report, printed, _ = smoke
    cost = report["auth_cost"]
    assert set(cost["cpu_ms_per_request"]) == {"api_key", "jwt"}
    assert all(value > 0 for value in cost["cpu_ms_per_request"].values())
    assert cost["met"] == (cost["jwt_to_api_key"] <= cost["bound"])
    assert "JWT callers' cost" in printed


def test_the_loader_is_measured_beside_the_bulk_endpoint(smoke: tuple[dict[str, Any], str, Path]) -> None:
    """`feature-store load` of a generated Parquet file at two sizes: every entity written, its CPU and
    peak RSS measured, and its rate put beside the bulk endpoint's from the same run."""
    report, printed, _ = smoke
    loader = report["loader"]
    assert [run["entities"] for run in loader["runs"]] == list(report["profile"]["loader_entities"])
    for run in loader["runs"]:
        assert run["exit_status"] == 0 and run["written"] == run["entities"] and run["failed"] == 0, run
        assert run["cpu_ms_per_entity"] > 0 and run["peak_rss_mb"] > 0, run
    assert loader["bulk_entities_per_s"] > 0 and loader["throughput_ratio"] > 0
    assert "`feature-store load` of a Parquet file" in printed

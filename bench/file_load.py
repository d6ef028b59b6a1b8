"""The loader's row of the benchmark: `feature-store load` of a generated Parquet file (entities x 5
categories x 20 float features, as the bulk scenarios write) into the embedded store, run as the
command line is, in a process of its own: its entities a second beside the bulk endpoint's own figure
from the same run, its CPU per entity, and its peak RSS at two sizes (bounded memory means the same)."""

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from bench import peak_rss
from bench.scenarios import CATEGORIES, FEATURES

ROOT = Path(__file__).resolve().parent.parent
THROUGHPUT_BOUND = 0.8
"""Target: the loader writes at least this share of the bulk endpoint's entities a second."""
RSS_GROWTH_BOUND = 1.2
"""Target: the loader's peak RSS at the larger size at most this many times the smaller's."""
RSS_BOUND_MB = 300.0
ROWS_PER_GROUP = 50_000


def write_parquet(path: Path, entities: int) -> None:
    """`load-0` ... with 5 categories x 20 features each, written a row group at a time."""
    import numpy as np
    import pyarrow as pa
    import pyarrow.parquet as pq

    names = ["entity_value"] + [f"{category}:{feature}" for category in CATEGORIES for feature in FEATURES]
    schema = pa.schema([pa.field(names[0], pa.string())] + [pa.field(name, pa.float64()) for name in names[1:]])
    with pq.ParquetWriter(path, schema) as writer:
        for start in range(0, entities, ROWS_PER_GROUP):
            rows = np.arange(start, min(start + ROWS_PER_GROUP, entities))
            columns = [pa.array([f"load-{row}" for row in rows])]
            columns += [pa.array((rows % 1000 + index) * 1.5 + 0.25) for index in range(len(names) - 1)]
            writer.write_table(pa.Table.from_arrays(columns, schema=schema))


def run_cli(url: str, path: Path, work: Path) -> dict[str, Any]:
    """One load by the command line: its summary, wall time, CPU time (from wait4) and peak RSS (its own,
    `bench.peak_rss`: wait4's would hold this process's RSS at the fork)."""
    output, errors = work / f"{path.stem}.summary.json", work / f"{path.stem}.stderr.txt"
    command = [sys.executable, "-m", "bench.peak_rss", "feature_store_client", "--url", url, "--timeout", "60"]
    command += ["load", str(path), "--source", "prediction_service", "--compute-id", "bench-load", "--no-progress"]
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(ROOT / "client"), str(ROOT)])}
    started = time.perf_counter()
    with output.open("wb") as out, errors.open("wb") as err:
        process = subprocess.Popen(command, cwd=work, env=env, stdout=out, stderr=err)
        _, status, usage = os.wait4(process.pid, 0)
    seconds = time.perf_counter() - started
    process.returncode = os.waitstatus_to_exitcode(status)
    summary = json.loads(output.read_text())
    return {
        "exit_status": process.returncode,
        "written": summary["written"],
        "failed": summary["failed"],
        "seconds": round(seconds, 2),
        "cpu_s": usage.ru_utime + usage.ru_stime,
        "peak_rss_mb": round(peak_rss.peak_rss_mb(errors.read_text()), 1),
    }


def measure(start_service: Callable[[str], tuple[str, Callable[[], None]]], sizes: list[int], work: Path) -> dict:
    """Each size loaded into a fresh service (`start_service(name)` -> its url and its stop)."""
    runs = []
    for entities in sizes:
        path = work / f"load-{entities}.parquet"
        write_parquet(path, entities)
        url, stop = start_service(f"loader-{entities}")
        try:
            numbers = run_cli(url, path, work)
        finally:
            stop()
            path.unlink()
        runs.append(
            {
                "entities": entities,
                **numbers,
                "entities_per_s": round(entities / numbers["seconds"], 1),
                "cpu_ms_per_entity": round(1000 * numbers["cpu_s"] / entities, 4),
            }
        )
    return {"runs": runs}


def compare(loader: dict, bulk_entities_per_s: float | None) -> dict:
    """The loader's figures against the bulk endpoint's and its own at two sizes."""
    small, large = loader["runs"][0], loader["runs"][-1]
    ratio = small["entities_per_s"] / bulk_entities_per_s if bulk_entities_per_s else None
    return {
        "bulk_entities_per_s": bulk_entities_per_s,
        "throughput_ratio": None if ratio is None else round(ratio, 3),
        "rss_growth": round(large["peak_rss_mb"] / small["peak_rss_mb"], 3),
        "peak_rss_mb": max(run["peak_rss_mb"] for run in loader["runs"]),
    }

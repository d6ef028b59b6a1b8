"""Load generators: wrk at a fixed number of connections, hey at a fixed request rate.

Each returns the requests the service served (`requests`), how long those still in flight when the
generator stopped may take to finish (`settle_s`), throughput, latency percentiles and errors.

A request template holds `{id}` where an entity goes; each occurrence gets its own seeded entity
(consecutive ones from a random start with wrk, from `bench-1` with hey), so a batch of N entity
values reads N distinct entities whenever at least N are seeded.
"""

import csv
import io
import json
import os
import subprocess
from pathlib import Path

WRK_SCRIPT = Path(__file__).resolve().parent / "wrk.lua"


def run_wrk(
    url: str,
    method: str,
    path: str,
    body: str | None,
    entities: int,
    seconds: int,
    connections: int,
    work: Path,
    authorization: str = "",
    idempotency_keys: bool = False,
) -> dict:
    """`authorization`: an `Authorization` header every request sends (none when empty); `idempotency_keys`:
    each request sends an `Idempotency-Key` of its own."""
    env = {**os.environ, "BENCH_METHOD": method, "BENCH_PATH": path, "BENCH_ENTITIES": str(entities)}
    env["BENCH_AUTHORIZATION"] = authorization
    env["BENCH_IDEMPOTENCY_KEYS"] = "1" if idempotency_keys else ""
    if body is not None:
        body_file = work / "body.json"
        body_file.write_text(body)
        env["BENCH_BODY_FILE"] = str(body_file)
    command = ["wrk", "-t1", f"-c{connections}", f"-d{seconds}s", "--timeout", "30s", "-s", str(WRK_SCRIPT), url]
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    summary = json.loads(output.strip().splitlines()[-1])
    return {
        # wrk keeps one request outstanding per connection: when it stops, the service still finishes
        # those (its access log counts them), within about the slowest latency seen.
        "requests": summary["requests"] + connections,
        "settle_s": summary["max_us"] / 1e6,
        "rps": summary["requests"] / (summary["duration_us"] / 1e6),
        "p50_ms": summary["p50_us"] / 1000,
        "p95_ms": summary["p95_us"] / 1000,
        "p99_ms": summary["p99_us"] / 1000,
        "errors": sum(summary["errors"].values()),
    }


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def fill(template: str, entities: int) -> str:
    """The template with its `{id}`s replaced by `bench-1`, `bench-2`, ... (wrapping at `entities`)."""
    parts = template.split("{id}")
    ids = [f"bench-{(index + 1) % entities}" for index in range(len(parts) - 1)]
    return "".join(part + value for part, value in zip(parts, [*ids, ""], strict=True))


def run_hey(
    url: str, method: str, path: str, body: str | None, entities: int, rate: float, seconds: float, work: Path
) -> dict:
    """A fixed request rate (hey paces each of its workers); every request is the same one."""
    workers = max(1, min(8, int(rate // 50) or 1))
    command = ["hey", "-z", f"{seconds}s", "-c", str(workers), "-q", f"{rate / workers:.2f}", "-o", "csv", "-m", method]
    if body is not None:
        body_file = work / "rate-body.json"
        body_file.write_text(fill(body, entities))
        command += ["-T", "application/json", "-D", str(body_file)]
    command.append(url + fill(path, entities))
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rows = list(csv.DictReader(io.StringIO(output)))
    latencies = [float(row["response-time"]) * 1000 for row in rows]
    elapsed = max(float(row["offset"]) for row in rows) if rows else seconds
    return {
        "requests": len(rows),  # hey waits for its requests in flight before it reports
        "settle_s": 0.0,
        "rps": len(rows) / max(elapsed, 1e-9),
        "p50_ms": percentile(latencies, 0.50),
        "p95_ms": percentile(latencies, 0.95),
        "p99_ms": percentile(latencies, 0.99),
        "errors": sum(1 for row in rows if row["status-code"] != "200"),
    }

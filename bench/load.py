"""Load generators: wrk at a fixed number of connections, `bench/openloop.py` at a fixed request rate.

Each returns the requests the service served (`requests`), how long those still in flight when the
generator stopped may take to finish (`settle_s`), throughput, latency percentiles and errors.

A request template holds `{id}` where an entity goes; each occurrence gets its own seeded entity
(consecutive ones from a random start with wrk, from `bench-1` at a fixed rate), so a batch of N entity
values reads N distinct entities whenever at least N are seeded.
"""

import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
WRK_SCRIPT = ROOT / "bench" / "wrk.lua"


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


def fill(template: str, entities: int, first: int = 0) -> str:
    """The template with its `{id}`s replaced by consecutive seeded entities from `bench-{first + 1}`
    (wrapping at `entities`)."""
    parts = template.split("{id}")
    ids = [f"bench-{(first + index + 1) % entities}" for index in range(len(parts) - 1)]
    return "".join(part + value for part, value in zip(parts, [*ids, ""], strict=True))


def run_open_loop(
    url: str, method: str, path: str, body: str | None, entities: int, rate: float, seconds: float, work: Path
) -> dict:
    """A constant request rate, latency counted from when each request was due (`bench/openloop.py`)."""
    command = [sys.executable, "-m", "bench.openloop", url, method, path, "--rate", f"{rate:.2f}"]
    command += ["--seconds", str(seconds), "--entities", str(entities)]
    if body is not None:
        body_file = work / "rate-body.json"
        body_file.write_text(body)
        command += ["--body-file", str(body_file)]
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    summary = json.loads(output.strip().splitlines()[-1])
    return {
        "requests": summary["requests"],  # the generator waits for its requests in flight before it reports
        "settle_s": 0.0,
        "rps": summary["rps"],
        "p50_ms": summary["p50_ms"],
        "p95_ms": summary["p95_ms"],
        "p99_ms": summary["p99_ms"],
        "p999_ms": summary["p999_ms"],
        "errors": summary["errors"],
        "statuses": summary["statuses"],
        "send_lag_p99_ms": summary["send_lag_p99_ms"],
    }

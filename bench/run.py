"""Benchmark suite: the service on each backend against a bare FastAPI endpoint, in one run.

    python -m bench.run            # full run (make bench): results in bench/results/
    python -m bench.run --smoke    # a few seconds, no targets checked (part of make test)

Each server runs as its own process: 1 uvicorn worker, production logging (JSON lines at INFO).
Throughput and latency come from wrk at fixed concurrency; latency at a fixed request rate (half
the measured maximum) from hey. The DynamoDB backend runs against a local Dynoxide and the Kafka
relay against a local Tansu broker, both started here.
"""

import argparse
import csv
import io
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devservers import free_port, start_dynoxide, start_tansu  # noqa: E402

RESULTS = ROOT / "bench" / "results"
CATEGORIES = ["user_features", "credit_features", "transaction_features", "trans_features", "d0_unauth_features"]
FEATURES = [f"feature_{index:02d}" for index in range(20)]


@dataclass
class Profile:
    entities: int
    duration_s: float
    connections: int
    sequential_requests: int


FULL = Profile(entities=10_000, duration_s=10, connections=16, sequential_requests=2000)
SMOKE = Profile(entities=50, duration_s=1, connections=4, sequential_requests=50)


@dataclass
class Result:
    scenario: str
    backend: str
    mode: str
    """`max`: fixed concurrency, as fast as it goes; `rate`: a fixed request rate."""
    rps: float
    p50_ms: float
    p95_ms: float
    p99_ms: float
    errors: int
    concurrency: int
    target_rps: float | None = None
    ratio_to_bare: float | None = None


@dataclass
class Report:
    machine: dict
    profile: dict
    results: list[Result] = field(default_factory=list)
    cold_start: dict = field(default_factory=dict)
    dynamodb_added_latency: dict = field(default_factory=dict)
    targets: list[dict] = field(default_factory=list)


def features(seed: int) -> dict:
    return {name: (seed + index) * 1.5 if index % 2 else seed + index for index, name in enumerate(FEATURES)}


def write_body(categories: list[str], entity: str = "{id}") -> str:
    body = {
        "meta": {"source": "prediction_service", "compute_id": "bench"},
        "data": {
            "entity_type": "bright_uid",
            "entity_value": entity,
            "feature_list": [{"category": name, "features": features(7)} for name in categories],
        },
    }
    return json.dumps(body)


def multi_read_body(entity: str = "{id}") -> str:
    feature_list = [f"{category}:{name}" for category in CATEGORIES[:3] for name in FEATURES]
    feature_list += [f"{category}:*" for category in CATEGORIES[3:]]
    return json.dumps(
        {
            "meta": {"source": "bench"},
            "data": {"entity_type": "bright_uid", "entity_value": entity, "feature_list": feature_list},
        }
    )


SCENARIOS = {
    "read_single": ("GET", "/api/v1/get/item/{id}/user_features", None),
    "read_multi": ("POST", "/api/v1/get/items", multi_read_body()),
    "write_1x20": ("POST", "/api/v1/items", write_body(CATEGORIES[:1])),
    "write_5x20": ("POST", "/api/v1/items", write_body(CATEGORIES)),
}


def wait_until(check, timeout: float) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if check():
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError("timed out waiting")
        time.sleep(0.005)


SERVICE_ENV = {"ENVIRONMENT": "development", "LOG_FORMAT": "json", "LOG_LEVEL": "INFO", "PYTHONPATH": str(ROOT)}
"""Production logging (JSON lines at INFO). Processes run in a scratch directory, so no `.env*` file
of the repository applies: the environment given here is the whole configuration."""


class Service:
    """One uvicorn process, 1 worker."""

    def __init__(self, app: str, env: dict[str, str], work: Path, name: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (work / f"{name}.log").open("wb")
        self.started = time.perf_counter()
        self.process = subprocess.Popen(
            [
                sys.executable,
                "-m",
                "uvicorn",
                app,
                "--app-dir",
                str(ROOT),
                "--host",
                "127.0.0.1",
                "--port",
                str(self.port),
                "--workers",
                "1",
            ],
            cwd=work,
            env={**os.environ, **SERVICE_ENV, **env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def wait_ready(self, path: str = "/api/v1/ready") -> float:
        wait_until(lambda: httpx.get(self.url + path, timeout=1).status_code == 200, timeout=30)
        return time.perf_counter() - self.started

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def run_wrk(url: str, method: str, path: str, body: str | None, profile: Profile, connections: int, work: Path) -> dict:
    env = {**os.environ, "BENCH_METHOD": method, "BENCH_PATH": path, "BENCH_ENTITIES": str(profile.entities)}
    if body is not None:
        body_file = work / "body.json"
        body_file.write_text(body)
        env["BENCH_BODY_FILE"] = str(body_file)
    command = [
        "wrk",
        "-t1",
        f"-c{connections}",
        f"-d{profile.duration_s}s",
        "--timeout",
        "5s",
        "-s",
        str(ROOT / "bench" / "wrk.lua"),
        url,
    ]
    output = subprocess.run(command, env=env, capture_output=True, text=True, check=True).stdout
    summary = json.loads(output.strip().splitlines()[-1])
    errors = sum(summary["errors"].values())
    return {
        "rps": summary["requests"] / (summary["duration_us"] / 1e6),
        "p50_ms": summary["p50_us"] / 1000,
        "p95_ms": summary["p95_us"] / 1000,
        "p99_ms": summary["p99_us"] / 1000,
        "errors": errors,
    }


def percentile(values: list[float], share: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(share * len(ordered)))]


def run_hey(url: str, method: str, path: str, body: str | None, rate: float, profile: Profile, work: Path) -> dict:
    """A fixed request rate (hey paces each of its workers); one entity, since hey sends one request."""
    workers = max(1, min(8, int(rate // 50) or 1))
    command = [
        "hey",
        "-z",
        f"{profile.duration_s}s",
        "-c",
        str(workers),
        "-q",
        f"{rate / workers:.2f}",
        "-o",
        "csv",
        "-m",
        method,
    ]
    if body is not None:
        body_file = work / "rate-body.json"
        body_file.write_text(body.replace("{id}", "bench-1"))
        command += ["-T", "application/json", "-D", str(body_file)]
    command.append(url + path.replace("{id}", "bench-1"))
    output = subprocess.run(command, capture_output=True, text=True, check=True).stdout
    rows = list(csv.DictReader(io.StringIO(output)))
    latencies = [float(row["response-time"]) * 1000 for row in rows]
    errors = sum(1 for row in rows if row["status-code"] != "200")
    elapsed = max(float(row["offset"]) for row in rows) if rows else profile.duration_s
    return {
        "rps": len(rows) / max(elapsed, 1e-9),
        "p50_ms": percentile(latencies, 0.50),
        "p95_ms": percentile(latencies, 0.95),
        "p99_ms": percentile(latencies, 0.99),
        "errors": errors,
    }


def in_child(code: str, env: dict[str, str], work: Path) -> str:
    """Run bench code in a child process configured like the service; return what it printed."""
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=work, env={**os.environ, **SERVICE_ENV, **env}, capture_output=True, text=True
    )
    if completed.returncode != 0:
        raise RuntimeError(f"bench child failed:\n{completed.stderr[-3000:]}")
    return completed.stdout


def measure_backend(
    backend: str, env: dict[str, str], report: Report, profile: Profile, bare_rps: float, work: Path
) -> Service:
    seeding = {**env, "SQLITE_SYNCHRONOUS": "OFF"} if backend == "sqlite" else env
    in_child(f"from bench.seed import seed; seed({profile.entities})", seeding, work)
    service = Service("main:app", env, work, f"service-{backend}")
    ready_s = service.wait_ready()
    ready_at = time.perf_counter()
    response = httpx.get(f"{service.url}/api/v1/get/item/bench-1/user_features", timeout=10)
    assert response.status_code == 200, response.text
    first_read_ms = (time.perf_counter() - ready_at) * 1000
    report.cold_start[backend] = {
        "process_start_to_ready_s": round(ready_s, 3),
        "first_read_after_ready_ms": round(first_read_ms, 3),
        "process_start_to_first_read_s": round(ready_s + first_read_ms / 1000, 3),
    }
    for scenario, (method, path, body) in SCENARIOS.items():
        maximum = run_wrk(service.url, method, path, body, profile, profile.connections, work)
        report.results.append(
            Result(
                scenario,
                backend,
                "max",
                concurrency=profile.connections,
                ratio_to_bare=round(maximum["rps"] / bare_rps, 3),
                **maximum,
            )
        )
        rate = maximum["rps"] / 2
        paced = run_hey(service.url, method, path, body, rate, profile, work)
        report.results.append(Result(scenario, backend, "rate", concurrency=0, target_rps=round(rate, 1), **paced))
    return service


def dynamodb_added_latency(service: Service, env: dict[str, str], profile: Profile, work: Path) -> dict:
    """Our read's p50 over HTTP (one connection, one at a time) minus a raw boto3 GetItem loop's p50."""
    code = f"from bench.seed import raw_get_item_p50; print(raw_get_item_p50({profile.sequential_requests}, {profile.entities}))"
    raw = float(in_child(code, env, work).strip().splitlines()[-1])
    path = SCENARIOS["read_single"][1]
    ours = run_wrk(service.url, "GET", path, None, profile, connections=1, work=work)["p50_ms"]
    return {
        "raw_boto3_get_item_p50_ms": round(raw, 3),
        "service_read_p50_ms": round(ours, 3),
        "added_p50_ms": round(ours - raw, 3),
    }


def evaluate_targets(report: Report) -> list[dict]:
    """The issue's targets, as ratios and bounds from this one run."""
    by_key = {(r.scenario, r.backend, r.mode): r for r in report.results}
    targets = []

    def target(name: str, value: float | None, bound: float, higher_is_better: bool) -> None:
        met = value is not None and (value >= bound if higher_is_better else value <= bound)
        targets.append(
            {"target": name, "value": None if value is None else round(value, 3), "bound": bound, "met": met}
        )

    sqlite = "sqlite"
    target("read_single throughput / bare (sqlite)", by_key[("read_single", sqlite, "max")].ratio_to_bare, 0.70, True)
    target("read_single p99 ms at half max rate (sqlite)", by_key[("read_single", sqlite, "rate")].p99_ms, 10.0, False)
    target("read_multi throughput / bare (sqlite)", by_key[("read_multi", sqlite, "max")].ratio_to_bare, 0.50, True)
    target("write_1x20 throughput / bare (sqlite)", by_key[("write_1x20", sqlite, "max")].ratio_to_bare, 0.40, True)
    target("write_1x20 p99 ms at half max rate (sqlite)", by_key[("write_1x20", sqlite, "rate")].p99_ms, 20.0, False)
    for backend, cold in report.cold_start.items():
        target(f"first read ms after ready ({backend})", cold["first_read_after_ready_ms"], 100.0, False)
    if report.dynamodb_added_latency:
        target(
            "DynamoDB added p50 ms over raw boto3 GetItem", report.dynamodb_added_latency["added_p50_ms"], 1.0, False
        )
    return targets


def print_table(report: Report, bare: Result) -> None:
    header = f"{'scenario':<14}{'backend':<10}{'mode':<6}{'rps':>9}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'errors':>8}{'vs bare':>9}"
    print(header)
    print("-" * len(header))
    for r in [bare, *report.results]:
        ratio = f"{r.ratio_to_bare:.2f}" if r.ratio_to_bare is not None else ""
        print(
            f"{r.scenario:<14}{r.backend:<10}{r.mode:<6}{r.rps:>9.0f}{r.p50_ms:>9.2f}{r.p95_ms:>9.2f}{r.p99_ms:>9.2f}{r.errors:>8}{ratio:>9}"
        )
    print()
    for backend, cold in report.cold_start.items():
        print(f"cold start ({backend}): {cold}")
    if report.dynamodb_added_latency:
        print(f"DynamoDB added latency: {report.dynamodb_added_latency}")
    print()
    for t in report.targets:
        print(f"[{'met' if t['met'] else 'MISSED'}] {t['target']}: {t['value']} (bound {t['bound']})")


def draw_chart(report: Report, bare: Result, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [bare, *report.results]
    labels = [f"{r.scenario}\n{r.backend}/{r.mode}" for r in rows]
    positions = range(len(rows))
    width = 0.27
    figure, axis = plt.subplots(figsize=(max(8, len(rows) * 0.9), 5))
    for offset, (name, attribute) in zip(
        (-width, 0, width), (("p50", "p50_ms"), ("p95", "p95_ms"), ("p99", "p99_ms")), strict=True
    ):
        axis.bar([p + offset for p in positions], [getattr(r, attribute) for r in rows], width, label=name)
    axis.set_xticks(list(positions), labels, rotation=60, ha="right", fontsize=7)
    axis.set_ylabel("latency (ms)")
    axis.set_yscale("log")
    axis.set_title("Latency percentiles per scenario (max = fixed concurrency, rate = half of max rps)")
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a few seconds, small data, no targets checked")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--backends", default="sqlite,dynamodb")
    args = parser.parse_args()
    profile = SMOKE if args.smoke else FULL
    for tool in ("wrk", "hey"):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed: run scripts/install_test_servers.sh")
    report = Report(
        machine={"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform()},
        profile=asdict(profile),
    )
    backends = args.backends.split(",")
    args.output.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory() as scratch:
        work = Path(scratch)
        servers = []
        try:
            kafka, bootstrap = start_tansu(work)
            servers.append(kafka)
            common = {"KAFKA_BROKER_URL": bootstrap, "SCHEMA_REGISTRY": "mock://bench", "TOPIC_NAME": "bench-events"}
            bare_service = Service("bench.bare_app:app", {}, work, "bare")
            bare_service.wait_ready("/api/v1/health")
            bare_numbers = run_wrk(
                bare_service.url, "GET", "/bare/{id}/user_features", None, profile, profile.connections, work
            )
            bare_service.stop()
            bare = Result(
                "bare_fastapi", "-", "max", concurrency=profile.connections, ratio_to_bare=1.0, **bare_numbers
            )
            for backend in backends:
                env = {**common, "STORE_BACKEND": backend}
                if backend == "sqlite":
                    env["SQLITE_PATH"] = str(work / "bench.db")
                else:
                    dynamo, endpoint = start_dynoxide(work)
                    servers.append(dynamo)
                    env.update(
                        DYNAMODB_ENDPOINT_URL=endpoint,
                        DYNAMODB_CREATE_TABLES="true",
                        AWS_ACCESS_KEY_ID="bench",
                        AWS_SECRET_ACCESS_KEY="bench",
                        AWS_CONFIG_FILE="/dev/null",
                        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
                    )
                service = measure_backend(backend, env, report, profile, bare.rps, work)
                if backend == "dynamodb":
                    report.dynamodb_added_latency = dynamodb_added_latency(service, env, profile, work)
                service.stop()
        finally:
            for server in servers:
                server.stop()
    if not args.smoke:
        report.targets = evaluate_targets(report)
    print_table(report, bare)
    stem = "smoke" if args.smoke else "latest"
    data = asdict(report) | {"bare": asdict(bare)}
    (args.output / f"{stem}.json").write_text(json.dumps(data, indent=2) + "\n")
    draw_chart(report, bare, args.output / f"{stem}.png")
    print(f"\nresults: {args.output / f'{stem}.json'}, chart: {args.output / f'{stem}.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""Benchmark suite: the service on each backend against a bare FastAPI endpoint, in one run.

    python -m bench.run            # full run (make bench): results in bench/results/
    python -m bench.run --smoke    # a few seconds, backends side by side, no targets checked (make test)

Each server runs as its own process: 1 uvicorn worker pinned to one core with `taskset`, production
logging (JSON lines at INFO). Throughput, latency and the service's CPU time per request come from wrk
at fixed concurrency; tail latency at a constant request rate (70% of the measured maximum) from an
open-loop generator (`bench/openloop.py`), each latency counted from when its request was due. CPU per
request is the figure to compare on a shared machine, where throughput swings between runs. The
DynamoDB backend runs against a local Dynoxide (its CPU is reported separately) and the Kafka relay
against a local Tansu broker, both started here. Each backend's run ends with py-spy profiles of the
service under the `--profile` scenarios.
"""

import argparse
import json
import os
import platform
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from functools import partial
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from bench import auth_cost, file_load, metrics_cost, pauses  # noqa: E402
from bench.cpu import CpuClock, cpu_seconds, per_request_ms, pinned, service_core  # noqa: E402
from bench.load import run_open_loop, run_wrk  # noqa: E402
from bench.profiles import print_summary, record_during, summarise  # noqa: E402
from bench.report import Report, Result, bulk_speedups, cpu_ratios, draw_chart, evaluate_targets, print_report  # noqa: E402
from bench.scenarios import HISTORY_ENV, SCENARIOS, TAIL_LATENCY_BOUNDS_MS, Scenario, bulk_scenario  # noqa: E402
from devservers import free_port, start_dynoxide, start_tansu  # noqa: E402

RESULTS = ROOT / "bench" / "results"
RATE_SHARE = 0.7
"""Tail latency is measured at this share of each scenario's measured maximum throughput: loaded, with
headroom, as a service is run."""


@dataclass
class Profile:
    entities: int
    duration_s: int
    """Each wrk run (whole seconds)."""
    rate_duration_s: float
    """Each constant-rate run."""
    connections: int
    sequential_requests: int
    idle_s: float
    """How long the service's idle CPU is measured before the load starts."""
    relay_timeout_s: float
    """How long the relay gets to publish a write run's events before the next run starts."""
    relay_quiet_s: float
    """A relay that published nothing for this long is done (a write older than the stored data leaves no
    event): longer than its longest pause between two deliveries while it drains."""
    bulk_divisor: int
    """A bulk write scenario's entities per request are divided by this (the smoke run's requests are
    small, so one ends within its runs and names no more entities than it seeded)."""
    metrics_rounds: int
    """Rounds of the metrics' cost comparison: each loads every exporter variant once."""
    loader_entities: tuple[int, int]
    """The Parquet files `feature-store load` writes into the embedded store: its memory at both sizes."""


FULL = Profile(
    entities=10_000,
    duration_s=10,
    rate_duration_s=10,
    connections=4,
    sequential_requests=2000,
    idle_s=3,
    relay_timeout_s=120,
    relay_quiet_s=1.5,
    bulk_divisor=1,
    metrics_rounds=3,
    loader_entities=(200_000, 2_000_000),
)
SMOKE = Profile(
    entities=100,
    duration_s=1,
    rate_duration_s=0.5,
    connections=4,
    sequential_requests=50,
    idle_s=0.5,
    relay_timeout_s=20,
    relay_quiet_s=0.5,
    bulk_divisor=25,
    metrics_rounds=1,
    loader_entities=(200, 2_000),
)


def wait_until(check: Callable[[], bool], timeout: float) -> None:
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


SERVICE_APP = "main:app"
SERVICE_ENV = {"ENVIRONMENT": "development", "LOG_FORMAT": "json", "LOG_LEVEL": "INFO", "PYTHONPATH": str(ROOT)}
"""Production logging (JSON lines at INFO). Processes run in a scratch directory, so no `.env*` file
of the repository applies: the environment given here is the whole configuration."""


class Service:
    """One uvicorn process, 1 worker, on one core when `core` is given. The service runs as deployed,
    `python -m serve` (its connection handling included); the bare endpoint on plain uvicorn."""

    def __init__(self, app: str, env: dict[str, str], work: Path, name: str, core: int | None) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (work / f"{name}.log").open("wb")
        self.started = time.perf_counter()
        if app == SERVICE_APP:
            command = [sys.executable, str(ROOT / "serve.py")]
            env = {"HOST": "127.0.0.1", "PORT": str(self.port), "WEB_CONCURRENCY": "1", **env}
        else:
            command = [sys.executable, "-m", "uvicorn", app, "--app-dir", str(ROOT)]
            command += ["--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"]
        self.process = subprocess.Popen(
            pinned(command, core),
            cwd=work,
            env={**os.environ, **SERVICE_ENV, **env},
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )
        self.pid = self.process.pid

    def wait_ready(self, path: str = "/api/v1/ready") -> float:
        wait_until(lambda: httpx.get(self.url + path, timeout=1).status_code == 200, timeout=30)
        return time.perf_counter() - self.started

    def delivered(self) -> int:
        """Events the relay has handed to Kafka since start-up (from `/ready`)."""
        return httpx.get(self.url + "/api/v1/ready", timeout=5).json()["checks"]["events"]["delivered"]

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(timeout=20)
        except subprocess.TimeoutExpired:
            self.process.kill()
        self.log.close()


def in_child(code: str, env: dict[str, str], work: Path) -> str:
    """Run bench code in a child process configured like the service; return what it printed."""
    completed = subprocess.run(
        [sys.executable, "-c", code], cwd=work, env={**os.environ, **SERVICE_ENV, **env}, capture_output=True, text=True
    )
    if completed.returncode != 0:
        raise RuntimeError(f"bench child failed:\n{completed.stderr[-3000:]}")
    return completed.stdout


def at_full_load(
    url: str, scenario: Scenario, profile: Profile, work: Path, authorization: str = ""
) -> Callable[[], dict]:
    """wrk at the profile's connections: the load under which CPU per request is measured."""
    return partial(
        run_wrk,
        url,
        scenario.method,
        scenario.path,
        scenario.body,
        profile.entities,
        profile.duration_s,
        profile.connections,
        work,
        authorization=authorization,
        idempotency_keys=scenario.idempotency_keys,
    )


def at_rate(url: str, scenario: Scenario, rate: float, profile: Profile, work: Path) -> Callable[[], dict]:
    """The open-loop generator at a constant `rate`: the load under which tail latency is measured."""
    return partial(
        run_open_loop,
        url,
        scenario.method,
        scenario.path,
        scenario.body,
        profile.entities,
        rate,
        profile.rate_duration_s,
        work,
    )


def wait_relayed(service: Service, expected: int, timeout: float, quiet_s: float) -> bool:
    """Wait until the relay has published `expected` events since start-up, or has published nothing for
    `quiet_s`: a write older than the stored data leaves no event, so `expected` is an upper bound.
    False when it was still publishing at the timeout."""
    deadline = time.monotonic() + timeout
    delivered, changed_at = service.delivered(), time.monotonic()
    while delivered < expected and time.monotonic() - changed_at < quiet_s:
        if time.monotonic() > deadline:
            return False
        time.sleep(0.1)
        now_delivered = service.delivered()
        if now_delivered != delivered:
            delivered, changed_at = now_delivered, time.monotonic()
    return True


def measured(
    service: Service, scenario: Scenario, load: Callable[[], dict], store_pid: int | None, profile: Profile
) -> dict:
    """Run `load` and add the service's (and the store server's) CPU time per request served, over the run
    and until the requests still in flight at its end have finished. For writes, wait until the relay
    has published the run's events, so they do not load the next measurement."""
    pids = {"service": service.pid} | ({"store": store_pid} if store_pid else {})
    delivered_before = service.delivered() if scenario.events else 0
    clock = CpuClock(pids)
    numbers = load()
    time.sleep(min(1.5 * numbers.pop("settle_s") + 0.05, 10))
    used = clock.elapsed()
    requests = numbers["requests"]
    numbers["cpu_ms_per_request"] = per_request_ms(used["service"], requests)
    numbers["cpu_system_share"] = clock.system_share("service")
    if store_pid:
        numbers["store_cpu_ms_per_request"] = per_request_ms(used["store"], requests)
    if scenario.events:
        expected = delivered_before + scenario.events * requests
        if not wait_relayed(service, expected, profile.relay_timeout_s, profile.relay_quiet_s):
            print(f"warning: the relay had not published {expected} events in {profile.relay_timeout_s} s")
        numbers["cpu_ms_per_request_with_relay"] = per_request_ms(clock.elapsed()["service"], requests)
    return numbers


def measure_backend(
    backend: str,
    env: dict[str, str],
    report: Report,
    profile: Profile,
    bare_rps: float,
    work: Path,
    core: int | None,
    store_pid: int | None,
    scenarios: list[str],
) -> Service:
    """`scenarios`: the ones to run; empty: all."""
    seeding = {**env, "SQLITE_SYNCHRONOUS": "OFF"} if backend == "sqlite" else env
    in_child(f"from bench.seed import seed; seed({profile.entities})", seeding, work)
    service = Service(SERVICE_APP, env, work, f"service-{backend}", core)
    # Made before the clock starts: a new httpx client loads its TLS settings, ~20 ms of the
    # client's own, which the first read used to be charged with.
    with httpx.Client(timeout=10) as client:
        ready_s = service.wait_ready()
        ready_at = time.perf_counter()
        response = client.get(f"{service.url}/api/v1/get/item/bench-1/user_features")
        first_read_ms = (time.perf_counter() - ready_at) * 1000
    assert response.status_code == 200, response.text
    report.cold_start[backend] = {
        "process_start_to_ready_s": round(ready_s, 3),
        "first_read_after_ready_ms": round(first_read_ms, 3),
        "process_start_to_first_read_s": round(ready_s + first_read_ms / 1000, 3),
    }
    idle_from = cpu_seconds(service.pid)
    time.sleep(profile.idle_s)
    report.idle_cpu_percent[backend] = round(100 * (cpu_seconds(service.pid) - idle_from) / profile.idle_s, 2)
    for name, scenario in SCENARIOS.items():
        if scenarios and name not in scenarios:
            continue
        if scenario.entities > 1:
            scenario = bulk_scenario(scenario.entities // profile.bulk_divisor)
        maximum = measured(service, scenario, at_full_load(service.url, scenario, profile, work), store_pid, profile)
        ratio = round(maximum["rps"] / bare_rps, 3)
        report.results.append(
            Result(
                name,
                backend,
                "max",
                concurrency=profile.connections,
                ratio_to_bare=ratio,
                entities=scenario.entities,
                **maximum,
            )
        )
        if scenario.idempotency_keys:
            continue  # the generator repeats one request: under one key, all but the first would be replays
        rate = max(maximum["rps"] * RATE_SHARE, 2 / profile.rate_duration_s)  # a few requests, however slow
        paced = measured(service, scenario, at_rate(service.url, scenario, rate, profile, work), store_pid, profile)
        report.results.append(
            Result(name, backend, "rate", concurrency=0, target_rps=round(rate, 1), entities=scenario.entities, **paced)
        )
    return service


def measure_tail_pauses(
    env: dict[str, str], report: Report, profile: Profile, work: Path, core: int | None
) -> list[dict]:
    """Each scenario with a tail-latency target, measured on the embedded store, run again at the same rate
    against a service exporting Prometheus metrics: its p99 beside the loop lags and collections meanwhile."""
    maxima = {r.scenario: r.rps for r in report.results if r.backend == "sqlite" and r.mode == "max"}
    chosen = [name for name in TAIL_LATENCY_BOUNDS_MS if name in maxima]
    if not chosen:
        return []
    service = Service(SERVICE_APP, {**env, "METRICS_EXPORTER": "prometheus"}, work, "service-pauses", core)
    service.wait_ready()
    rows = []
    try:
        for name in chosen:
            scenario, rate = SCENARIOS[name], maxima[name] * RATE_SHARE
            before, machine_before = pauses.scrape(f"{service.url}/metrics"), pauses.machine(service.pid, core)
            paced = measured(service, scenario, at_rate(service.url, scenario, rate, profile, work), None, profile)
            machine_after = pauses.machine(service.pid, core)
            explained = pauses.explain(before, pauses.scrape(f"{service.url}/metrics"))
            taken = {key: round(machine_after[key] - machine_before[key], 1) for key in machine_before}
            rows.append({"scenario": name, "p99_ms": paced["p99_ms"], "p999_ms": paced["p999_ms"]} | explained | taken)
    finally:
        service.stop()
    return rows


def measure_metrics_cost(env: dict[str, str], profile: Profile, work: Path, core: int | None) -> dict:
    """The single-category read's CPU per request with metrics off, StatsD and Prometheus, side by side."""
    scenario = SCENARIOS["read_single"]

    def start(name: str, variant: dict[str, str]) -> Service:
        service = Service(SERVICE_APP, {**env, **variant}, work, f"service-metrics-{name}", core)
        service.wait_ready()
        return service

    def cpu_ms_per_request(service: Service) -> float | None:
        load = at_full_load(service.url, scenario, profile, work)
        return measured(service, scenario, load, None, profile)["cpu_ms_per_request"]

    return metrics_cost.compare(start, cpu_ms_per_request, profile.metrics_rounds)


def measure_auth_cost(env: dict[str, str], profile: Profile, work: Path, core: int | None) -> dict:
    """The single-category read's CPU per request with an API key and with a JWT, side by side."""
    scenario = SCENARIOS["read_single"]

    def start(name: str, variant: dict[str, str]) -> Service:
        service = Service(SERVICE_APP, {**env, **variant}, work, f"service-auth-{name}", core)
        service.wait_ready()
        return service

    def cpu_ms_per_request(service: Service, authorization: str) -> float | None:
        load = at_full_load(service.url, scenario, profile, work, authorization)
        numbers = measured(service, scenario, load, None, profile)
        if numbers["errors"]:
            raise RuntimeError(f"{numbers['errors']} reads failed: the caller was refused")
        return numbers["cpu_ms_per_request"]

    return auth_cost.compare(start, cpu_ms_per_request, profile.metrics_rounds, work)


def measure_loader(env: dict[str, str], profile: Profile, work: Path, core: int | None) -> dict:
    """`feature-store load` of generated Parquet files, each into a fresh embedded store."""

    def start(name: str) -> tuple[str, Callable[[], None]]:
        service = Service(SERVICE_APP, {**env, "SQLITE_PATH": str(work / f"{name}.db")}, work, name, core)
        service.wait_ready()
        return service.url, service.stop

    return file_load.measure(start, list(profile.loader_entities), work)


def dynamodb_added_latency(service: Service, env: dict[str, str], profile: Profile, work: Path) -> dict:
    """Our read's p50 over HTTP (one connection, one at a time) minus a raw boto3 GetItem loop's p50."""
    code = f"from bench.seed import raw_get_item_p50; print(raw_get_item_p50({profile.sequential_requests}, {profile.entities}))"
    raw = float(in_child(code, env, work).strip().splitlines()[-1])
    path = SCENARIOS["read_single"].path
    ours = run_wrk(service.url, "GET", path, None, profile.entities, profile.duration_s, 1, work)["p50_ms"]
    return {
        "raw_boto3_get_item_p50_ms": round(raw, 3),
        "service_read_p50_ms": round(ours, 3),
        "added_p50_ms": round(ours - raw, 3),
    }


def record_profiles(
    service: Service, backend: str, names: list[str], report: Report, profile: Profile, output: Path, work: Path
) -> None:
    """A py-spy profile of the service per scenario, under the same load as its measurement."""
    for name in names:
        scenario = SCENARIOS[name]
        path = output / f"profile-{backend}-{name}.txt"
        clock = CpuClock({"service": service.pid})
        record_during(service.pid, profile.duration_s, path, at_full_load(service.url, scenario, profile, work))
        cpu_percent = round(100 * clock.elapsed()["service"] / profile.duration_s, 1)
        report.profiles[f"{backend}/{name}"] = summarise(path) | {"service_cpu_percent": cpu_percent}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--smoke", action="store_true", help="a few seconds, small data, no targets checked")
    parser.add_argument("--output", type=Path, default=RESULTS)
    parser.add_argument("--backends", default="sqlite,dynamodb")
    parser.add_argument("--scenarios", default="", help="scenarios to run, comma-separated (default: all)")
    parser.add_argument(
        "--profile",
        default=None,
        help="scenarios to profile with py-spy on each backend, comma-separated (full run: read_single,read_batch_50; "
        "smoke: none; '' for none)",
    )
    args = parser.parse_args()
    profile = SMOKE if args.smoke else FULL
    profiled = [name for name in (args.profile or "").split(",") if name]
    if args.profile is None and not args.smoke:
        profiled = ["read_single", "read_batch_50"]
    chosen = [name for name in args.scenarios.split(",") if name]
    unknown = set(profiled) - set(SCENARIOS) | set(chosen) - set(SCENARIOS)
    if unknown:
        raise SystemExit(f"unknown scenarios to profile: {sorted(unknown)}")
    for tool in ("wrk",):
        if shutil.which(tool) is None:
            raise SystemExit(f"{tool} is not installed: run scripts/install_test_servers.sh")
    core = service_core()
    report = Report(
        machine={
            "cpus": os.cpu_count(),
            "service_pinned_to_core": core,
            "python": platform.python_version(),
            "platform": platform.platform(),
        },
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
            common = {
                "KAFKA_BROKER_URL": bootstrap,
                "SCHEMA_REGISTRY": "mock://bench",
                "TOPIC_NAME": "bench-events",
                **HISTORY_ENV,
            }
            bare_service = Service("bench.bare_app:app", {}, work, "bare", core)
            bare_service.wait_ready("/api/v1/health")
            bare_scenario = Scenario("GET", "/bare/{id}/user_features")
            bare_load = at_full_load(bare_service.url, bare_scenario, profile, work)
            bare_numbers = measured(bare_service, bare_scenario, bare_load, None, profile)
            # The tail the machine and the framework give a request that does nothing, under the same
            # constant-rate load as the scenarios: the floor under their p99s.
            bare_rate = bare_numbers["rps"] * RATE_SHARE
            bare_paced = measured(
                bare_service,
                bare_scenario,
                at_rate(bare_service.url, bare_scenario, bare_rate, profile, work),
                None,
                profile,
            )
            bare_service.stop()
            bare = Result(
                "bare_fastapi", "-", "max", concurrency=profile.connections, ratio_to_bare=1.0, **bare_numbers
            )
            bare_at_rate = Result(
                "bare_fastapi", "-", "rate", concurrency=0, target_rps=round(bare_rate, 1), **bare_paced
            )

            def run_backend(backend: str) -> None:
                directory = work / backend
                directory.mkdir()
                env = {**common, "STORE_BACKEND": backend}
                store_pid = None
                if backend == "sqlite":
                    env["SQLITE_PATH"] = str(directory / "bench.db")
                else:
                    dynamo, endpoint = start_dynoxide(directory)
                    servers.append(dynamo)
                    store_pid = dynamo.process.pid
                    env.update(
                        DYNAMODB_ENDPOINT_URL=endpoint,
                        DYNAMODB_CREATE_TABLES="true",
                        AWS_ACCESS_KEY_ID="bench",
                        AWS_SECRET_ACCESS_KEY="bench",
                        AWS_CONFIG_FILE="/dev/null",
                        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
                    )
                service = measure_backend(backend, env, report, profile, bare.rps, directory, core, store_pid, chosen)
                if backend == "dynamodb":
                    report.dynamodb_added_latency = dynamodb_added_latency(service, env, profile, directory)
                record_profiles(service, backend, profiled, report, profile, args.output, directory)
                service.stop()

            if args.smoke:
                # The smoke run's figures mean nothing (they only prove the harness runs): the backends
                # are measured side by side, in half the time; the report keeps the sequential order.
                with ThreadPoolExecutor(len(backends)) as pool:
                    list(pool.map(run_backend, backends))
                order = {name: index for index, name in enumerate(SCENARIOS)}
                report.results.sort(key=lambda r: (backends.index(r.backend), order[r.scenario], r.mode != "max"))
            else:
                for backend in backends:
                    run_backend(backend)
            if "sqlite" in backends:
                # After the backends, alone on the service's core: more services of the same seeded store.
                directory = work / "sqlite"
                env = {**common, "STORE_BACKEND": "sqlite", "SQLITE_PATH": str(directory / "bench.db")}
                report.tail_pauses = measure_tail_pauses(env, report, profile, directory, core)
            if "sqlite" in backends and (not chosen or "read_single" in chosen):
                report.metrics_cost = measure_metrics_cost(env, profile, directory, core)
                report.auth_cost = measure_auth_cost(env, profile, directory, core)
            if "sqlite" in backends and not chosen:
                directory = work / "loader"
                directory.mkdir()
                report.loader = measure_loader({**common, "STORE_BACKEND": "sqlite"}, profile, directory, core)
        finally:
            for server in servers:
                server.stop()
    report.cpu_ratios = cpu_ratios(report.results)
    report.bulk_writes = bulk_speedups(report.results)
    if report.loader:
        bulk = next(
            (row for row in report.bulk_writes if row["scenario"] == "bulk_500x5" and row["backend"] == "sqlite"), None
        )
        report.loader |= file_load.compare(report.loader, bulk["bulk_entities_per_s"] if bulk else None)
    if not args.smoke and not chosen:
        report.targets = evaluate_targets(report)
    print_report(report, bare, bare_at_rate)
    for title, summary in report.profiles.items():
        print_summary(f"py-spy, {title}", summary)
    stem = "smoke" if args.smoke else "latest"
    data = asdict(report) | {"bare": asdict(bare), "bare_rate": asdict(bare_at_rate)}
    (args.output / f"{stem}.json").write_text(json.dumps(data, indent=2) + "\n")
    draw_chart(report, bare, args.output / f"{stem}.png")
    print(f"\nresults: {args.output / f'{stem}.json'}, chart: {args.output / f'{stem}.png'}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

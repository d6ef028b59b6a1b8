"""What a run measured: the records, the targets checked against them, the printed tables and the chart."""

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from bench import auth_cost, file_load, metrics_cost, pauses
from bench.scenarios import (
    BULK_SPEEDUP_BOUND,
    BULK_VERSUS,
    CPU_RATIO_BOUNDS,
    HISTORY_CPU_BOUND,
    HISTORY_VERSUS,
    KEYED_CPU_BOUND,
    KEYED_VERSUS,
    SCENARIOS,
    TAIL_LATENCY_BOUNDS_MS,
)


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
    requests: int = 0
    """Requests the service served in the run: those answered, and those still in flight at its end."""
    cpu_ms_per_request: float | None = None
    """The service process's CPU time (user + system, all threads) over the run, per request answered."""
    cpu_system_share: float | None = None
    """The share of that CPU time the kernel spent for the service (sockets, waking threads)."""
    store_cpu_ms_per_request: float | None = None
    """The local store server's (Dynoxide's) CPU time over the same run, per request; None in-process."""
    cpu_ms_per_request_with_relay: float | None = None
    """Writes: the service's CPU from the start of the run until the relay had published every event
    the run's requests wrote, per request."""
    target_rps: float | None = None
    p999_ms: float | None = None
    """`rate` runs: the 99.9th percentile."""
    statuses: dict[str, int] | None = None
    """`rate` runs: answers by status ("no answer": the connection ended first; "unanswered": still none at
    the end). At a constant rate a stalled service refuses the excess (503 `overloaded`) instead of queueing it."""
    send_lag_p99_ms: float | None = None
    """`rate` runs: how late the generator sent its requests (p99): its own share of the latencies."""
    ratio_to_bare: float | None = None
    entities: int = 1
    """Entities each request wrote or read."""


@dataclass
class Report:
    machine: dict
    profile: dict
    results: list[Result] = field(default_factory=list)
    cold_start: dict = field(default_factory=dict)
    idle_cpu_percent: dict = field(default_factory=dict)
    """The service's CPU while nothing loads it (relay polls, producer), in % of one core."""
    dynamodb_added_latency: dict = field(default_factory=dict)
    cpu_ratios: list[dict] = field(default_factory=list)
    bulk_writes: list[dict] = field(default_factory=list)
    """Per backend: entities written a second and CPU per entity, bulk beside single-entity writes."""
    targets: list[dict] = field(default_factory=list)
    profiles: dict = field(default_factory=dict)
    metrics_cost: dict = field(default_factory=dict)
    """The single-category read's CPU per request with each metric exporter and with metrics off."""
    auth_cost: dict = field(default_factory=dict)
    """The single-category read's CPU per request with an API key and with a JWT."""
    loader: dict = field(default_factory=dict)
    """`feature-store load` of a Parquet file into the embedded store, beside the bulk endpoint's figure."""
    tail_pauses: list[dict] = field(default_factory=list)
    """The scenarios with a tail target on the embedded store, again at 70%: p99 beside the service's loop lag
    and garbage collections over the run (`bench/pauses.py`)."""


def cpu_ratios(results: list[Result]) -> list[dict[str, Any]]:
    """Per scenario: the service's CPU per request on DynamoDB over the embedded store's, at full load,
    against the target where there is one. A missed target is reported, never raised."""
    by_key = {(r.scenario, r.backend): r for r in results if r.mode == "max"}
    rows = []
    for scenario in SCENARIOS:
        sqlite, dynamodb = by_key.get((scenario, "sqlite")), by_key.get((scenario, "dynamodb"))
        if sqlite is None or dynamodb is None or not sqlite.cpu_ms_per_request or dynamodb.cpu_ms_per_request is None:
            continue
        ratio = round(dynamodb.cpu_ms_per_request / sqlite.cpu_ms_per_request, 2)
        bound = CPU_RATIO_BOUNDS.get(scenario)
        rows.append(
            {
                "scenario": scenario,
                "sqlite_cpu_ms": sqlite.cpu_ms_per_request,
                "dynamodb_cpu_ms": dynamodb.cpu_ms_per_request,
                "dynoxide_cpu_ms": dynamodb.store_cpu_ms_per_request,
                "ratio": ratio,
                "bound": bound,
                "met": None if bound is None else ratio <= bound,
            }
        )
    return rows


def _per_entity(cpu_ms: float | None, entities: int) -> float | None:
    return None if cpu_ms is None else round(cpu_ms / entities, 4)


def bulk_speedups(results: list[Result]) -> list[dict[str, Any]]:
    """Per bulk scenario and backend, at full load: entities written a second and the service's CPU per
    entity, beside the single-entity writes of the same entities."""
    by_key = {(r.scenario, r.backend): r for r in results if r.mode == "max"}
    rows = []
    for bulk_name, single_name in BULK_VERSUS.items():
        for backend in ("sqlite", "dynamodb"):
            bulk, single = by_key.get((bulk_name, backend)), by_key.get((single_name, backend))
            if bulk is None or single is None or not single.rps:
                continue
            entities = bulk.entities
            speedup = round(bulk.rps * entities / single.rps, 2)
            rows.append(
                {
                    "scenario": bulk_name,
                    "backend": backend,
                    "versus": single_name,
                    "entities_per_request": entities,
                    "single_entities_per_s": round(single.rps, 1),
                    "bulk_entities_per_s": round(bulk.rps * entities, 1),
                    "speedup": speedup,
                    "single_cpu_ms_per_entity": _per_entity(single.cpu_ms_per_request, 1),
                    "bulk_cpu_ms_per_entity": _per_entity(bulk.cpu_ms_per_request, entities),
                    "single_cpu_ms_per_entity_with_relay": _per_entity(single.cpu_ms_per_request_with_relay, 1),
                    "bulk_cpu_ms_per_entity_with_relay": _per_entity(bulk.cpu_ms_per_request_with_relay, entities),
                    "bound": BULK_SPEEDUP_BOUND,
                    "met": speedup >= BULK_SPEEDUP_BOUND,
                }
            )
    return rows


def evaluate_targets(report: Report) -> list[dict]:
    """The targets, as ratios and bounds from this one run."""
    by_key = {(r.scenario, r.backend, r.mode): r for r in report.results}
    targets = []

    def target(name: str, value: float | None, bound: float, higher_is_better: bool) -> None:
        met = value is not None and (value >= bound if higher_is_better else value <= bound)
        targets.append(
            {"target": name, "value": None if value is None else round(value, 3), "bound": bound, "met": met}
        )

    for row in report.cpu_ratios:
        if row["bound"] is not None:
            target(f"{row['scenario']} CPU/request, DynamoDB / sqlite", row["ratio"], row["bound"], False)
    sqlite = "sqlite"
    target("read_single throughput / bare (sqlite)", by_key[("read_single", sqlite, "max")].ratio_to_bare, 0.70, True)
    for scenario, bound in TAIL_LATENCY_BOUNDS_MS.items():
        target(
            f"{scenario} p99 ms at 70% of max rate (sqlite)", by_key[(scenario, sqlite, "rate")].p99_ms, bound, False
        )
    target("read_multi throughput / bare (sqlite)", by_key[("read_multi", sqlite, "max")].ratio_to_bare, 0.50, True)
    target("write_1x20 throughput / bare (sqlite)", by_key[("write_1x20", sqlite, "max")].ratio_to_bare, 0.40, True)
    for keyed, plain in KEYED_VERSUS.items():
        for backend in ("sqlite", "dynamodb"):
            with_key, without = by_key.get((keyed, backend, "max")), by_key.get((plain, backend, "max"))
            if with_key is None or without is None or not without.cpu_ms_per_request:
                continue
            ratio = (
                None
                if with_key.cpu_ms_per_request is None
                else with_key.cpu_ms_per_request / without.cpu_ms_per_request
            )
            target(f"{plain} CPU/request, with Idempotency-Key / without ({backend})", ratio, KEYED_CPU_BOUND, False)
    for with_history, plain in HISTORY_VERSUS.items():
        for backend in ("sqlite", "dynamodb"):
            kept, without = by_key.get((with_history, backend, "max")), by_key.get((plain, backend, "max"))
            if kept is None or without is None or not without.cpu_ms_per_request or kept.cpu_ms_per_request is None:
                continue
            ratio = kept.cpu_ms_per_request / without.cpu_ms_per_request
            target(f"{plain} CPU/request, with history / without ({backend})", ratio, HISTORY_CPU_BOUND, False)
    for row in report.bulk_writes:
        target(f"{row['scenario']} entities/s / {row['versus']} ({row['backend']})", row["speedup"], row["bound"], True)
    for backend, cold in report.cold_start.items():
        target(f"first read ms after ready ({backend})", cold["first_read_after_ready_ms"], 100.0, False)
    if report.dynamodb_added_latency:
        target(
            "DynamoDB added p50 ms over raw boto3 GetItem", report.dynamodb_added_latency["added_p50_ms"], 1.0, False
        )
    if report.metrics_cost:
        prometheus = report.metrics_cost["ratio_to_off"].get("prometheus")
        target(
            "read_single CPU/request, prometheus / metrics off (sqlite)",
            prometheus,
            metrics_cost.PROMETHEUS_BOUND,
            False,
        )
    if report.auth_cost:
        target(
            "read_single CPU/request, JWT / API key (sqlite)",
            report.auth_cost["jwt_to_api_key"],
            auth_cost.JWT_BOUND,
            False,
        )
    if report.loader.get("throughput_ratio") is not None:
        target(
            "loader entities/s / bulk_500x5 entities/s (sqlite)",
            report.loader["throughput_ratio"],
            file_load.THROUGHPUT_BOUND,
            True,
        )
    if report.loader:
        target("loader peak RSS, larger file / smaller", report.loader["rss_growth"], file_load.RSS_GROWTH_BOUND, False)
        target("loader peak RSS MB", report.loader["peak_rss_mb"], file_load.RSS_BOUND_MB, False)
    return targets


def _number(value: float | None, digits: int = 3) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def _percent(share: float | None) -> str:
    return "" if share is None else f"{100 * share:.0f}%"


def busy_share(result: Result) -> float | None:
    """The share of one core the service kept busy over a run: at a constant rate, how loaded the queue in
    front of it was (a request arriving alone costs more CPU than one among many at full load, so 70% of the
    maximum rate keeps the core more than 70% busy, and the tail grows with it)."""
    if result.cpu_ms_per_request is None:
        return None
    return result.cpu_ms_per_request * result.rps / 1000


def print_report(report: Report, bare: Result, bare_at_rate: Result) -> None:
    columns = (
        f"{'scenario':<20}{'backend':<10}{'mode':<6}{'rps':>8}{'p50 ms':>9}{'p95 ms':>9}{'p99 ms':>9}{'p99.9 ms':>10}"
        f"{'errors':>8}{'vs bare':>9}{'requests':>10}{'cpu ms/req':>12}{'sys':>6}{'busy':>6}{'+relay':>9}"
        f"{'store ms/req':>14}"
    )
    print(columns)
    print("-" * len(columns))
    for r in [bare, bare_at_rate, *report.results]:
        print(
            f"{r.scenario:<20}{r.backend:<10}{r.mode:<6}{r.rps:>8.0f}{r.p50_ms:>9.2f}{r.p95_ms:>9.2f}{r.p99_ms:>9.2f}"
            f"{_number(r.p999_ms, 2):>10}{r.errors:>8}{_number(r.ratio_to_bare, 2):>9}{r.requests:>10}{_number(r.cpu_ms_per_request):>12}"
            f"{_percent(r.cpu_system_share):>6}{_percent(busy_share(r)):>6}"
            f"{_number(r.cpu_ms_per_request_with_relay):>9}{_number(r.store_cpu_ms_per_request):>14}"
        )
    print(
        "\nmax: wrk at fixed concurrency; rate: a constant request rate (70% of max), each latency counted from"
        "\nwhen its request was due (p99.9 only there);"
        "\ncpu ms/req: the service process's CPU (user + system, all threads) over the run / requests served;"
        "\nsys: the kernel's share of it; busy: the share of its core the service kept busy (cpu ms/req x rps);"
        "\n+relay: writes, until the relay had published the run's events;"
        "\nstore ms/req: Dynoxide's CPU over the run / requests served."
    )
    if report.cpu_ratios:
        print("\nService CPU per request at full load, DynamoDB / embedded store:")
        header = (
            f"{'scenario':<20}{'sqlite ms':>11}{'dynamodb ms':>13}{'dynoxide ms':>13}{'ratio':>8}{'target':>9}  result"
        )
        print(header)
        print("-" * len(header))
        for row in report.cpu_ratios:
            bound = "" if row["bound"] is None else f"<={row['bound']}x"
            verdict = "" if row["met"] is None else ("met" if row["met"] else "not met")
            print(
                f"{row['scenario']:<20}{row['sqlite_cpu_ms']:>11.3f}{row['dynamodb_cpu_ms']:>13.3f}"
                f"{_number(row['dynoxide_cpu_ms']):>13}{row['ratio']:>7.2f}x{bound:>9}  {verdict}"
            )
    if report.bulk_writes:
        print("\nBulk writes at full load, entities written a second and service CPU per entity (+relay):")
        header = (
            f"{'scenario':<14}{'backend':<10}{'single/s':>10}{'bulk/s':>10}{'speedup':>9}"
            f"{'single ms':>11}{'bulk ms':>9}{'+relay':>9}{'+relay':>9}"
        )
        print(header)
        print("-" * len(header))
        for row in report.bulk_writes:
            print(
                f"{row['scenario']:<14}{row['backend']:<10}{row['single_entities_per_s']:>10.0f}"
                f"{row['bulk_entities_per_s']:>10.0f}{row['speedup']:>8.2f}x{_number(row['single_cpu_ms_per_entity']):>11}"
                f"{_number(row['bulk_cpu_ms_per_entity']):>9}{_number(row['single_cpu_ms_per_entity_with_relay']):>9}"
                f"{_number(row['bulk_cpu_ms_per_entity_with_relay']):>9}"
            )
    if report.tail_pauses:
        print(
            "\nThe tail-latency scenarios again at 70% (embedded store, Prometheus on), with the service's own"
            "\nevent-loop lag and garbage collections over the run:"
        )
        for row in report.tail_pauses:
            print(
                f"{row['scenario']:<16}p99 {row['p99_ms']:.2f} ms, p99.9 {row['p999_ms']:.2f} ms; {pauses.summary(row)}"
            )
    if report.metrics_cost:
        metrics_cost.print_table(report.metrics_cost)
    if report.auth_cost:
        auth_cost.print_table(report.auth_cost)
    if report.loader:
        print("\n`feature-store load` of a Parquet file (entities x 5 categories x 20), embedded store:")
        print(
            f"{'entities':>10}{'seconds':>9}{'entities/s':>12}{'CLI CPU ms/entity':>19}{'peak RSS MB':>13}{'failed':>8}"
        )
        for run in report.loader["runs"]:
            print(
                f"{run['entities']:>10}{run['seconds']:>9.1f}{run['entities_per_s']:>12.0f}"
                f"{run['cpu_ms_per_entity']:>19.4f}{run['peak_rss_mb']:>13.1f}{run['failed']:>8}"
            )
        print(
            f"bulk_500x5 endpoint: {report.loader['bulk_entities_per_s']} entities/s; loader / bulk: "
            f"{report.loader['throughput_ratio']}; peak RSS larger / smaller: {report.loader['rss_growth']}"
        )
    print()
    for backend, cold in report.cold_start.items():
        print(f"cold start ({backend}): {cold}")
    for backend, percent in report.idle_cpu_percent.items():
        print(f"idle service CPU ({backend}): {percent}% of one core")
    if report.dynamodb_added_latency:
        print(f"DynamoDB added latency: {report.dynamodb_added_latency}")
    if report.targets:
        print()
    for t in report.targets:
        print(f"[{'met' if t['met'] else 'MISSED'}] {t['target']}: {t['value']} (bound {t['bound']})")


def draw_chart(report: Report, bare: Result, path: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    rows = [bare, *report.results]
    figure, (latency, cpu) = plt.subplots(2, 1, figsize=(max(9, len(rows) * 0.6), 10))
    positions = range(len(rows))
    width = 0.27
    for offset, (name, attribute) in zip(
        (-width, 0, width), (("p50", "p50_ms"), ("p95", "p95_ms"), ("p99", "p99_ms")), strict=True
    ):
        latency.bar([p + offset for p in positions], [getattr(r, attribute) for r in rows], width, label=name)
    latency.set_xticks(list(positions), [f"{r.scenario}\n{r.backend}/{r.mode}" for r in rows], rotation=60, ha="right")
    latency.tick_params(axis="x", labelsize=7)
    latency.set_ylabel("latency (ms)")
    latency.set_yscale("log")
    latency.set_title("Latency percentiles per scenario (max = fixed concurrency, rate = half of max rps)")
    latency.legend()

    full_load = {(r.scenario, r.backend): r for r in report.results if r.mode == "max"}
    scenarios = list(SCENARIOS)
    series = [
        ("service, sqlite", lambda s: full_load.get((s, "sqlite")), "cpu_ms_per_request"),
        ("service, dynamodb", lambda s: full_load.get((s, "dynamodb")), "cpu_ms_per_request"),
        ("dynoxide", lambda s: full_load.get((s, "dynamodb")), "store_cpu_ms_per_request"),
    ]
    for offset, (name, pick, attribute) in zip((-width, 0, width), series, strict=True):
        values = [getattr(pick(s), attribute, None) or 0 for s in scenarios]
        cpu.bar([index + offset for index in range(len(scenarios))], values, width, label=name)
    cpu.set_xticks(range(len(scenarios)), scenarios, fontsize=8)
    cpu.set_ylabel("CPU ms per request")
    cpu.set_yscale("log")
    cpu.set_title(f"CPU per request at full load (bare endpoint: {_number(bare.cpu_ms_per_request)} ms)")
    cpu.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)

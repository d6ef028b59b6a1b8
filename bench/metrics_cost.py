"""What metrics cost: the service's CPU per single-category read with metrics off, with StatsD, and with
Prometheus, measured side by side in one run.

One service per variant, all on the same seeded embedded store, each pinned to the same core and loaded in
turn with the same wrk run; the variants alternate round after round and each keeps its median, so a
neighbour's burst on a shared machine does not land on one variant only. StatsD sends to a local UDP
socket that reads nothing (the kernel still takes every datagram, as it would for a local agent).
"""

import socket
import statistics
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Protocol

PROMETHEUS_BOUND = 1.05
"""Prometheus may add at most 5% to the CPU of a single-category read over metrics off."""


class Stoppable(Protocol):
    def stop(self) -> None: ...


@contextmanager
def statsd_sink() -> Iterator[int]:
    """A UDP port that takes datagrams and never reads them."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
    sock.bind(("127.0.0.1", 0))
    try:
        yield sock.getsockname()[1]
    finally:
        sock.close()


def variants(statsd_port: int) -> dict[str, dict[str, str]]:
    return {
        "off": {"METRICS_EXPORTER": "", "STATSD_HOST": ""},
        "statsd": {"METRICS_EXPORTER": "statsd", "STATSD_HOST": "127.0.0.1", "STATSD_PORT": str(statsd_port)},
        "prometheus": {"METRICS_EXPORTER": "prometheus", "STATSD_HOST": ""},
    }


def compare(
    start: Callable[[str, dict[str, str]], Stoppable],
    cpu_ms_per_request: Callable[[Any], float | None],
    rounds: int,
) -> dict[str, Any]:
    """`start(name, env)` starts the service of a variant and waits until it is ready;
    `cpu_ms_per_request(service)` loads it once and measures."""
    with statsd_sink() as port:
        services = {name: start(name, env) for name, env in variants(port).items()}
        try:
            samples: dict[str, list[float]] = {name: [] for name in services}
            for _ in range(rounds):
                for name, service in services.items():
                    measured = cpu_ms_per_request(service)
                    if measured is not None:
                        samples[name].append(measured)
        finally:
            for service in services.values():
                service.stop()
    medians = {name: round(statistics.median(values), 4) for name, values in samples.items() if values}
    off = medians.get("off")
    ratios = {name: round(value / off, 3) for name, value in medians.items() if off and name != "off"}
    prometheus = ratios.get("prometheus")
    return {
        "scenario": "read_single",
        "backend": "sqlite",
        "cpu_ms_per_request": medians,
        "ratio_to_off": ratios,
        "samples": samples,
        "bound": PROMETHEUS_BOUND,
        "met": None if prometheus is None else prometheus <= PROMETHEUS_BOUND,
    }


def print_table(cost: dict[str, Any]) -> None:
    print("\nMetrics' cost, service CPU per single-category read at full load (embedded store; median of rounds):")
    header = f"{'exporter':<12}{'cpu ms/req':>12}{'vs off':>9}{'target':>9}  result"
    print(header)
    print("-" * len(header))
    for name, value in cost["cpu_ms_per_request"].items():
        ratio = cost["ratio_to_off"].get(name)
        bound, verdict = "", ""
        if name == "prometheus":
            bound = f"<={cost['bound']}x"
            verdict = "" if cost["met"] is None else ("met" if cost["met"] else "not met")
        shown = "" if ratio is None else f"{ratio:.3f}x"
        print(f"{name:<12}{value:>12.4f}{shown:>9}{bound:>9}  {verdict}")

"""What the slow requests of a constant-rate run were doing, from the service's own pause metrics.

The service reports how late its event loop runs (the worst lag of each tenth of a second) and every
garbage collection's pause (`core/pauses.py`). Read from its Prometheus endpoint before and after a run,
their differences tell a tail made inside the process (collections, one callback holding the loop) from
one made outside it (the loop on time while requests waited in the kernel's queues, or for a core the
machine gave to something else).
"""

import os
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

LOOP_LAG = "feature_store_event_loop_lag_seconds"
GC_PAUSE = "feature_store_gc_pause_seconds"
REQUEST_DURATION = "feature_store_http_request_duration_seconds"
LAG_THRESHOLDS_S = (0.001, 0.005, 0.01, 0.05)
"""The loop-lag bounds counted: tenths of a second in which the loop ran later than each."""
DURATION_THRESHOLDS_S = (0.0025, 0.01, 0.05)
"""The request-duration bounds counted: requests the service itself took longer than each to answer (from
its middleware's start to the last byte), against the generator's view of the same requests."""

Samples = dict[tuple[str, tuple[tuple[str, str], ...]], float]
CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def machine(pid: int, core: int | None) -> dict[str, float]:
    """What the machine did to the service: the time the hypervisor took its core away (`steal` of the
    core in /proc/stat, ms) and how often another process took the core from it (its involuntary context
    switches). Differences of two readings are what a run saw."""
    status = Path(f"/proc/{pid}/status").read_text()
    preempted = next(
        int(line.split()[1]) for line in status.splitlines() if line.startswith("nonvoluntary_ctxt_switches")
    )
    name = f"cpu{core}" if core is not None else "cpu"
    line = next(line for line in Path("/proc/stat").read_text().splitlines() if line.split()[0] == name)
    steal_ticks = int(line.split()[8])
    return {"preempted": preempted, "steal_ms": steal_ticks * 1000 / CLOCK_TICKS}


def scrape(url: str) -> Samples:
    return parse(httpx.get(url, timeout=10).text)


def parse(text: str) -> Samples:
    """Every sample of the histograms read here: (sample name, labels) -> value."""
    samples: Samples = {}
    for family in text_string_to_metric_families(text):
        if family.name in (LOOP_LAG, GC_PAUSE, REQUEST_DURATION):
            for sample in family.samples:
                samples[(sample.name, tuple(sorted(sample.labels.items())))] = sample.value
    return samples


def _gained(before: Samples, after: Samples, name: str, **labels: str) -> float:
    """How much a sample grew between two scrapes, summed over every label set holding `labels` (a histogram's
    routes and statuses)."""

    def summed(samples: Samples) -> float:
        return sum(
            value
            for (sample, keys), value in samples.items()
            if sample == name and dict(keys).items() >= labels.items()
        )

    return summed(after) - summed(before)


def _worst_bucket(before: Samples, after: Samples, name: str, **labels: str) -> float | None:
    """The upper bound of the highest bucket that gained an observation; None when none did."""
    bounds = sorted(
        float(dict(key[1])["le"])
        for key in after
        if key[0] == f"{name}_bucket" and dict(key[1]).items() >= labels.items() and dict(key[1])["le"] != "+Inf"
    )
    worst = None
    below = 0.0
    for bound in bounds:
        count = _gained(before, after, f"{name}_bucket", **labels, le=_label(bound))
        if count > below:
            worst = bound
        below = count
    total = _gained(before, after, f"{name}_count", **labels)
    return float("inf") if total > below else worst


def _label(bound: float) -> str:
    """A bucket bound as the exporter writes its `le` label."""
    return repr(float(bound))


def explain(before: Samples, after: Samples) -> dict[str, Any]:
    """What happened between two scrapes: the loop's lag (tenths of a second sampled, how many ran later than
    each of `LAG_THRESHOLDS_S`, the worst bucket) and the collections by generation (count, total pause)."""
    sampled = _gained(before, after, f"{LOOP_LAG}_count")
    late = {
        f"over_{bound * 1000:g}ms": round(sampled - _gained(before, after, f"{LOOP_LAG}_bucket", le=_label(bound)))
        for bound in LAG_THRESHOLDS_S
    }
    generations = sorted({dict(labels)["generation"] for name, labels in after if name == f"{GC_PAUSE}_count"}, key=int)
    collections = {}
    for generation in generations:
        count = _gained(before, after, f"{GC_PAUSE}_count", generation=generation)
        if count:
            collections[generation] = {
                "count": round(count),
                "pause_ms": round(1000 * _gained(before, after, f"{GC_PAUSE}_sum", generation=generation), 3),
                "longest_ms_at_most": _ms(_worst_bucket(before, after, GC_PAUSE, generation=generation)),
            }
    served = _gained(before, after, f"{REQUEST_DURATION}_count")
    slow = {
        f"over_{bound * 1000:g}ms": round(
            served - _gained(before, after, f"{REQUEST_DURATION}_bucket", le=_label(bound))
        )
        for bound in DURATION_THRESHOLDS_S
    }
    return {
        "served": round(served),
        "served_slower": slow,
        "loop_lag_samples": round(sampled),
        "loop_late": late,
        "loop_lag_worst_ms_at_most": _ms(_worst_bucket(before, after, LOOP_LAG)),
        "gc": collections,
    }


def _ms(seconds: float | None) -> float | None:
    return None if seconds is None else round(seconds * 1000, 3)


def summary(pauses: dict[str, Any]) -> str:
    """One line for the report."""
    taken = ""
    if "preempted" in pauses:
        taken = f"; core stolen by the host {pauses['steal_ms']:.0f} ms, service preempted {pauses['preempted']} times"
    late = ", ".join(f"{count} {name.removeprefix('over_')}" for name, count in pauses["loop_late"].items())
    gc = "; ".join(
        f"gen{generation} {row['count']}x {row['pause_ms']:.1f} ms (longest <= {row['longest_ms_at_most']} ms)"
        for generation, row in pauses["gc"].items()
    )
    slower = ", ".join(f"{count} {name.removeprefix('over_')}" for name, count in pauses["served_slower"].items())
    return (
        f"of {pauses['served']} requests the service took over {slower}; "
        f"loop late in {pauses['loop_lag_samples']} tenths of a second: over {late}; worst <= "
        f"{pauses['loop_lag_worst_ms_at_most']} ms; collections: {gc or 'none'}{taken}"
    )

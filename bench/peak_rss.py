"""`python -m bench.peak_rss MODULE ARGS...`: runs MODULE as `python -m MODULE ARGS...` does, and as it
exits writes its peak RSS (`peak_rss_kb N`) as the last line of standard error. The process's own VmHWM:
the ru_maxrss that wait4 reports for a child keeps the high-water mark of the process it was forked from
(Linux carries it across the exec), so the parent's RSS at the fork would be counted as the child's."""

import atexit
import runpy
import sys

PREFIX = "peak_rss_kb"


def report_peak() -> None:
    with open("/proc/self/status", encoding="ascii") as status:
        peak = next(line.split()[1] for line in status if line.startswith("VmHWM:"))
    sys.stderr.write(f"{PREFIX} {peak}\n")


def peak_rss_mb(stderr: str) -> float:
    """The peak RSS that a run's standard error ends with, in MB."""
    name, _, kb = stderr.strip().splitlines()[-1].partition(" ")
    if name != PREFIX:
        raise ValueError(f"no {PREFIX} line at the end of: {stderr[-200:]!r}")
    return int(kb) / 1024


if __name__ == "__main__":
    module = sys.argv[1]
    sys.argv = [module, *sys.argv[2:]]
    atexit.register(report_peak)
    runpy.run_module(module, run_name="__main__", alter_sys=True)

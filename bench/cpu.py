"""CPU time of the processes under test, from the kernel's own accounting of each process.

`/proc/<pid>/stat` holds the user and system time of every thread of a process, live or exited, so a
threadpool's work and a background relay's are counted with the event loop's. Uvicorn with one worker
serves in the process it was started as (more workers would fork children, counted separately);
`taskset` replaces itself with the command, so the pid we start is the pid that serves.
"""

import os
import shutil
from collections.abc import Mapping
from pathlib import Path

TICKS_PER_SECOND = os.sysconf("SC_CLK_TCK")


def cpu_times(pid: int) -> tuple[float, float]:
    """User and system CPU seconds the process has used since it started (all its threads)."""
    # The command name (field 2) may hold spaces; the fields after its closing parenthesis start at 3.
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    utime, stime = int(fields[14 - 3]), int(fields[15 - 3])
    return utime / TICKS_PER_SECOND, stime / TICKS_PER_SECOND


def cpu_seconds(pid: int) -> float:
    return sum(cpu_times(pid))


class CpuClock:
    """CPU seconds each named process has used since the clock was created."""

    def __init__(self, pids: Mapping[str, int]) -> None:
        self.pids = dict(pids)
        self.started = {name: cpu_times(pid) for name, pid in self.pids.items()}

    def _used(self) -> dict[str, tuple[float, float]]:
        used = {}
        for name, pid in self.pids.items():
            (user, system), (user_0, system_0) = cpu_times(pid), self.started[name]
            used[name] = (user - user_0, system - system_0)
        return used

    def elapsed(self) -> dict[str, float]:
        """User plus system seconds."""
        return {name: user + system for name, (user, system) in self._used().items()}

    def system_share(self, name: str) -> float | None:
        """The share of a process's CPU since the start that the kernel spent on its behalf."""
        user, system = self._used()[name]
        return round(system / (user + system), 3) if user + system else None


def per_request_ms(cpu_s: float, requests: int) -> float | None:
    return round(cpu_s * 1000 / requests, 4) if requests else None


def service_core() -> int | None:
    """The core the service is pinned to (the last one this process may use), or None when `taskset`
    is missing. Load generators and local servers stay free to use every core."""
    if shutil.which("taskset") is None:
        return None
    return max(os.sched_getaffinity(0))


def pinned(command: list[str], core: int | None) -> list[str]:
    return command if core is None else ["taskset", "--cpu-list", str(core), *command]

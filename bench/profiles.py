"""py-spy profiles of the service under load, and where their samples go.

    python -m bench.profiles bench/results/profile-dynamodb-read_single.txt   # summarise a raw profile

A profile is py-spy's raw (collapsed stack) output: one line per distinct stack, frames root first as
`function (file:line)`, then the number of samples. It samples the thread holding the GIL (`--gil`),
which runs all the Python code: py-spy's idle detection takes threads blocked in C (pool workers
waiting for work, socket reads, the event loop's poll) for busy ones. It reads the process without
stopping it (`--nonblocking`): stopping it with ptrace lands samples where a syscall returns (waking a
pool thread, writing a response), which put a third of the samples of a single read on those lines.

Each sample is given to the first group found walking up from its leaf frame: a JSON decode inside
botocore's parser counts as response parsing, a botocore call made from our store as botocore, our
own code as ours.
"""

import argparse
import shutil
import subprocess
import sys
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

GROUPS = [
    ("botocore: response parsing", ("botocore/parsers.py",)),
    (
        "botocore: HTTP send/receive (urllib3, http.client)",
        ("urllib3/", "http/client.py", "socket.py", "selectors.py", "botocore/httpsession.py"),
    ),
    ("botocore: request pipeline (serialise, validate, events, sign, retry)", ("botocore/", "boto3/")),
    ("our code", ("components/", "core/", "api/", "middlewares/", "main.py")),
    ("threadpool hand-off (anyio, concurrent.futures)", ("anyio/", "concurrent/futures/", "starlette/concurrency.py")),
    ("FastAPI, Starlette, pydantic", ("fastapi/", "starlette/", "pydantic/", "pydantic_core/")),
    ("uvicorn, asyncio", ("uvicorn/", "h11/", "httptools/", "asyncio/", "uvloop/")),
    ("logging", ("logging/",)),
]
OTHER = "other (stdlib, threads, Kafka producer)"
SAMPLES_PER_SECOND = 100


def _file(frame: str) -> str:
    """`function (file:line)` -> `file`."""
    return frame.rsplit(" (", 1)[-1].rstrip(")").rsplit(":", 1)[0]


def _group(stack: list[str]) -> str:
    for frame in reversed(stack):
        path = _file(frame)
        for name, prefixes in GROUPS:
            if path.startswith(prefixes):
                return name
    return OTHER


def read_raw(path: Path) -> list[tuple[list[str], int]]:
    stacks = []
    for line in path.read_text().splitlines():
        frames, _, count = line.rpartition(" ")
        if frames and count.isdigit():
            stacks.append((frames.split(";"), int(count)))
    return stacks


def summarise(path: Path, top: int = 12) -> dict[str, Any]:
    """Share of samples per group (exclusive), in botocore at all (inclusive), and the hottest leaf frames."""
    stacks = read_raw(path)
    total = sum(count for _, count in stacks) or 1
    groups: Counter[str] = Counter()
    leaves: Counter[str] = Counter()
    in_botocore = 0
    for stack, count in stacks:
        groups[_group(stack)] += count
        leaves[stack[-1].rsplit(":", 1)[0] + ")"] += count
        if any(_file(frame).startswith("botocore/") for frame in stack):
            in_botocore += count

    def percent(count: int) -> float:
        return round(100 * count / total, 1)

    return {
        "file": path.name,
        "samples": total,
        "groups_percent": {name: percent(count) for name, count in groups.most_common()},
        "anywhere_in_botocore_percent": percent(in_botocore),
        "top_leaf_frames_percent": {frame: percent(count) for frame, count in leaves.most_common(top)},
    }


def print_summary(title: str, summary: dict[str, Any]) -> None:
    print(f"\n{title}: {summary['samples']} samples of the GIL holder ({summary['file']})")
    if "service_cpu_percent" in summary:
        print(f"  the service used {summary['service_cpu_percent']}% of a core meanwhile")
    for name, share in summary["groups_percent"].items():
        print(f"  {share:5.1f}%  {name}")
    print(f"  ({summary['anywhere_in_botocore_percent']}% of samples have botocore on the stack)")
    print("  hottest leaf frames:")
    for frame, share in summary["top_leaf_frames_percent"].items():
        print(f"  {share:5.1f}%  {frame}")


def record_during(pid: int, seconds: int, output: Path, load: Callable[[], object]) -> None:
    """Record a raw py-spy profile of `pid` for `seconds` while `load` runs."""
    beside_python = Path(sys.executable).parent / "py-spy"
    py_spy = str(beside_python) if beside_python.exists() else shutil.which("py-spy") or "py-spy"
    command = [py_spy, "record", "--pid", str(pid), "--duration", str(seconds), "--rate", str(SAMPLES_PER_SECOND)]
    command += ["--format", "raw", "--gil", "--nonblocking"]
    spy = subprocess.Popen([*command, "--output", str(output)], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    load()
    _, errors = spy.communicate(timeout=seconds + 60)
    if spy.returncode != 0:
        raise RuntimeError(f"py-spy failed: {errors.decode(errors='replace')[-2000:]}")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("profiles", nargs="+", type=Path, help="raw py-spy output files")
    parser.add_argument("--top", type=int, default=12, help="how many leaf frames to list")
    args = parser.parse_args()
    for path in args.profiles:
        print_summary(path.stem, summarise(path, args.top))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""`python -m bench.dynamodb_client`: the client CPU per call on Dynoxide, then the decoding and
per-call breakdown benchmarks, a Markdown summary, and with `--json` every figure in one file."""

import argparse
import json
import os
from dataclasses import asdict
from pathlib import Path

import bench.dynamodb_client
from bench.dynamodb_client.breakdown import call_breakdown
from bench.dynamodb_client.calls import CALLS, measure_calls, summary
from bench.dynamodb_client.decoding import converter_benchmark


def isolate_environment() -> None:
    """Fake credentials and no configured endpoint, whatever the shell holds: both clients resolve the same."""
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
    )
    for name in (
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
    ):
        os.environ.pop(name, None)


def main() -> int:
    parser = argparse.ArgumentParser(
        prog="python -m bench.dynamodb_client",
        description=bench.dynamodb_client.__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the number of calls")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per measurement; the median is reported")
    parser.add_argument(
        "--only", nargs="*", help="clients to run: boto3, aiohttp, aiohttp-uvloop, httpx, bridge (default: all)"
    )
    parser.add_argument("--operations", nargs="*", choices=list(CALLS), help="operations to run (default: all)")
    parser.add_argument("--modes", nargs="*", default=["seq", "c4"], choices=["seq", "c4"])
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args()
    isolate_environment()
    chosen = set(args.only or ["boto3", "aiohttp", "aiohttp-uvloop", "httpx", "bridge"])
    wanted_operations = [name for name in CALLS if name in (args.operations or CALLS)]
    rows, names = measure_calls(chosen, wanted_operations, args.modes, args.scale, args.rounds)

    decode_rows = converter_benchmark(max(20, int(500 * args.scale)))
    breakdown = call_breakdown(max(100, int(5000 * args.scale)))
    print()
    print(summary(rows, names))
    if args.json:
        report = {"calls": [asdict(row) for row in rows], "decode": decode_rows, "breakdown": breakdown}
        args.json.write_text(json.dumps(report, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

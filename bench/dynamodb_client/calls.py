"""Client CPU per DynamoDB call on a local Dynoxide: each contender, each operation, raw and (reads)
decoded, one call at a time ("seq") and four in flight ("c4"); rounds interleaved, medians kept."""

import statistics
import tempfile
from dataclasses import dataclass
from pathlib import Path

from bench.dynamodb_client.contenders import Contender, Sample, contenders
from bench.dynamodb_client.dataset import seed
from core.dynamodb_client import DynamoDBClient
from core.settings import Settings
from devservers import start_dynoxide

CALLS = {"GetItem": 3000, "BatchGetItem50": 300, "BatchGetItem100": 180, "TransactWriteItems": 1200}
"""Calls per measurement, split over the rounds."""
CONCURRENCY = {"seq": 1, "c4": 4}


@dataclass
class Row:
    operation: str
    client: str
    mode: str
    calls: int
    cpu_ms: float
    """Median over the rounds of this process's CPU milliseconds per call."""
    system_ms: float
    """The part of it spent in the kernel (system calls: mostly the loopback network)."""
    wall_ms: float


def measure_calls(
    chosen: set[str], operations: list[str], modes: list[str], scale: float, rounds: int
) -> tuple[list[Row], list[str]]:
    """The rows of every measurement, and the names of the contenders measured, in order."""
    rows: list[Row] = []
    with tempfile.TemporaryDirectory() as work:
        server, endpoint = start_dynoxide(Path(work))
        try:
            settings = Settings(_env_file=None, store_backend="dynamodb", dynamodb_endpoint_url=endpoint)
            seed(DynamoDBClient.from_settings(settings))
            made = contenders(chosen, settings)
            try:
                for contender in made:  # warm: connections open, code paths run once
                    for name in operations:
                        contender.run(name, False, 5, 1)
                for decode in (False, True):
                    for name in operations:
                        if decode and name == "TransactWriteItems":
                            continue
                        calls = max(5, int(CALLS[name] * scale / rounds))
                        for mode in modes:
                            rows += measure_one(made, name, decode, calls, mode, rounds)
            finally:
                for contender in made:
                    contender.close()
        finally:
            server.stop()
    return rows, [contender.name for contender in made]


def measure_one(made: list[Contender], name: str, decode: bool, calls: int, mode: str, rounds: int) -> list[Row]:
    label = name + (" +decode" if decode else "")
    samples: dict[str, list[Sample]] = {c.name: [] for c in made}
    for _ in range(rounds):  # interleaved, so a change in the machine's load hits all
        for contender in made:
            samples[contender.name].append(contender.run(name, decode, calls, CONCURRENCY[mode]))
    rows = []
    for contender in made:
        cpu, system, wall = (
            statistics.median(sample[field] for sample in samples[contender.name]) for field in range(3)
        )
        rows.append(Row(label, contender.name, mode, calls * rounds, round(cpu, 3), round(system, 3), round(wall, 3)))
        print(
            f"{label:<26} {contender.name:<15} {mode:<4} {cpu:7.3f} ms CPU ({system:6.3f} system) {wall:8.3f} ms wall"
        )
    return rows


def summary(rows: list[Row], names: list[str]) -> str:
    """A Markdown table: CPU ms per call for each client, and boto3's over each other client's."""
    table: dict[tuple[str, str], dict[str, float]] = {}
    for row in rows:
        table.setdefault((row.operation, row.mode), {})[row.client] = row.cpu_ms
    others = [name for name in names if name != "boto3"]
    header = ["operation", "mode", *names] + [f"boto3 / {name}" for name in others if "boto3" in names]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * 2 + " ---: |" * (len(header) - 2)]
    for (operation, mode), cpu in table.items():
        cells = [operation, mode] + [f"{cpu[name]:.3f}" if name in cpu else "" for name in names]
        if "boto3" in names:
            cells += [f"{cpu['boto3'] / cpu[name]:.1f}x" if name in cpu and "boto3" in cpu else "" for name in others]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)

"""`feature-store load` of JSON Lines, a file or standard input (`-`): read a part at a time, several parts
in flight and answered in input order, so memory stays bounded whatever the input's size. After each part
is answered a checkpoint records the line and byte offset reached; `--resume` continues there: a file is
read from that offset (refused when the file changed), standard input (the same stream, sent again) is read
up to it and must hash to what was read before."""

import argparse
import hashlib
import json
import sys
import time
from collections import deque
from collections.abc import Iterable, Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from contextlib import ExitStack
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, Any, TextIO

from feature_store_client import _core
from feature_store_client._bulk import encoded_entity, encoded_size, part_limits
from feature_store_client.client import FeatureStoreClient
from feature_store_client.loader import STOP_CODES, Checkpoint, LoadStopped, RateProgress
from feature_store_client.models import EntityWriteResult, Limits

STDIN_FAILURES = "load-failures.jsonl"
STDIN_CHECKPOINT = "load-checkpoint.json"


@dataclass(frozen=True)
class Position:
    """How far the input was read: lines (blank ones counted), bytes, and for standard input the SHA-256
    of those bytes."""

    line: int = 0
    offset: int = 0
    digest: str | None = None


@dataclass
class LinePart:
    """Lines of the input sent in one request: the entities with their line numbers and JSON text, the
    lines that could not be sent, and where the input stands after the part."""

    numbers: list[int] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    encoded: list[str] = field(default_factory=list)
    failures: list[dict[str, Any]] = field(default_factory=list)
    lines: int = 0
    """Lines that are not blank."""
    size: int = 0
    end: Position = field(default_factory=Position)


def parse_line(number: int, raw: bytes) -> tuple[dict[str, Any], str] | dict[str, Any]:
    """(the entity as sent, its JSON text), or the failure to report for a line that is not one."""
    try:
        entity = json.loads(raw)
    except ValueError as exc:
        return {"line": number, "error": "invalid_json", "detail": str(exc)}
    value = entity.get("entity_value") if isinstance(entity, dict) else None
    try:
        body = _core.entity_body(entity)
    except ValueError as exc:
        return {"line": number, "entity_value": value, "error": "invalid_entity", "detail": str(exc)}
    try:
        return body, encoded_entity(body)
    except ValueError as exc:  # NaN or an infinity: JSON has no form for them
        return {"line": number, "entity_value": value, "error": "invalid_number", "detail": str(exc)}


def hexdigest(digest: Any) -> str | None:
    return None if digest is None else str(digest.hexdigest())


def line_parts(lines: Iterable[bytes], limits: Limits, start: Position, digest: Any) -> Iterator[LinePart]:
    """The input's lines after `start`, in parts of at most the bulk-write maximum of lines whose entities
    stay under its body limit. `digest` (a hashlib object, or None) takes every byte read."""
    most, budget = part_limits(limits)
    line, offset = start.line, start.offset
    part = LinePart(end=start)
    for raw in lines:
        if raw.strip():
            parsed = parse_line(line + 1, raw)
            size = encoded_size(parsed[1]) + 2 if isinstance(parsed, tuple) else 0
            if part.lines >= most or (size and part.bodies and part.size + size > budget):
                part.end = Position(line, offset, hexdigest(digest))
                yield part
                part = LinePart()
            if isinstance(parsed, tuple):
                part.numbers.append(line + 1)
                part.bodies.append(parsed[0])
                part.encoded.append(parsed[1])
                part.size += size
            else:
                part.failures.append(parsed)
            part.lines += 1
        line, offset = line + 1, offset + len(raw)
        if digest is not None:
            digest.update(raw)
    part.end = Position(line, offset, hexdigest(digest))
    if part.lines:
        yield part


def counted_lines(path: str) -> int:
    """Lines that are not blank, for the progress bar's total."""
    with open(path, "rb") as file:
        return sum(1 for raw in file if raw.strip())


def stdin_lines(stdin: TextIO) -> Iterator[bytes]:
    """Standard input's lines as bytes (a text stream without a byte buffer is encoded back)."""
    buffer = getattr(stdin, "buffer", None)
    return iter(buffer) if buffer is not None else (text.encode("utf-8") for text in stdin)


def skip_to(lines: Iterator[bytes], position: Position, digest: Any) -> None:
    """Reads standard input up to where the checkpoint stands, refusing another stream than the one read."""
    read = 0
    for _ in range(position.line):
        raw = next(lines, b"")
        read += len(raw)
        digest.update(raw)
    if read != position.offset or digest.hexdigest() != position.digest:
        raise ValueError(
            f"standard input does not start with the {position.line} lines the checkpoint was written for; "
            "send the same input again, or load without --resume"
        )


class LineTally:
    """The answers of the parts, taken in input order: the failures file, the checkpoint and the progress."""

    def __init__(self, checkpoint: Checkpoint, failures_file: IO[str], progress: RateProgress) -> None:
        self.checkpoint = checkpoint
        self.failures_file = failures_file
        self.progress = progress

    def add(self, part: LinePart, results: list[EntityWriteResult]) -> None:
        refused = [
            {"line": number, "entity_value": result.entity_value, **result.error.model_dump()}
            for number, result in zip(part.numbers, results, strict=True)
            if result.error is not None
        ]
        stop = next((failure for failure in refused if failure["error"] in STOP_CODES), None)
        if stop is not None:
            raise LoadStopped(self.checkpoint.rows_done, f"{stop['error']}: {stop['detail']}")
        failures = sorted(part.failures + refused, key=lambda failure: failure["line"])
        self.failures_file.writelines(json.dumps(failure, ensure_ascii=False) + "\n" for failure in failures)
        self.failures_file.flush()
        checkpoint = self.checkpoint
        checkpoint.rows_done += part.lines
        checkpoint.written += len(results) - len(refused)
        checkpoint.failed += len(refused)
        invalid = checkpoint.extra.get("invalid_lines", 0) + len(part.failures)
        checkpoint.extra = {"line": part.end.line, "offset": part.end.offset, "invalid_lines": invalid}
        if part.end.digest is not None:
            checkpoint.extra["digest"] = part.end.digest
        checkpoint.save()
        self.progress.update(checkpoint.rows_done, checkpoint.failed + invalid)


def send_parts(
    args: argparse.Namespace, client: FeatureStoreClient, parts: Iterator[LinePart], tally: LineTally
) -> None:
    """Each part sent as it is read, `--concurrency` in flight, their answers taken in input order."""
    request_id = args.request_id or _core.new_request_id()
    meta = _core.write_meta(args.source, args.compute_id, args.ttl, args.event_time)
    in_flight = max(1, args.concurrency or client.max_concurrency)
    window: deque[tuple[LinePart, Future[list[EntityWriteResult]] | None]] = deque()

    def take() -> None:
        part, future = window.popleft()
        tally.add(part, [] if future is None else future.result())

    with ThreadPoolExecutor(max_workers=in_flight) as pool:
        for part in parts:
            future = None
            if part.bodies:
                future = pool.submit(client._write_part, part.bodies, args.entity_type, meta, request_id, part.encoded)
            window.append((part, future))
            if len(window) >= in_flight:
                take()
        while window:
            take()


def input_lines(
    args: argparse.Namespace, stdin: TextIO, start: Position, stack: ExitStack
) -> tuple[Iterator[bytes], Any]:
    """The input's lines from where the checkpoint stands (a file is sought to it), and for standard input
    the hash of what was read so far, to go on with."""
    if args.path == "-":
        lines, digest = stdin_lines(stdin), hashlib.sha256()
        if start.line:
            skip_to(lines, start, digest)
        return lines, digest
    file = stack.enter_context(open(args.path, "rb"))
    file.seek(start.offset)
    return iter(file), None


def load_lines(args: argparse.Namespace, client: FeatureStoreClient, stdin: TextIO) -> tuple[dict[str, Any], int]:
    """Loads a JSON Lines file or standard input; (the summary, the exit status)."""
    from_stdin = args.path == "-"
    if from_stdin:
        checkpoint = Checkpoint(Path(args.checkpoint or STDIN_CHECKPOINT), "-")
        failures_path = Path(args.failures or STDIN_FAILURES)
    else:
        checkpoint = Checkpoint.beside(args.path, args.checkpoint)
        failures_path = Path(args.failures or f"{args.path}.failures.jsonl")
    if args.resume:
        checkpoint.resume()
    extra = checkpoint.extra
    start = Position(extra.get("line", 0), extra.get("offset", 0), extra.get("digest"))
    resumed_from = checkpoint.rows_done
    show = sys.stderr.isatty() if args.progress is None else args.progress
    total = counted_lines(args.path) if show and not from_stdin else None
    progress = RateProgress(total, resumed_from, sys.stderr, show, unit="lines")
    started = time.monotonic()
    stopped: str | None = None
    status = 0
    with ExitStack() as stack:
        lines, digest = input_lines(args, stdin, start, stack)
        parts = line_parts(lines, client.limits(), start, digest)
        failures_file = stack.enter_context(failures_path.open("a" if resumed_from else "w", encoding="utf-8"))
        try:
            send_parts(args, client, parts, LineTally(checkpoint, failures_file, progress))
        except LoadStopped as exc:
            stopped, status = f"the service stopped answering ({exc}); rerun with --resume to continue", 1
        except KeyboardInterrupt:
            stopped, status = "interrupted; rerun with --resume to continue", 130
        finally:
            progress.close()
    invalid = checkpoint.extra.get("invalid_lines", 0)
    failed_any = bool(checkpoint.failed or invalid)
    if stopped is None:
        checkpoint.remove()
        status = 1 if failed_any else 0
    if not failed_any:
        failures_path.unlink(missing_ok=True)  # an earlier run's failures would read as this run's
    elapsed = time.monotonic() - started
    summary: dict[str, Any] = {
        "lines": checkpoint.rows_done,
        "written": checkpoint.written,
        "failed": checkpoint.failed,
        "invalid_lines": invalid,
        "resumed_after_line": start.line,
        "elapsed_seconds": round(elapsed, 3),
        "lines_per_second": round((checkpoint.rows_done - resumed_from) / elapsed, 1) if elapsed else None,
        "failures_file": str(failures_path) if failed_any else None,
    }
    if stopped is not None:
        summary |= {"stopped": stopped, "checkpoint": str(checkpoint.path)}
        sys.stderr.write(f"feature-store: {stopped}\n")
    return summary, status

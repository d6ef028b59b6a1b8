"""`feature-store load` of Parquet and CSV files: read by record batches (memory stays bounded whatever the
file's size), written with `write_dataframe`, and resumable: after each part answered in order, a
checkpoint beside the input records how many rows are done, so `--resume` continues from there. The
checkpoint, the progress bar and the codes that stop a load serve JSON Lines loads too (`jsonl_loader`)."""

import argparse
import ctypes
import ctypes.util
import json
import os
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, TextIO

from feature_store_client import _arrow
from feature_store_client.client import FeatureStoreClient
from feature_store_client.models import FrameProgress

FORMATS = ("jsonl", "parquet", "csv")
READ_ROWS = 10_000
"""Rows read from a file at a time; `write_dataframe` then converts a part's worth at a time."""
STOP_CODES = frozenset({"timeout", "transport_error", "service_unavailable", "store_unavailable", "rate_limited"})
"""Failures that say nothing about the row: the load stops there (not checkpointed past), to be resumed."""
CSV_NULLS = ["", "null", "NULL"]
"""Arrow would also read NaN and N/A as null; here a NaN stays a number, and its row fails `invalid_number`."""
TYPE_ALIASES = {"int": "int64", "float": "float64", "date": "date32"}
PARQUET_BUFFER_BYTES = 64 * 1024
"""Each column chunk is read through a buffer this size instead of whole: by default Arrow reads a row
group's chunks ahead in full (`pre_buffer`), and its live memory grew with the file (decoding 100,000 rows of
100 floats: 19 MB, 2,000,000: 75 MB, peak RSS 117 and 181 MB); buffered, 17 MB for both (RSS 111 and
119 MB), decoding the 2,000,000 rows in 1.3 s instead of 1.1 s, of a load of minutes."""


MMAP_THRESHOLD_BYTES = 128 * 1024
"""Allocations from this size on are mapped and given back when freed (glibc's default threshold rises to the
largest block freed, up to 32 MB, after which a part's JSON body and lists come from a heap that fragments).
Measured on a 400,000-entity Parquet load (RSS sampled every 10 s): it held at ~235-243 MB instead of
~251-260 MB; with Arrow on glibc's allocator too, RSS grew with the file (230 -> 275 MB)."""


def settle_memory() -> None:
    """Fix glibc's mmap threshold for a long load (see `MMAP_THRESHOLD_BYTES`); elsewhere (musl, macOS) nothing."""
    name = ctypes.util.find_library("c")
    libc = ctypes.CDLL(name) if name else None
    mallopt = getattr(libc, "mallopt", None)
    if mallopt is not None:
        mallopt(-3, MMAP_THRESHOLD_BYTES)  # M_MMAP_THRESHOLD


class LoadStopped(Exception):
    """The service stopped answering: every row before `rows_done` is answered."""

    def __init__(self, rows_done: int, reason: str) -> None:
        super().__init__(reason)
        self.rows_done = rows_done


def input_format(path: str, given: str | None) -> str:
    if given:
        return given
    if path == "-":
        return "jsonl"
    suffix = Path(path).suffix.lower()
    if suffix in (".parquet", ".pq") or Path(path).is_dir():
        return "parquet"
    if suffix in (".csv", ".tsv"):
        return "csv"
    if suffix in (".jsonl", ".ndjson", ".json"):
        return "jsonl"
    raise ValueError(f"cannot tell the format of {path} from its extension; give --format {'|'.join(FORMATS)}")


def parquet_files(path: Path) -> list[Path]:
    files = sorted(path.rglob("*.parquet")) if path.is_dir() else [path]
    if not files:
        raise ValueError(f"{path} holds no .parquet files")
    return files


def column_types(text: str | None, entity_column: str) -> dict[str, Any]:
    """`--column-types name=type,...` as Arrow types; the entity column is read as text unless named."""
    pa = _arrow.require_arrow()
    types: dict[str, Any] = {entity_column: pa.string()}
    for item in (text or "").split(","):
        if not item.strip():
            continue
        name, equals, alias = item.partition("=")
        if not (equals and name.strip() and alias.strip()):
            raise ValueError(f"--column-types: {item!r} is not NAME=TYPE")
        alias = alias.strip()
        try:
            types[name.strip()] = (
                pa.timestamp("us", tz="UTC")
                if alias == "timestamp"
                else pa.type_for_alias(TYPE_ALIASES.get(alias, alias))
            )
        except ValueError:
            raise ValueError(
                f"--column-types: unknown type {alias!r} (int, float, bool, string, date, timestamp, "
                "or an Arrow alias such as int32)"
            ) from None
    return types


def open_input(path: str, fmt: str, types: str | None, entity_column: str) -> tuple[Iterator[Any], int | None]:
    """The input's record batches and its rows when known (Parquet's metadata says; a CSV's does not)."""
    _arrow.require_arrow()
    if fmt == "parquet":
        import pyarrow.parquet as pq

        files = [
            pq.ParquetFile(file, pre_buffer=False, buffer_size=PARQUET_BUFFER_BYTES)
            for file in parquet_files(Path(path))
        ]
        total = sum(file.metadata.num_rows for file in files)
        # One decoding thread: Arrow's thread pool keeps buffers per thread, which the load's peak RSS grew by.
        batches = (batch for file in files for batch in file.iter_batches(batch_size=READ_ROWS, use_threads=False))
        return batches, total
    import pyarrow.csv as csv

    reader = csv.open_csv(
        path,
        read_options=csv.ReadOptions(block_size=8 << 20),
        convert_options=csv.ConvertOptions(
            column_types=column_types(types, entity_column), null_values=CSV_NULLS, strings_can_be_null=True
        ),
    )
    return iter(reader), None


def fingerprint(path: str) -> list[list[Any]]:
    """What identifies this version of the input: each file's name, size and modification time."""
    files = parquet_files(Path(path)) if Path(path).is_dir() else [Path(path)]
    return [[str(file), file.stat().st_size, file.stat().st_mtime_ns] for file in files]


class Checkpoint:
    """A load's checkpoint file (`PATH.checkpoint.json` by default): the rows done so far, their counts,
    what the input's format adds (`extra`: JSON Lines' line, byte offset and invalid lines), and the input
    they were read from."""

    def __init__(self, path: Path, input_identity: Any) -> None:
        self.path = path
        self.input = input_identity
        self.rows_done = self.written = self.failed = 0
        self.extra: dict[str, Any] = {}

    @classmethod
    def beside(cls, input_path: str, path: str | None) -> "Checkpoint":
        """The checkpoint of a file or directory: at `path`, or beside it."""
        return cls(Path(path or f"{input_path.rstrip('/')}.checkpoint.json"), fingerprint(input_path))

    def resume(self) -> None:
        if not self.path.exists():
            return
        saved = json.loads(self.path.read_text(encoding="utf-8"))
        if saved.get("input") != self.input:
            raise ValueError(f"{self.path} was written for another version of the input; delete it to start over")
        self.rows_done, self.written, self.failed = saved["rows_done"], saved["written"], saved["failed"]
        self.extra = saved.get("extra", {})

    def save(self) -> None:
        state = {"input": self.input, "rows_done": self.rows_done, "written": self.written, "failed": self.failed}
        if self.extra:
            state["extra"] = self.extra
        temporary = self.path.with_suffix(".tmp")
        temporary.write_text(json.dumps(state), encoding="utf-8")
        os.replace(temporary, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


class RateProgress:
    """A one-line progress bar on a terminal: rows (or lines) done, of the total when known, their rate and
    the ETA."""

    WIDTH = 30

    def __init__(self, total: int | None, first_row: int, stream: TextIO, enabled: bool, unit: str = "rows") -> None:
        self.total = total
        self.first_row = first_row
        self.stream = stream
        self.enabled = enabled
        self.unit = unit
        self.started = time.monotonic()

    def update(self, rows_done: int, failed: int) -> None:
        if not self.enabled:
            return
        elapsed = max(time.monotonic() - self.started, 1e-9)
        rate = (rows_done - self.first_row) / elapsed
        unit = self.unit
        line = f"{rows_done} {unit}, {failed} failed, {rate:,.0f} {unit}/s"
        if self.total:
            filled = self.WIDTH * min(rows_done, self.total) // self.total
            eta = (self.total - rows_done) / rate if rate else 0
            line = f"[{'#' * filled}{'.' * (self.WIDTH - filled)}] {rows_done}/{self.total} {unit}, {failed} failed, "
            line += f"{rate:,.0f} {unit}/s, ETA {eta:,.0f}s"
        self.stream.write(f"\r{line}")
        self.stream.flush()

    def close(self) -> None:
        if self.enabled:
            self.stream.write("\n")
            self.stream.flush()


def category_columns(options: list[str] | None) -> dict[str, list[str]] | None:
    """`--category CATEGORY=COLUMN,COLUMN` (repeated) as `write_dataframe`'s categories."""
    if not options:
        return None
    categories: dict[str, list[str]] = {}
    for option in options:
        category, equals, columns = option.partition("=")
        names = [name.strip() for name in columns.split(",") if name.strip()]
        if not (equals and category and names):
            raise ValueError(f"--category: {option!r} is not CATEGORY=COLUMN[,COLUMN...]")
        categories.setdefault(category, []).extend(names)
    return categories


def load_file(args: argparse.Namespace, client: FeatureStoreClient, fmt: str) -> tuple[dict[str, Any], int]:
    """Loads a Parquet or CSV file; (the summary, the exit status)."""
    if args.path == "-":
        raise ValueError(f"{fmt} is read from a file, not standard input")
    categories = category_columns(args.category)
    batches, total = open_input(args.path, fmt, args.column_types, args.entity_column)
    checkpoint = Checkpoint.beside(args.path, args.checkpoint)
    if args.resume:
        checkpoint.resume()
    resumed_from = checkpoint.rows_done
    failures_path = Path(args.failures or f"{args.path.rstrip('/')}.failures.jsonl")
    progress = RateProgress(
        total, resumed_from, sys.stderr, sys.stderr.isatty() if args.progress is None else args.progress
    )
    started = time.monotonic()
    with failures_path.open("a" if resumed_from else "w", encoding="utf-8") as failures_file:

        def answered(step: FrameProgress) -> None:
            stop = next((failure for failure in step.failures if failure.error in STOP_CODES), None)
            if stop is not None:
                raise LoadStopped(checkpoint.rows_done, f"{stop.error}: {stop.detail}")
            failures_file.writelines(
                json.dumps(failure.model_dump(), ensure_ascii=False, default=str) + "\n" for failure in step.failures
            )
            failures_file.flush()
            checkpoint.rows_done = step.rows_done
            checkpoint.written += step.written
            checkpoint.failed += step.failed
            checkpoint.save()
            progress.update(step.rows_done, checkpoint.failed)

        status = 0
        stopped: str | None = None
        try:
            client.write_dataframe(
                batches,
                entity_column=args.entity_column,
                categories=categories,
                event_time_column=args.event_time_column,
                entity_type=args.entity_type,
                source=args.source,
                compute_id=args.compute_id,
                ttl=args.ttl,
                event_time=args.event_time,
                nulls=args.nulls,
                decimals=args.decimals,
                concurrency=args.concurrency,
                skip_rows=resumed_from,
                keep_failures=False,
                on_progress=answered,
                request_id=args.request_id,
            )
        except LoadStopped as exc:
            stopped, status = f"the service stopped answering ({exc}); rerun with --resume to continue", 1
        except KeyboardInterrupt:
            stopped, status = "interrupted; rerun with --resume to continue", 130
        finally:
            progress.close()
    if stopped is None:
        checkpoint.remove()
        status = 1 if checkpoint.failed else 0
    if not checkpoint.failed:
        failures_path.unlink(missing_ok=True)
    elapsed = time.monotonic() - started
    summary = {
        "rows": checkpoint.rows_done,
        "written": checkpoint.written,
        "failed": checkpoint.failed,
        "resumed_from_row": resumed_from,
        "elapsed_seconds": round(elapsed, 3),
        "rows_per_second": round((checkpoint.rows_done - resumed_from) / elapsed, 1) if elapsed else None,
        "failures_file": str(failures_path) if checkpoint.failed else None,
    }
    if stopped is not None:
        summary |= {"stopped": stopped, "checkpoint": str(checkpoint.path)}
        sys.stderr.write(f"feature-store: {stopped}\n")
    return summary, status

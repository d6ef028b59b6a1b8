"""`feature-store rollback`: the entities to roll back, from a JSON Lines or Parquet file (or standard input),
sent in parts of the service's bulk-write maximum (`FeatureStoreClient.rollback`), and a summary."""

import argparse
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Any, TextIO

from feature_store_client import _arrow
from feature_store_client.client import FeatureStoreClient
from feature_store_client.loader import input_format, parquet_files


def _from_lines(lines: Iterable[str], column: str) -> list[str]:
    """Each line a JSON string (`"user-1"`) or an object holding the entity value under `column` (a `load` input
    file works as it is); blank lines skipped."""
    values: list[str] = []
    for number, line in enumerate(lines, 1):
        if not line.strip():
            continue
        try:
            entry = json.loads(line)
        except ValueError:
            raise ValueError(f"line {number}: not JSON") from None
        value = entry.get(column) if isinstance(entry, dict) else entry
        if not isinstance(value, str) or not value:
            raise ValueError(f'line {number}: no entity value: give a JSON string or an object with "{column}"')
        values.append(value)
    return values


def _from_parquet(path: str, column: str) -> list[str]:
    _arrow.require_arrow()
    import pyarrow.parquet as pq

    values: list[str] = []
    for file in parquet_files(Path(path)):
        table = pq.read_table(file, columns=[column])
        values += [str(value) for value in table.column(column).to_pylist() if value is not None]
    return values


def entity_values(path: str, fmt: str | None, column: str, stdin: TextIO) -> list[str]:
    """The entity values the input names, in order, each once."""
    fmt = input_format(path, fmt)
    if fmt == "parquet":
        values = _from_parquet(path, column)
    elif fmt == "jsonl":
        if path == "-":
            values = _from_lines(stdin, column)
        else:
            with open(path, encoding="utf-8") as file:
                values = _from_lines(file, column)
    else:
        raise ValueError("rollback reads JSON Lines or Parquet")
    if not values:
        raise ValueError(f"{path} names no entity")
    return list(dict.fromkeys(values))


def rollback(args: argparse.Namespace, client: FeatureStoreClient, stdin: TextIO) -> tuple[dict[str, Any], int]:
    """The summary to print (what was restored, what was left alone, per entity that was not untouched) and the
    exit status: 1 when an entity could not be rolled back."""
    try:
        values = entity_values(args.path, args.format, args.entity_column, stdin)
    except (ImportError, OSError) as exc:
        raise ValueError(" ".join(str(exc).split())) from exc
    answer = client.rollback(values, args.compute_id, args.entity_type, request_id=args.request_id)
    summary = {
        "entity_type": answer.entity_type,
        "compute_id": answer.compute_id,
        "entities": len(answer.results),
        "restored": answer.restored,
        "failed": answer.failed,
        "results": [result.model_dump(mode="json") for result in answer.results if result.restored or result.error],
    }
    return summary, 1 if answer.failed else 0

"""`feature-store`: the client's command line. `--url`/`--api-key` or FEATURE_STORE_URL /
FEATURE_STORE_API_KEY; answers as JSON (default) or a table; exit status 0 on success, 1 on an error
answer, a service that is not ready or a `load` or `rollback` with any failed entity, 2 on a usage error, 130
when a `load` is interrupted (continue it with `--resume`)."""

import argparse
import json
import os
import sys
from collections.abc import Sequence
from typing import Any, TextIO

from pydantic import BaseModel

from feature_store_client import jsonl_loader, loader, rollback_input
from feature_store_client._core import DEFAULT_ENTITY_TYPE, DEFAULT_TIMEOUT
from feature_store_client._version import __version__
from feature_store_client.client import FeatureStoreClient
from feature_store_client.errors import FeatureStoreError, ValidationError
from feature_store_client.models import BatchResult, CategoryResult, EntityFeatures, Readiness, Registry

DEFAULT_URL = "http://localhost:8000"


def add_global_options(parser: argparse.ArgumentParser, *, with_defaults: bool) -> None:
    """The options every command takes. The root parser holds their defaults; each command takes them
    again without defaults, so they may follow the command too (`get user-1 user_features -o table`)."""

    def default(value: Any) -> Any:
        return value if with_defaults else argparse.SUPPRESS

    url = os.environ.get("FEATURE_STORE_URL", DEFAULT_URL)
    parser.add_argument("--url", default=default(url), help="env FEATURE_STORE_URL")
    key = os.environ.get("FEATURE_STORE_API_KEY")
    parser.add_argument("--api-key", default=default(key), help="env FEATURE_STORE_API_KEY")
    parser.add_argument("--timeout", type=float, default=default(DEFAULT_TIMEOUT), help="seconds per request")
    parser.add_argument("--output", "-o", choices=["json", "table"], default=default("json"))
    parser.add_argument("--request-id", default=default(None), help="X-Request-ID to send (one is generated otherwise)")


def parser() -> argparse.ArgumentParser:
    root = argparse.ArgumentParser(
        prog="feature-store", description="Read and write features of the Feature Store API."
    )
    root.add_argument("--version", action="version", version=f"%(prog)s {__version__}")
    add_global_options(root, with_defaults=True)
    commands = root.add_subparsers(dest="command", required=True)

    def entity_type(command: argparse.ArgumentParser) -> None:
        command.add_argument("--entity-type", default=DEFAULT_ENTITY_TYPE)

    get = commands.add_parser("get", help="features of one entity")
    get.add_argument("entity_value")
    get.add_argument(
        "selectors", nargs="+", metavar="SELECTOR", help="CATEGORY (all its features), CATEGORY:FEATURE or CATEGORY:*"
    )
    get.add_argument("--max-age", type=float, dest="max_age_seconds", help="freshness bound, seconds")
    entity_type(get)

    batch = commands.add_parser("get-batch", help="the same features of many entities")
    batch.add_argument("entity_values", nargs="*", metavar="ENTITY_VALUE")
    batch.add_argument("--features", "-f", nargs="+", required=True, metavar="SELECTOR")
    batch.add_argument("--from-file", metavar="PATH", help="entity values, one a line ('-': standard input)")
    batch.add_argument("--max-age", type=float, dest="max_age_seconds")
    entity_type(batch)

    write = commands.add_parser("write", help="write features of one entity")
    write.add_argument("entity_value")
    write.add_argument(
        "assignments",
        nargs="*",
        metavar="CATEGORY:FEATURE=VALUE",
        help='VALUE is read as JSON (30, true, [1,2], "x"), else taken as a string',
    )
    write.add_argument("--json", dest="json_categories", help='{"category": {"feature": value}}; @PATH or - to read it')
    write.add_argument("--source")
    write.add_argument("--compute-id")
    write.add_argument("--ttl", type=int)
    write.add_argument("--event-time", help="ISO 8601")
    entity_type(write)

    load = commands.add_parser(
        "load",
        help="bulk write from a Parquet, CSV or JSON Lines file",
        description="Parquet (a file or a directory of them) and CSV (a header row): one row one entity, its "
        "value in --entity-column, features in columns named CATEGORY:FEATURE (or mapped with --category), "
        "read by record batches. JSON Lines: each line one entity: "
        '{"entity_value": "u1", "categories": {"user_features": {"age": 30}}, "meta": {"event_time": "..."}} '
        '(or "feature_list" as the API takes it; "meta" optional, overriding the shared options), read a '
        "part at a time. Written through POST /api/v1/items/batch in parts of the service's published "
        "maximum, several in flight; every format is resumable with --resume. Rows or lines that "
        "cannot be sent, and entities the service refuses, are reported with their numbers in the failures "
        "file; the summary goes to standard output; exit status 1 when anything failed.",
    )
    load.add_argument(
        "path",
        metavar="PATH",
        help="a .parquet/.csv/.jsonl file, a directory of .parquet files, or '-' (JSON Lines on standard input)",
    )
    load.add_argument("--format", choices=loader.FORMATS, help="default: from the extension")
    load.add_argument("--entity-column", default="entity_value", help="Parquet/CSV: the entity value's column")
    load.add_argument("--event-time-column", help="Parquet/CSV: each row's event time")
    load.add_argument(
        "--category",
        action="append",
        metavar="CATEGORY=COLUMN[,COLUMN]",
        help="Parquet/CSV: a category's columns (repeatable); default: columns named CATEGORY:FEATURE",
    )
    load.add_argument("--column-types", metavar="NAME=TYPE[,...]", help="CSV: column types instead of inference")
    load.add_argument("--nulls", choices=["omit", "null"], default="omit", help="Parquet/CSV: null values")
    load.add_argument("--decimals", choices=["float", "string"], default="float", help="Parquet/CSV: decimals")
    load.add_argument("--concurrency", type=int, help="parts in flight")
    load.add_argument(
        "--resume",
        action="store_true",
        help="continue from the checkpoint after an interruption (standard input: send the same input again)",
    )
    load.add_argument(
        "--checkpoint",
        metavar="PATH",
        help=f"where the checkpoint is kept (default: PATH.checkpoint.json; {jsonl_loader.STDIN_CHECKPOINT} for '-')",
    )
    load.add_argument("--source")
    load.add_argument("--compute-id")
    load.add_argument("--ttl", type=int)
    load.add_argument("--event-time", help="ISO 8601")
    load.add_argument(
        "--failures",
        metavar="PATH",
        help=f"where failed lines are written, as JSON Lines (default: PATH.failures.jsonl; "
        f"{jsonl_loader.STDIN_FAILURES} for '-')",
    )
    load.add_argument(
        "--progress",
        action=argparse.BooleanOptionalAction,
        help="progress bar on standard error (default: when it is a terminal)",
    )
    entity_type(load)

    delete = commands.add_parser("delete", help="delete categories of one entity (all of them if none named)")
    delete.add_argument("entity_value")
    delete.add_argument("categories", nargs="*", metavar="CATEGORY")
    delete.add_argument("--event-time", help="ISO 8601; when the deletion took effect (default: now)")
    entity_type(delete)

    undo = commands.add_parser(
        "rollback",
        help="undo a compute job's writes to the entities of a file (an admin key)",
        description="Each category whose current value --compute-id wrote gets back its latest kept version "
        "another job wrote (categories with history). The entities: a JSON Lines file (each line a JSON string "
        "or an object with \"entity_value\", so a load's input works) or Parquet (--entity-column), or '-' "
        "(JSON Lines on standard input); sent in parts of the service's bulk-write maximum. Sending it again "
        "restores nothing more. The summary lists the entities restored or failed; exit status 1 when any failed.",
    )
    undo.add_argument("path", metavar="PATH", help="a .jsonl or .parquet file, a directory of .parquet files, or '-'")
    undo.add_argument("--compute-id", required=True, help="the job whose writes are undone")
    undo.add_argument("--format", choices=("jsonl", "parquet"), help="default: from the extension")
    undo.add_argument("--entity-column", default="entity_value", help="the entity value's column or field")
    entity_type(undo)

    registry = commands.add_parser("registry", help="the feature registry, or one category of it")
    registry.add_argument("category", nargs="?")

    commands.add_parser("ready", help="readiness; exit status 1 when not ready")
    commands.add_parser("limits", help="what one request may hold")
    for command in commands.choices.values():
        add_global_options(command, with_defaults=False)
    return root


def selectors_to_call(selectors: Sequence[str]) -> tuple[str | None, list[str]]:
    """(category, []) for one bare category (a single-category read); else (None, feature references)."""
    if len(selectors) == 1 and ":" not in selectors[0]:
        return selectors[0], []
    return None, [selector if ":" in selector else f"{selector}:*" for selector in selectors]


def parse_assignments(assignments: Sequence[str]) -> dict[str, dict[str, Any]]:
    categories: dict[str, dict[str, Any]] = {}
    for assignment in assignments:
        reference, equals, text = assignment.partition("=")
        category, colon, feature = reference.partition(":")
        if not (equals and colon and category and feature):
            raise ValueError(f"{assignment!r} is not CATEGORY:FEATURE=VALUE")
        try:
            value = json.loads(text)
        except ValueError:
            value = text
        categories.setdefault(category, {})[feature] = value
    return categories


def read_text(argument: str, stdin: TextIO) -> str:
    if argument == "-":
        return stdin.read()
    if argument.startswith("@"):
        with open(argument[1:], encoding="utf-8") as file:
            return file.read()
    return argument


def write_categories(args: argparse.Namespace, stdin: TextIO) -> dict[str, dict[str, Any]]:
    categories: dict[str, dict[str, Any]] = {}
    if args.json_categories is not None:
        loaded = json.loads(read_text(args.json_categories, stdin))
        if not isinstance(loaded, dict) or not all(isinstance(value, dict) for value in loaded.values()):
            raise ValueError('--json must be an object {"category": {"feature": value}}')
        categories = loaded
    for category, values in parse_assignments(args.assignments).items():
        categories.setdefault(category, {}).update(values)
    if not categories:
        raise ValueError("give CATEGORY:FEATURE=VALUE arguments or --json")
    return categories


def load(args: argparse.Namespace, client: FeatureStoreClient, stdin: TextIO) -> tuple[dict[str, Any], int]:
    fmt = loader.input_format(args.path, args.format)
    loader.settle_memory()
    try:
        if fmt == "jsonl":
            return jsonl_loader.load_lines(args, client, stdin)
        return loader.load_file(args, client, fmt)
    except (ImportError, ValueError, OSError) as exc:
        raise ValueError(" ".join(str(exc).split())) from exc  # the reason on one line


def run(args: argparse.Namespace, client: FeatureStoreClient, stdin: TextIO) -> tuple[Any, int]:
    """The answer to print and the exit status."""
    rid = args.request_id
    if args.command == "get":
        category, features = selectors_to_call(args.selectors)
        if category is not None:
            answer: Any = client.read_category(
                args.entity_value, category, args.entity_type, max_age_seconds=args.max_age_seconds, request_id=rid
            )
        else:
            answer = client.read_features(
                args.entity_value, features, args.entity_type, max_age_seconds=args.max_age_seconds, request_id=rid
            )
        return answer, 0
    if args.command == "get-batch":
        values = list(args.entity_values)
        if args.from_file:
            source = args.from_file if args.from_file == "-" else f"@{args.from_file}"
            values += [line.strip() for line in read_text(source, stdin).splitlines() if line.strip()]
        if not values:
            raise ValueError("give entity values, or --from-file")
        features = [selector if ":" in selector else f"{selector}:*" for selector in args.features]
        return client.read_batch(
            values, features, args.entity_type, max_age_seconds=args.max_age_seconds, request_id=rid
        ), 0
    if args.command == "write":
        return (
            client.write(
                args.entity_value,
                write_categories(args, stdin),
                args.entity_type,
                source=args.source,
                compute_id=args.compute_id,
                ttl=args.ttl,
                event_time=args.event_time,
                request_id=rid,
            ),
            0,
        )
    if args.command == "load":
        return load(args, client, stdin)
    if args.command == "delete":
        return client.delete(
            args.entity_value, args.categories or None, args.entity_type, event_time=args.event_time, request_id=rid
        ), 0
    if args.command == "rollback":
        return rollback_input.rollback(args, client, stdin)
    if args.command == "registry":
        if args.category:
            return client.registry_category(args.category, request_id=rid), 0
        return client.registry(request_id=rid), 0
    if args.command == "ready":
        readiness = client.ready(request_id=rid)
        return readiness, 0 if readiness.ready else 1
    return client.limits(), 0


def plain(answer: Any) -> Any:
    return answer.model_dump(mode="json", exclude_none=False) if isinstance(answer, BaseModel) else answer


def table(rows: list[list[Any]], header: list[str]) -> str:
    cells = [header, *[[cell if isinstance(cell, str) else json.dumps(cell) for cell in row] for row in rows]]
    widths = [max(len(row[column]) for row in cells) for column in range(len(header))]
    lines = ["  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip() for row in cells]
    lines.insert(1, "  ".join("-" * width for width in widths))
    return "\n".join(lines)


def feature_rows(entity: EntityFeatures, with_entity: bool) -> list[list[Any]]:
    rows: list[list[Any]] = []
    prefix = [entity.entity_value] if with_entity else []
    for category, item in entity.items.items():
        rows += [[*prefix, category, feature, value] for feature, value in item.features.data.items()]
    rows += [[*prefix, category, "*", "(unavailable)"] for category in entity.unavailable_feature_categories]
    rows += [[*prefix, *reference.split(":", 1), "(unavailable)"] for reference in entity.unavailable_features]
    if entity.error:
        rows.append([*prefix, "*", "*", f"(error: {entity.error})"])
    return rows


def as_table(answer: Any) -> str:
    if isinstance(answer, CategoryResult):
        return table(
            [[answer.category, name, value] for name, value in answer.data.items()], ["category", "feature", "value"]
        )
    if isinstance(answer, BatchResult):
        rows = [row for entity in answer.results for row in feature_rows(entity, True)]
        return table(rows, ["entity_value", "category", "feature", "value"])
    if isinstance(answer, EntityFeatures):
        return table(feature_rows(answer, False), ["category", "feature", "value"])
    if isinstance(answer, Registry):
        rows = [
            [name, category.mode, category.owner or "", ", ".join(sorted(category.features)) or "(open)"]
            for name, category in answer.categories.items()
        ]
        return table(rows, ["category", "mode", "owner", "features"])
    if isinstance(answer, Readiness):
        rows = [
            [name, check.get("ok", ""), check.get("error") or check.get("backend") or ""]
            for name, check in answer.checks.items()
        ]
        return f"status: {answer.status}\n" + table(rows, ["check", "ok", "detail"])
    values = plain(answer)
    return table([[name, value] for name, value in values.items()], ["field", "value"])


def main(argv: Sequence[str] | None = None, *, stdin: TextIO | None = None) -> int:
    args = parser().parse_args(argv)
    stdin = stdin or sys.stdin
    try:
        with FeatureStoreClient(args.url, api_key=args.api_key, timeout=args.timeout) as client:
            answer, status = run(args, client, stdin)
    except ValidationError as exc:
        print(f"error: {exc}", file=sys.stderr)
        print(json.dumps(exc.errors, indent=2), file=sys.stderr)
        return 1
    except FeatureStoreError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except (ValueError, OSError) as exc:
        print(f"feature-store: {exc}", file=sys.stderr)
        return 2
    print(as_table(answer) if args.output == "table" else json.dumps(plain(answer), indent=2, ensure_ascii=False))
    return status


if __name__ == "__main__":
    sys.exit(main())

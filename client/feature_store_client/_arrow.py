"""Frames to bulk writes, sans I/O: a pandas DataFrame, an Arrow Table, RecordBatch or RecordBatchReader
(or an iterator of them) read in slices of the service's bulk-write maximum, each row turned into one
entity of the API's form, and the entities grouped into parts to send. pyarrow is imported only here,
when a frame is written, so the client works without it."""

import base64
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, time
from types import ModuleType
from typing import Any, Literal

from feature_store_client._bulk import DEFAULT_BATCH_WRITE_ENTITIES, encoded_entity, split_entities
from feature_store_client.models import EntityWriteResult, FrameProgress, FrameWriteResult, Limits, RowFailure

Nulls = Literal["omit", "null"]
Decimals = Literal["float", "string"]
COLUMN_SEPARATOR = ":"
"""Without `categories`, every column but the entity and event-time ones is named `category:feature`."""


class FrameError(ValueError):
    """A frame that cannot be loaded at all (nothing is sent): `code` is `missing_column`,
    `unknown_column`, `unsupported_type` or `not_a_frame`."""

    def __init__(self, code: str, message: str) -> None:
        super().__init__(f"{code}: {message}")
        self.code = code


class _Refused(Exception):
    """A value that must not be sent; its row fails with this code."""

    def __init__(self, code: str, detail: str) -> None:
        super().__init__(detail)
        self.code = code
        self.detail = detail


def require_arrow() -> ModuleType:
    try:
        import pyarrow
    except ImportError as exc:
        raise ImportError('writing frames needs pyarrow: pip install "feature-store-client[arrow]"') from exc
    return pyarrow


def record_batches(frame: Any) -> Iterator[Any]:
    """The frame's Arrow record batches, in order, never copied whole."""
    pa = require_arrow()
    if isinstance(frame, pa.RecordBatch):
        yield frame
    elif isinstance(frame, pa.Table):
        yield from frame.to_batches()
    elif isinstance(frame, pa.RecordBatchReader):
        yield from frame
    elif type(frame).__module__.startswith("pandas") and hasattr(frame, "columns"):
        yield from pa.Table.from_pandas(frame, preserve_index=False).to_batches()
    elif isinstance(frame, Iterable) and not isinstance(frame, str | bytes | Mapping):
        for item in frame:
            yield from record_batches(item)
    else:
        raise FrameError(
            "not_a_frame",
            f"expected a DataFrame, Table, RecordBatchReader or an iterator of them, got {type(frame).__name__}",
        )


def _utc_text(value: datetime) -> str:
    return (value.astimezone(UTC) if value.tzinfo else value.replace(tzinfo=UTC)).isoformat()


def _finite(value: float) -> float:
    if not math.isfinite(value):
        raise _Refused("invalid_number", f"{value} is not a finite number")
    return value


def converter(arrow_type: Any, decimals: Decimals) -> Callable[[Any], Any] | None:
    """How a value of an Arrow type, as pyarrow gives it in Python, becomes JSON (None: as it is);
    FrameError for a type with no JSON form."""
    pa = require_arrow()
    types = pa.types
    if types.is_dictionary(arrow_type):
        return converter(arrow_type.value_type, decimals)
    if types.is_integer(arrow_type) or types.is_boolean(arrow_type) or types.is_null(arrow_type):
        return None
    if types.is_string(arrow_type) or types.is_large_string(arrow_type) or types.is_string_view(arrow_type):
        return None
    if types.is_floating(arrow_type):
        return _finite
    if types.is_timestamp(arrow_type):
        return _utc_text
    if types.is_date(arrow_type) or types.is_time(arrow_type):
        return lambda value: value.isoformat()
    if types.is_duration(arrow_type):
        return lambda value: value.total_seconds()
    if types.is_decimal(arrow_type):
        return (lambda value: _finite(float(value))) if decimals == "float" else str
    if types.is_binary(arrow_type) or types.is_large_binary(arrow_type) or types.is_fixed_size_binary(arrow_type):
        return lambda value: base64.b64encode(value).decode("ascii")
    if types.is_list(arrow_type) or types.is_large_list(arrow_type) or types.is_fixed_size_list(arrow_type):
        element = converter(arrow_type.value_type, decimals)
        if element is None:
            return None
        return lambda value: [None if item is None else element(item) for item in value]
    if types.is_map(arrow_type):
        item = converter(arrow_type.item_type, decimals) or (lambda value: value)
        return lambda value: {str(key): None if val is None else item(val) for key, val in value}
    if types.is_struct(arrow_type):
        fields = {
            arrow_type.field(i).name: converter(arrow_type.field(i).type, decimals)
            for i in range(arrow_type.num_fields)
        }
        return lambda value: {
            name: val if val is None or fields[name] is None else fields[name](val)  # type: ignore[misc]
            for name, val in value.items()
        }
    raise FrameError("unsupported_type", f"no JSON form for Arrow type {arrow_type}")


def column_converter(column: Any, decimals: Decimals) -> Callable[[Any], Any] | None:
    """The column's converter; none for a float column whose values are all finite (checked at once)."""
    pa = require_arrow()
    if pa.types.is_floating(column.type):
        import pyarrow.compute as pc

        if pc.all(pc.is_finite(column)).as_py() is not False:
            return None
    return converter(column.type, decimals)


def _python_values(column: Any) -> list[Any]:
    """The column's values in Python; timestamps in microseconds, which Python's datetime holds."""
    pa = require_arrow()
    if pa.types.is_timestamp(column.type) and column.type.unit == "ns":
        column = column.cast(pa.timestamp("us", column.type.tz), safe=False)
    return column.to_pylist()


@dataclass(frozen=True)
class ColumnPlan:
    """Which column holds what: the entity value, the event time, and each category's features."""

    entity_column: str
    event_time_column: str | None
    categories: dict[str, list[tuple[str, str]]]
    """category -> [(feature, column)]"""

    @classmethod
    def of(
        cls,
        names: Sequence[str],
        entity_column: str,
        categories: Mapping[str, Sequence[str] | Mapping[str, str]] | None,
        event_time_column: str | None,
    ) -> "ColumnPlan":
        missing = [name for name in (entity_column, event_time_column) if name is not None and name not in names]
        if missing:
            raise FrameError("missing_column", f"columns {missing} are not in the input")
        plan: dict[str, list[tuple[str, str]]] = {}
        if categories is not None:
            for category, columns in categories.items():
                pairs = list(columns.items()) if isinstance(columns, Mapping) else [(name, name) for name in columns]
                missing += [column for _, column in pairs if column not in names]
                plan[str(category)] = pairs
        else:
            unknown = []
            for name in names:
                if name in (entity_column, event_time_column):
                    continue
                category, separator, feature = name.partition(COLUMN_SEPARATOR)
                if not (separator and category and feature):
                    unknown.append(name)
                    continue
                plan.setdefault(category, []).append((feature, name))
            if unknown:
                raise FrameError(
                    "unknown_column",
                    f"columns {unknown} are not named category{COLUMN_SEPARATOR}feature; rename them or give categories",
                )
        if missing:
            raise FrameError("missing_column", f"columns {sorted(set(missing))} are not in the input")
        if not plan:
            raise FrameError("missing_column", "no feature columns to write")
        return cls(entity_column, event_time_column, plan)


@dataclass
class Part:
    """Rows `first_row` up to `end_row` of the input: the entities to send (with their row numbers) and
    the rows that failed before sending."""

    first_row: int
    end_row: int
    rows: list[int] = field(default_factory=list)
    bodies: list[dict[str, Any]] = field(default_factory=list)
    failures: list[RowFailure] = field(default_factory=list)
    encoded: list[str] = field(default_factory=list)
    """The bodies' JSON text: encoded once, to measure and to send."""


def _entity_text(value: Any) -> str | None:
    """The entity value as the API takes it: text, or an integer's digits (pandas holds integer ids with
    gaps as floats: `10.0` is `10`); None when there is none."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    if value is None or isinstance(value, bool) or not isinstance(value, int | str):
        return None
    return str(value) or None


def _time_text(value: Any) -> str | None:
    if isinstance(value, datetime):
        return _utc_text(value)
    if isinstance(value, date | time):
        return value.isoformat()
    return None if value is None else str(value)


@dataclass(frozen=True)
class FrameOptions:
    nulls: Nulls = "omit"
    decimals: Decimals = "float"


def slice_rows(batch: Any, first_row: int, plan: ColumnPlan, options: FrameOptions) -> Part:
    """One slice of a record batch as entities, or the failure of each row that cannot be one."""
    names = batch.schema.names
    entities = batch.column(names.index(plan.entity_column)).to_pylist()
    times = None
    if plan.event_time_column is not None:
        times = _python_values(batch.column(names.index(plan.event_time_column)))
    columns = []
    for category, pairs in plan.categories.items():
        features = []
        for feature, name in pairs:
            column = batch.column(names.index(name))
            features.append((feature, name, _python_values(column), column_converter(column, options.decimals)))
        columns.append((category, features))
    send_nulls = options.nulls == "null"
    part = Part(first_row, first_row + batch.num_rows)
    for index, entity in enumerate(entities):
        row = first_row + index
        entity_value = _entity_text(entity)
        if entity_value is None:
            part.failures.append(
                RowFailure(row=row, error="missing_entity", detail=f"{plan.entity_column} holds no text or integer")
            )
            continue
        feature_list = []
        try:
            for category, features in columns:
                values: dict[str, Any] = {}
                for feature, name, column_values, convert in features:
                    value = column_values[index]
                    if value is None:
                        if send_nulls:
                            values[feature] = None
                    else:
                        try:
                            values[feature] = value if convert is None else convert(value)
                        except _Refused as refused:
                            raise _Refused(refused.code, f"{name}: {refused.detail}") from None
                if values:
                    feature_list.append({"category": category, "features": values})
        except _Refused as refused:
            part.failures.append(
                RowFailure(row=row, entity_value=entity_value, error=refused.code, detail=refused.detail)
            )
            continue
        if not feature_list:
            part.failures.append(
                RowFailure(
                    row=row, entity_value=entity_value, error="no_features", detail="every feature of this row is null"
                )
            )
            continue
        body: dict[str, Any] = {"entity_value": entity_value, "feature_list": feature_list}
        event_time = None if times is None else _time_text(times[index])
        if event_time is not None:
            body["meta"] = {"event_time": event_time}
        part.rows.append(row)
        part.bodies.append(body)
    return part


def split_part(part: Part, limits: Limits) -> list[Part]:
    """A slice in parts the service takes in one request; each row's failure goes with the part whose
    rows hold it, so a part's `end_row` is a safe place to resume from."""
    if not part.bodies:
        return [part]
    encoded = [encoded_entity(body) for body in part.bodies]
    groups = split_entities(part.bodies, limits, encoded)
    starts = [part.first_row] + [part.rows[group[0]] for group in groups[1:]]
    ends = [*starts[1:], part.end_row]
    parts = []
    for group, start, end in zip(groups, starts, ends, strict=True):
        parts.append(
            Part(
                start,
                end,
                [part.rows[index] for index in group],
                [part.bodies[index] for index in group],
                [failure for failure in part.failures if start <= failure.row < end],
                [encoded[index] for index in group],
            )
        )
    return parts


def frame_parts(
    frame: Any,
    plan_of: Callable[[Sequence[str]], ColumnPlan],
    limits: Limits,
    options: FrameOptions,
    skip_rows: int = 0,
) -> Iterator[Part]:
    """The frame's rows from `skip_rows` on, in parts to send, read a slice of the bulk-write maximum at a
    time; the column plan is made from the first batch's column names."""
    most = limits.max_batch_write_entities or DEFAULT_BATCH_WRITE_ENTITIES
    plan: ColumnPlan | None = None
    first_row = 0
    for batch in record_batches(frame):
        if plan is None:
            plan = plan_of(batch.schema.names)
            for pairs in plan.categories.values():
                for _, name in pairs:
                    converter(batch.schema.field(name).type, options.decimals)
        start = max(skip_rows - first_row, 0)
        for offset in range(start, batch.num_rows, most):
            piece = batch.slice(offset, most)
            yield from split_part(slice_rows(piece, first_row + offset, plan, options), limits)
        first_row += batch.num_rows


class FrameTally:
    """The answers of a frame's parts, taken in input order: counts, failed rows and progress."""

    def __init__(
        self,
        entity_type: str,
        skip_rows: int,
        on_progress: Callable[[FrameProgress], None] | None,
        keep_failures: bool,
    ) -> None:
        self.entity_type = entity_type
        self.skip_rows = skip_rows
        self.rows_done = skip_rows
        self.written = 0
        self.failed = 0
        self.failures: list[RowFailure] = []
        self.on_progress = on_progress
        self.keep_failures = keep_failures

    def add(self, part: Part, results: Sequence[EntityWriteResult]) -> None:
        failures = list(part.failures)
        written = 0
        for row, result in zip(part.rows, results, strict=True):
            if result.error is None:
                written += 1
            else:
                failures.append(
                    RowFailure(
                        row=row, entity_value=result.entity_value, error=result.error.error, detail=result.error.detail
                    )
                )
        failures.sort(key=lambda failure: failure.row)
        self.written += written
        self.failed += len(failures)
        if self.keep_failures:
            self.failures += failures
        self.rows_done = part.end_row
        if self.on_progress is not None:
            self.on_progress(FrameProgress(self.rows_done, written, len(failures), failures))

    def result(self, elapsed_seconds: float) -> FrameWriteResult:
        return FrameWriteResult(
            entity_type=self.entity_type,
            rows=self.rows_done - self.skip_rows,
            written=self.written,
            failed=self.failed,
            failures=self.failures,
            elapsed_seconds=elapsed_seconds,
        )

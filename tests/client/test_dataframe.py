"""`write_dataframe` against the real app: every Arrow type it converts reads back equal, and a row that
cannot be sent or that the service refuses fails alone, with its row number and code."""

import asyncio
import base64
import math
from collections.abc import Callable
from datetime import UTC, date, datetime, time, timedelta
from decimal import Decimal
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from feature_store_client import AsyncFeatureStoreClient, FeatureStoreClient, FrameError, FrameProgress
from tests.client.conftest import WRITER
from tests.conftest import AppClient

pa = pytest.importorskip("pyarrow")
pd = pytest.importorskip("pandas")

pytestmark = pytest.mark.backends("sqlite", "dynamodb")

REGISTRY = """
categories:
  typed:
    mode: strict
    features:
      count: {type: int}
      score: {type: float}
      flag: {type: bool}
      name: {type: string}
      seen_at: {type: string}
      day: {type: string}
      price: {type: float}
      price_text: {type: string}
      ids: {type: "list<int>"}
      profile: {type: map}
      maybe: {type: int, nullable: true}
      blob: {type: string}
      wait: {type: float}
      clock: {type: string}
      naive: {type: string}
      counts: {type: map}
      tier: {type: string}
  other:
    features:
      level: {type: int}
"""


@pytest.fixture
def registry_file(tmp_path: Path) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(REGISTRY)
    return path


@pytest.fixture
def store(make_client: Callable[..., AppClient], registry_file: Path) -> FeatureStoreClient:
    app_client = make_client(feature_registry_file=str(registry_file), max_batch_write_entities=3)
    return FeatureStoreClient(http_client=cast(httpx.Client, app_client))


def typed_table(rows: int = 4) -> Any:
    return pa.table(
        {
            "user": [f"u{i}" for i in range(rows)],
            "typed:count": pa.array(range(rows), pa.int64()),
            "typed:score": pa.array([i / 2 for i in range(rows)], pa.float64()),
            "typed:flag": [i % 2 == 0 for i in range(rows)],
            "typed:name": [f"name-{i}" for i in range(rows)],
            "typed:seen_at": pa.array(
                [datetime(2026, 1, 2, 3, 4, 5, 600000, tzinfo=UTC)] * rows, pa.timestamp("ns", tz="Europe/Paris")
            ),
            "typed:day": pa.array([date(2026, 1, 1) + timedelta(days=i) for i in range(rows)], pa.date32()),
            "typed:price": pa.array([Decimal("12.50")] * rows, pa.decimal128(10, 2)),
            "typed:ids": [[i, i + 1] for i in range(rows)],
            "typed:profile": [{"tier": "gold", "visits": i} for i in range(rows)],
            "typed:maybe": pa.array([None if i % 2 else i for i in range(rows)], pa.int64()),
            "typed:blob": pa.array([bytes([i % 256, 255]) for i in range(rows)], pa.binary()),
            "typed:wait": pa.array([timedelta(seconds=i, milliseconds=500) for i in range(rows)], pa.duration("ns")),
            "typed:clock": pa.array([time(9, 30, i % 60) for i in range(rows)], pa.time64("us")),
            "typed:naive": pa.array([datetime(2026, 1, 2, 3, 4, 5)] * rows, pa.timestamp("ms")),
            "typed:counts": pa.array([[("a", i), ("b", 2)] for i in range(rows)], pa.map_(pa.string(), pa.int64())),
            "typed:tier": pa.array(["gold" if i % 2 else "silver" for i in range(rows)]).dictionary_encode(),
            "other:level": pa.array(range(rows), pa.int32()),
        }
    )


def expected(i: int) -> dict[str, object]:
    values: dict[str, object] = {
        "count": i,
        "score": i / 2,
        "flag": i % 2 == 0,
        "name": f"name-{i}",
        "seen_at": "2026-01-02T03:04:05.600000+00:00",
        "day": (date(2026, 1, 1) + timedelta(days=i)).isoformat(),
        "price": 12.5,
        "ids": [i, i + 1],
        "profile": {"tier": "gold", "visits": i},
        "blob": base64.b64encode(bytes([i % 256, 255])).decode(),
        "wait": i + 0.5,
        "clock": f"09:30:{i % 60:02d}",
        "naive": "2026-01-02T03:04:05+00:00",
        "counts": {"a": i, "b": 2},
        "tier": "gold" if i % 2 else "silver",
    }
    if i % 2 == 0:
        values["maybe"] = i
    return values


def test_every_type_round_trips_from_a_table_in_parts(store: FeatureStoreClient) -> None:
    progress: list[FrameProgress] = []
    result = store.write_dataframe(typed_table(7), entity_column="user", source=WRITER, on_progress=progress.append)
    assert (result.rows, result.written, result.failed, result.failures) == (7, 7, 0, [])
    assert [step.rows_done for step in progress] == [3, 6, 7], "parts of max_batch_write_entities, in order"
    for i in range(7):
        assert store.read_category(f"u{i}", "typed").data == expected(i)
        assert store.read_category(f"u{i}", "other").data == {"level": i}
    assert result.elapsed_seconds > 0


def test_pandas_frames_with_a_category_mapping_nulls_and_decimals_as_text(store: FeatureStoreClient) -> None:
    frame = pd.DataFrame(
        {
            "user_id": [10, 11],
            "n": [1, 2],
            "nullable": pd.array([None, 5], dtype="Int64"),
            "text_price": [Decimal("1.10"), Decimal("2.20")],
            "when": pd.to_datetime(["2026-03-01T00:00:00Z", "2026-03-02T00:00:00Z"]),
        }
    )
    result = store.write_dataframe(
        iter([frame.iloc[:1], frame.iloc[1:]]),
        entity_column="user_id",
        source=WRITER,
        categories={"typed": {"count": "n", "maybe": "nullable", "price_text": "text_price"}},
        event_time_column="when",
        nulls="null",
        decimals="string",
    )
    assert (result.written, result.failed) == (2, 0)
    first = store.read_category("10", "typed")
    assert first.data == {"count": 1, "maybe": None, "price_text": "1.10"}
    assert first.metadata.event_time == datetime(2026, 3, 1, tzinfo=UTC)
    assert store.read_category("11", "typed").data == {"count": 2, "maybe": 5, "price_text": "2.20"}


def test_bad_rows_fail_alone_with_their_codes(store: FeatureStoreClient) -> None:
    table = pa.table(
        {
            "user": ["a", None, "c", "d", "e", "f"],
            "typed:score": [1.0, 2.0, math.nan, math.inf, 5.0, None],
            "typed:count": pa.array([1, 2, 3, 4, None, None], pa.int64()),
            "other:level": pa.array(["x", "2", "3", "4", "5", None]),
        }
    )
    result = store.write_dataframe(table, entity_column="user", source=WRITER, keep_failures=True)
    codes = {failure.row: (failure.entity_value, failure.error) for failure in result.failures}
    assert codes == {
        0: ("a", "validation_error"),
        1: (None, "missing_entity"),
        2: ("c", "invalid_number"),
        3: ("d", "invalid_number"),
        4: ("e", "validation_error"),
        5: ("f", "no_features"),
    }
    assert "typed:score" in str(result.failures[2].detail)
    assert (result.rows, result.written, result.failed) == (6, 0, 6)


def test_a_row_over_the_size_limit_fails_and_the_rest_is_written(
    make_client: Callable[..., AppClient], registry_file: Path
) -> None:
    app_client = make_client(feature_registry_file=str(registry_file), max_batch_write_entities=2, max_body_bytes=1000)
    store = FeatureStoreClient(http_client=cast(httpx.Client, app_client))
    huge = list(range(30_000))
    table = pa.table({"user": ["a", "b", "c"], "typed:ids": [[1], huge, [3]]})
    result = store.write_dataframe(table, entity_column="user", source=WRITER)
    assert [(failure.row, failure.error) for failure in result.failures] == [(1, "payload_too_large")]
    assert result.written == 2 and store.read_category("c", "typed").data == {"ids": [3]}


def test_frames_that_cannot_be_loaded_are_refused_before_anything_is_sent(store: FeatureStoreClient) -> None:
    with pytest.raises(FrameError, match="missing_column"):
        store.write_dataframe(typed_table(), entity_column="nobody")
    with pytest.raises(FrameError, match="unknown_column"):
        store.write_dataframe(pa.table({"user": ["a"], "age": [1]}), entity_column="user", source=WRITER)
    with pytest.raises(FrameError, match="missing_column"):
        store.write_dataframe(
            pa.table({"user": ["a"]}), entity_column="user", source=WRITER, categories={"typed": ["count"]}
        )
    with pytest.raises(FrameError, match="not_a_frame"):
        store.write_dataframe(42, entity_column="user", source=WRITER)


def test_skip_rows_resumes_after_the_rows_already_answered(store: FeatureStoreClient) -> None:
    result = store.write_dataframe(typed_table(7), entity_column="user", source=WRITER, skip_rows=5)
    assert (result.rows, result.written) == (2, 2)
    assert store.read_batch(["u4", "u5", "u6"], ["typed:count"]).results[0].values == {}


def test_the_async_client_writes_frames(make_client: Callable[..., AppClient], registry_file: Path) -> None:
    app_client = make_client(feature_registry_file=str(registry_file), max_batch_write_entities=2)

    async def scenario() -> None:
        transport = httpx.ASGITransport(app=app_client.app)
        async with AsyncFeatureStoreClient("http://app", transport=transport) as store:
            reader = pa.RecordBatchReader.from_batches(typed_table(5).schema, typed_table(5).to_batches())
            result = await store.write_dataframe(reader, entity_column="user", source=WRITER, concurrency=2)
            assert (result.rows, result.written, result.failed) == (5, 5, 0)
            for i in range(5):
                assert (await store.read_category(f"u{i}", "typed")).data == expected(i)

    asyncio.run(scenario())


@pytest.mark.backends("sqlite")  # 1,200 rows over a socket: the store is covered in-process above
def test_over_a_socket(start_service, registry_file: Path) -> None:
    server = start_service(FEATURE_REGISTRY_FILE=str(registry_file))
    with FeatureStoreClient(server.url) as store:
        result = store.write_dataframe(
            typed_table(1200).to_reader(), entity_column="user", source=WRITER, concurrency=4
        )
        assert (result.rows, result.written, result.failed) == (1200, 1200, 0)
        assert store.read_category("u1199", "typed").data == expected(1199)


def test_integer_ids_held_as_floats_by_pandas_are_written_as_integers(store: FeatureStoreClient) -> None:
    frame = pd.DataFrame({"user_id": [1.0, None, 3.0], "typed:count": [1, 2, 3]})
    result = store.write_dataframe(frame, entity_column="user_id", source=WRITER)
    assert [(failure.row, failure.error) for failure in result.failures] == [(1, "missing_entity")]
    assert store.read_category("3", "typed").data == {"count": 3}

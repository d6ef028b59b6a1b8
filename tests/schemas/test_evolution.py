"""Schema evolution, checked with Apache's `avro` (its reader and compatibility checker), not with
the fastavro that writes the events: `schemas/feature_trigger.avsc` must stay backward compatible
(consumers on it read events written with any released version) and forward compatible (consumers
still on a released version read events written with it) with every version kept in
`schemas/history/`. Releasing a schema change means adding the new version there."""

import io
import json
from pathlib import Path
from typing import Any

import avro.schema
import fastavro
import pytest
from avro.compatibility import ReaderWriterCompatibilityChecker, SchemaCompatibilityType
from avro.io import BinaryDecoder, DatumReader

from components.events.events import DELETED_EVENT_TYPE, EVENT_TYPE, SCHEMA_PATH, feature_available_event


def version(path: Path) -> int:
    """`feature_trigger.v3.avsc` -> 3."""
    return int(path.stem.rpartition(".v")[2])


HISTORY = sorted((SCHEMA_PATH.parent / "history").glob("feature_trigger.v*.avsc"), key=version)
FIXTURES = Path(__file__).resolve().parent / "fixtures"


def compatibility(reader: str, writer: str) -> tuple[bool, list[str]]:
    """Whether a consumer on `reader` reads what `writer` wrote, and avro's reasons if not."""
    result = ReaderWriterCompatibilityChecker().get_compatibility(avro.schema.parse(reader), avro.schema.parse(writer))
    return result.compatibility is SchemaCompatibilityType.compatible, [str(m) for m in result.messages]


def problems(candidate: str, released: list[Path]) -> list[str]:
    """What makes `candidate` unfit to replace the released versions, in both directions."""
    found = []
    for path in released:
        backward, why_not = compatibility(reader=candidate, writer=path.read_text())
        if not backward:
            found.append(f"cannot read events written with {path.name}: {why_not}")
        forward, why_not = compatibility(reader=path.read_text(), writer=candidate)
        if not forward:
            found.append(f"consumers on {path.name} cannot read its events: {why_not}")
    return found


def avro_decode(body: bytes, *, writer: str, reader: str) -> Any:
    """An Avro body (the wire format without its 5-byte header) read by Apache's reader."""
    return DatumReader(avro.schema.parse(writer), avro.schema.parse(reader)).read(BinaryDecoder(io.BytesIO(body)))


def test_the_released_schema_is_kept() -> None:
    assert [path.name for path in HISTORY][:1] == ["feature_trigger.v1.avsc"]
    assert [version(path) for path in HISTORY] == list(range(1, len(HISTORY) + 1)), "versions 1, 2, ... in order"


@pytest.mark.parametrize("released", HISTORY, ids=lambda path: path.name)
def test_the_current_schema_is_backward_and_forward_compatible_with_every_release(released: Path) -> None:
    assert problems(SCHEMA_PATH.read_text(), [released]) == []


@pytest.mark.parametrize(
    ("fixture", "backward", "forward"),
    [
        ("field_without_default.avsc", False, True),  # new readers cannot fill the field for old events
        ("field_removed.avsc", True, False),  # old readers miss a field that had no default
        ("type_changed.avsc", False, False),
    ],
)
def test_an_incompatible_change_is_caught(fixture: str, backward: bool, forward: bool) -> None:
    candidate = (FIXTURES / fixture).read_text()
    found = problems(candidate, HISTORY)
    assert found, f"{fixture} passed the check"
    assert any("cannot read events written" in problem for problem in found) is not backward
    assert any("cannot read its events" in problem for problem in found) is not forward


def test_a_new_field_with_a_default_passes() -> None:
    assert problems((FIXTURES / "field_with_default.avsc").read_text(), HISTORY) == []


def reader_fields(schema: str) -> set[str]:
    return {field["name"] for field in json.loads(schema)["fields"]}


@pytest.mark.parametrize("actor", [None, "sub:system:serviceaccount:ml:ranker client:airflow"])
def test_the_events_the_service_builds_decode_with_apache_avro_under_every_release(actor: str | None) -> None:
    """Each release reads the fields it knows (a consumer on v1 skips the actor)."""
    event = feature_available_event(
        entity_type="account_id",
        entity_value="acct-9",
        category="user_features",
        features=["age", "city"],
        compute_id="job-1",
        timestamp_iso="2026-01-01T00:00:00.000000+00:00",
        timestamp_epoch=0.0,
        actor=actor,
    )
    current = SCHEMA_PATH.read_text()
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(json.loads(current)), event.payload)
    for reader in [current, *(path.read_text() for path in HISTORY)]:
        known = {name: value for name, value in event.payload.items() if name in reader_fields(reader)}
        assert avro_decode(body.getvalue(), writer=current, reader=reader) == known


@pytest.mark.parametrize(
    ("schema", "field", "event_type"),
    [
        ("feature_trigger.v1.avsc", "actor", EVENT_TYPE),
        ("feature_trigger.v2.avsc", "version", EVENT_TYPE),
        ("feature_trigger.v3.avsc", "erased_versions", DELETED_EVENT_TYPE),
    ],
)
def test_events_written_before_a_field_read_it_as_null(schema: str, field: str, event_type: str) -> None:
    """An event written with the schema before `field` existed reads it as null with the current one."""
    writer = (SCHEMA_PATH.parent / "history" / schema).read_text()
    payload = feature_available_event(
        entity_type="account_id",
        entity_value="acct-9",
        category="user_features",
        features=["age"],
        compute_id=None,
        timestamp_iso="2026-01-01T00:00:00.000000+00:00",
        timestamp_epoch=0.0,
        event_type=event_type,
    ).payload
    del payload[field]
    body = io.BytesIO()
    fastavro.schemaless_writer(body, fastavro.parse_schema(json.loads(writer)), payload)
    assert avro_decode(body.getvalue(), writer=writer, reader=SCHEMA_PATH.read_text()) == payload | {field: None}

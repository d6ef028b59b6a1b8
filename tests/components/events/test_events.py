"""The event contract: the schema file, the event builder, the start-up check and the log sink."""

import json
import logging
import time
from pathlib import Path
from typing import Any

import pytest
from fastavro.validation import validate

from components.events.events import SCHEMA_PATH, LogSink, feature_available_event, load_event_schema
from core.exceptions import ConfigurationError

# Storage-agnostic: the embedded store serves these as well as any backend would.
pytestmark = pytest.mark.backends("sqlite")

SEED_SCHEMA: dict[str, Any] = {
    "type": "record",
    "name": "FeatureAvailabilityEvent",
    "namespace": "com.featurestore.events",
    "fields": [
        {"name": "event_id", "type": "string"},
        {"name": "event_type", "type": "string"},
        {"name": "timestamp", "type": "string"},
        {"name": "entity_type", "type": "string"},
        {"name": "entity_id", "type": "string"},
        {"name": "resource_type", "type": "string"},
        {"name": "resource_name", "type": "string"},
        {"name": "compute_id", "type": "string"},
        {"name": "features", "type": {"type": "array", "items": "string"}},
    ],
}


def test_schema_file_is_the_seed_record_and_optional_fields_after_it() -> None:
    schema = json.loads(SCHEMA_PATH.read_text())
    seed_fields = len(SEED_SCHEMA["fields"])
    assert {**schema, "fields": schema["fields"][:seed_fields]} == SEED_SCHEMA
    added = schema["fields"][seed_fields:]
    assert [field["name"] for field in added] == ["actor", "version", "erased_versions"]
    assert all(field["default"] is None and field["type"][0] == "null" for field in added)


def test_builder_fills_every_field_and_fits_the_schema() -> None:
    event = feature_available_event(
        entity_type="account_id",
        entity_value="acct-1",
        category="credit_features",
        features=["score", "limit"],
        compute_id=None,
        timestamp_iso="2026-01-01T00:00:00.000000+00:00",
        timestamp_epoch=1767225600.0,
    )
    assert event.key == "account_id:acct-1"
    assert event.payload == {
        "event_id": event.event_id,
        "event_type": "feature_available",
        "timestamp": "2026-01-01T00:00:00.000000+00:00",
        "entity_type": "account_id",
        "entity_id": "acct-1",
        "resource_type": "feature",
        "resource_name": "credit_features",
        "compute_id": "",
        "features": ["score", "limit"],
        "actor": None,
        "version": None,
        "erased_versions": None,
    }
    assert validate(event.payload, load_event_schema().parsed, raise_errors=True)


@pytest.mark.parametrize(
    "schema",
    [
        {**SEED_SCHEMA, "fields": SEED_SCHEMA["fields"][:-1] + [{"name": "extra", "type": "string"}]},
        {
            **SEED_SCHEMA,
            "fields": [
                {**field, "type": "int"} if field["name"] == "features" else field for field in SEED_SCHEMA["fields"]
            ],
        },
        {"type": "record", "name": "Broken", "fields": [{"name": "x", "type": "no_such_type"}]},
    ],
    ids=["missing-field", "wrong-type", "unparseable"],
)
def test_a_schema_that_cannot_carry_our_events_stops_start_up(tmp_path: Path, schema: dict) -> None:
    path = tmp_path / "feature_trigger.avsc"
    path.write_text(json.dumps(schema))
    with pytest.raises(ConfigurationError):
        load_event_schema(path)


def test_log_sink_writes_one_line_per_event(client, caplog) -> None:
    caplog.set_level(logging.INFO, logger="feature_store.events")
    body = {
        "meta": {"source": "prediction_service", "compute_id": "job-9"},
        "data": {
            "entity_value": "user-9",
            "feature_list": [
                {"category": "user_features", "features": {"age": 1, "city": "x"}},
                {"category": "credit_features", "features": {"score": 2}},
            ],
        },
    }
    assert client.post("/api/v1/items", json=body).status_code == 200
    deadline = time.monotonic() + 5
    while len([r for r in caplog.records if r.name == "feature_store.events"]) < 2:
        assert time.monotonic() < deadline, "events were not delivered to the log"
        time.sleep(0.01)
    events = sorted(
        (r.event for r in caplog.records if r.name == "feature_store.events"), key=lambda e: e["resource_name"]
    )
    assert [event["resource_name"] for event in events] == ["credit_features", "user_features"]
    assert events[1]["features"] == ["age", "city"]
    assert events[1]["entity_type"] == "bright_uid"
    assert events[1]["entity_id"] == "user-9"
    assert events[1]["compute_id"] == "job-9"
    assert events[1]["event_type"] == "feature_available"
    assert events[1]["resource_type"] == "feature"
    # Delivered events leave the outbox right after the sink confirms them.
    while client.run(client.app.state.runtime.store.outbox_stats).pending:
        assert time.monotonic() < deadline, "delivered events stayed in the outbox"
        time.sleep(0.01)
    assert isinstance(LogSink().state(), dict)

"""Per-request metrics and log lines: names and tags read back from a real statsd after a known
sequence of requests; the JSON line's shape; the request id in every line of its request."""

import io
import json
import logging
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest
from fastapi.testclient import TestClient

from core.logging import HANDLER_NAME
from devservers import ServiceProcess
from tests.factories import read_body, write_body

# Storage-agnostic: the embedded store serves these as well as any backend would.
pytestmark = pytest.mark.backends("sqlite")

ITEM = "-api-v1-get-item-entity_value-category"
"""How Etsy statsd stores the route template /api/v1/get/item/{entity_value}/{category} in a key."""


class LogLines:
    """What the service's own log handler wrote, one parsed JSON object per line."""

    def __init__(self) -> None:
        self.stream = io.StringIO()

    def lines(self) -> list[dict]:
        return [json.loads(line) for line in self.stream.getvalue().splitlines()]

    def of(self, logger: str) -> list[dict]:
        return [line for line in self.lines() if line["logger"] == logger]


def service_handler() -> logging.StreamHandler:
    """The handler the service's logging set up on the root logger."""
    handler = next(handler for handler in logging.getLogger().handlers if handler.get_name() == HANDLER_NAME)
    assert isinstance(handler, logging.StreamHandler)
    return handler


@pytest.fixture
def json_client(make_client: Callable[..., TestClient]) -> Callable[..., tuple[TestClient, LogLines]]:
    def start(**overrides: object) -> tuple[TestClient, LogLines]:
        client = make_client(log_format="json", **overrides)
        captured = LogLines()
        service_handler().setStream(captured.stream)
        return client, captured

    return start


@pytest.mark.backends("sqlite")
def test_known_requests_give_known_metrics(json_client, statsd) -> None:
    """Store calls are named per backend (`sqlite.read`); everything else is the same on every backend."""
    client, _ = json_client(**statsd.settings, outbox_gauge_seconds=0.05)
    assert client.post("/api/v1/items", json=write_body("u-1")).status_code == 200
    assert client.get("/api/v1/get/item/u-1/user_features").status_code == 200
    assert client.get("/api/v1/get/item/u-2/user_features").status_code == 404
    assert client.get("/api/v1/get/item/u-1/user_features?entity_type=account_id").status_code == 404
    many = client.post("/api/v1/get/items", json=read_body("u-1", "user_features:age", "credit_features:*", "nope:*"))
    assert many.json()["unavailable_feature_categories"] == ["credit_features", "nope"]
    batch = {"meta": {}, "data": {"entity_values": ["u-1", "u-3"], "feature_list": ["user_features:*"]}}
    assert client.post("/api/v1/get/items/batch", json=batch).status_code == 200
    assert client.get("/api/v1/no/such/path").status_code == 404
    assert client.request("BREW", "/api/v1/items").status_code == 405

    get = f"endpoint={ITEM};method=GET"
    expected_counters = {
        "http.request.count;endpoint=-api-v1-items;method=POST;status=200": 1,
        "http.response.200;endpoint=-api-v1-items;method=POST;status=200": 1,
        f"http.request.count;{get};status=200": 1,
        f"http.response.200;{get};status=200": 1,
        f"http.request.count;{get};status=404": 2,
        f"http.response.404;{get};status=404": 2,
        "http.request.count;endpoint=-api-v1-get-items;method=POST;status=200": 1,
        "http.response.200;endpoint=-api-v1-get-items;method=POST;status=200": 1,
        "http.request.count;endpoint=-api-v1-get-items-batch;method=POST;status=200": 1,
        "http.response.200;endpoint=-api-v1-get-items-batch;method=POST;status=200": 1,
        "http.request.count;endpoint=unmatched;method=GET;status=404": 1,
        "http.response.404;endpoint=unmatched;method=GET;status=404": 1,
        "http.request.count;endpoint=-api-v1-items;method=OTHER;status=405": 1,
        "http.response.405;endpoint=-api-v1-items;method=OTHER;status=405": 1,
        "read.unavailable_category;entity_type=bright_uid": 4,
        "read.unavailable_category;entity_type=account_id": 1,
        "log.publish;outcome=delivered": 1,
    }
    counters = statsd.wait_for("counters", expected_counters)
    assert counters == expected_counters

    timers = statsd.wait_for("timers", {"sqlite.delete_events": 1})
    samples = {
        key: len(values) for key, values in timers.items() if not key.startswith("sqlite.") or "entity_type" in key
    }
    assert samples == {
        "http.request.duration;endpoint=-api-v1-items;method=POST;status=200": 1,
        f"http.request.duration;{get};status=200": 1,
        f"http.request.duration;{get};status=404": 2,
        "http.request.duration;endpoint=-api-v1-get-items;method=POST;status=200": 1,
        "http.request.duration;endpoint=-api-v1-get-items-batch;method=POST;status=200": 1,
        "http.request.duration;endpoint=unmatched;method=GET;status=404": 1,
        "http.request.duration;endpoint=-api-v1-items;method=OTHER;status=405": 1,
        "write.multi_category;entity_type=bright_uid": 1,
        "sqlite.write;entity_type=bright_uid": 1,
        "read.single_item;entity_type=bright_uid": 2,
        "read.single_item;entity_type=account_id": 1,
        "read.multi_category;entity_type=bright_uid": 1,
        "sqlite.read;entity_type=bright_uid": 3,
        "sqlite.read;entity_type=account_id": 1,
        "read.batch;entity_type=bright_uid": 1,
        "sqlite.read_batch;entity_type=bright_uid": 1,
        # Each category served, once per read: the single read, the many-feature read, u-1 of the batch.
        "read.feature_age_seconds;category=user_features;entity_type=bright_uid": 3,
    }
    gauges = {"outbox.backlog": 0, "outbox.oldest_pending_age_seconds": 0, "outbox.dead_letters": 0}
    assert statsd.wait_for("gauges", gauges) == gauges


@pytest.mark.backends("dynamodb")
def test_dynamodb_calls_are_timed_by_name(json_client, statsd) -> None:
    client, _ = json_client(**statsd.settings)
    assert client.post("/api/v1/items", json=write_body("u-1")).status_code == 200
    assert client.get("/api/v1/get/item/u-1/user_features").status_code == 200
    assert (
        client.post("/api/v1/get/items", json=read_body("u-1", "user_features:age", "credit_features:*")).status_code
        == 200
    )
    expected = {
        # A category this process has not written: its version read first, then one transaction.
        "dynamodb.read_versions;entity_type=bright_uid": 1,
        "dynamodb.transact_write_items;entity_type=bright_uid": 1,
        "dynamodb.get_item;entity_type=bright_uid": 1,
        "dynamodb.batch_get_item": 2,
    }
    timers = statsd.wait_for("timers", expected)
    assert {key: len(timers.get(key, [])) for key in expected} == expected
    assert statsd.wait_for("timers", {"dynamodb.outbox_delete": 1})


@pytest.mark.backends("sqlite")
def test_store_errors_are_counted_per_call(json_client, statsd, monkeypatch) -> None:
    import sqlite3

    from components.features.store.sqlite import SQLiteStore

    client, _ = json_client(**statsd.settings)

    def locked(self):
        raise sqlite3.OperationalError("database is locked")

    monkeypatch.setattr(SQLiteStore, "_connection", property(locked))
    assert client.get("/api/v1/get/item/u-1/user_features").status_code == 503
    expected = {
        "sqlite.read.error;entity_type=bright_uid;error=StoreUnavailable": 1,
        "read.single_item.error;entity_type=bright_uid;error=StoreUnavailable": 1,
        f"http.response.503;endpoint={ITEM};method=GET;status=503": 1,
    }
    counters = statsd.wait_for("counters", expected)
    assert {key: counters.get(key) for key in expected} == expected


def test_one_json_line_per_request_with_its_fields(json_client) -> None:
    client, logs = json_client()
    secret_value = "feature-value-never-logged"
    client.post("/api/v1/items", json=write_body("u-1", {"user_features": {"city": secret_value}}))
    response = client.post(
        "/api/v1/get/items",
        json=read_body("u-1", "user_features:city", "credit_features:*", "nope:*"),
        headers={"X-Request-ID": "read-1"},
    )
    assert response.status_code == 200
    access = [line for line in logs.of("feature_store.access") if line["request_id"] == "read-1"]
    assert len(access) == 1
    line = access[0]
    assert set(line) == {
        "timestamp",
        "level",
        "logger",
        "message",
        "request_id",
        "method",
        "route",
        "status",
        "duration_ms",
        "entity_type",
        "categories",
    }
    assert line["level"] == "INFO"
    assert (line["method"], line["route"], line["status"]) == ("POST", "/api/v1/get/items", 200)
    assert line["entity_type"] == "bright_uid"
    assert line["categories"] == ["credit_features", "user_features"]
    assert isinstance(line["duration_ms"], float)
    assert secret_value not in logs.stream.getvalue()
    assert secret_value in response.text


def test_request_id_reaches_lines_logged_in_the_threadpool(json_client) -> None:
    client, logs = json_client()

    def blocking_route() -> dict:
        logging.getLogger("feature_store.test").warning("inside a worker thread")
        return {}

    client.app.add_api_route("/test/blocking", blocking_route)
    assert client.get("/test/blocking", headers={"X-Request-ID": "thread-1"}).status_code == 200
    inside = logs.of("feature_store.test")
    assert [line["request_id"] for line in inside] == ["thread-1"]
    assert [line["route"] for line in logs.of("feature_store.access") if line["request_id"] == "thread-1"] == [
        "/test/blocking"
    ]


def test_unexpected_error_is_logged_and_counted_as_500(json_client, statsd) -> None:
    client, logs = json_client(**statsd.settings)

    def broken_route() -> dict:
        raise RuntimeError("bug")

    client.app.add_api_route("/test/broken", broken_route)
    assert client.get("/test/broken", headers={"X-Request-ID": "bug-1"}).status_code == 500
    mine = [(line["logger"], line.get("status")) for line in logs.lines() if line["request_id"] == "bug-1"]
    assert mine == [("feature_store.access", 500), ("feature_store.errors", None)]
    key = "http.response.500;endpoint=-test-broken;method=GET;status=500"
    assert statsd.wait_for("counters", {key: 1})[key] == 1


def test_relayed_events_carry_no_request_id(json_client) -> None:
    client, logs = json_client(outbox_poll_seconds=0.05)
    client.post("/api/v1/items", json=write_body("u-1"), headers={"X-Request-ID": "write-1"})
    deadline = time.monotonic() + 5
    while not logs.of("feature_store.events") and time.monotonic() < deadline:
        time.sleep(0.02)
    events = logs.of("feature_store.events")
    assert [line["request_id"] for line in events] == ["-"]


def test_slow_request_is_a_warning_and_a_counter(json_client, statsd) -> None:
    client, logs = json_client(**statsd.settings, slow_request_ms=0.001)
    client.get("/api/v1/health", headers={"X-Request-ID": "slow-1"})
    [line] = [line for line in logs.of("feature_store.access") if line["request_id"] == "slow-1"]
    assert (line["level"], line["message"], line["slow_request_ms"]) == ("WARNING", "slow request", 0.001)
    key = "http.request.slow;endpoint=-api-v1-health;method=GET;status=200"
    assert statsd.wait_for("counters", {key: 1})[key] == 1


def test_development_logs_readable_lines(make_client, capsys) -> None:
    client = make_client(environment="development")
    stream = io.StringIO()
    service_handler().setStream(stream)
    client.get("/api/v1/health", headers={"X-Request-ID": "dev-1"})
    [line] = [line for line in stream.getvalue().splitlines() if "request_id=dev-1" in line]
    assert "[feature_store.access] request" in line
    assert "route=/api/v1/health status=200" in line
    assert not line.startswith("{")


def test_uvicorn_writes_one_json_line_per_request(tmp_path: Path) -> None:
    """The real server, started like `make run`: uvicorn's own access log is gone, ours is the only one."""
    env = {"SQLITE_PATH": str(tmp_path / "f.db"), "LOG_FORMAT": "json", "STORE_BACKEND": "sqlite"}
    server = ServiceProcess(env, tmp_path)
    try:
        response = httpx.get(f"{server.url}/api/v1/get/item/u/user_features", headers={"X-Request-ID": "one-1"})
        assert response.status_code == 404
    finally:
        server.stop()
    lines = [json.loads(line) for line in server.log_path.read_text().splitlines()]
    assert not [line for line in lines if line["logger"] == "uvicorn.access"]
    mine = [line for line in lines if line["request_id"] == "one-1"]
    assert [(line["logger"], line["route"], line["status"]) for line in mine] == [
        ("feature_store.access", "/api/v1/get/item/{entity_value}/{category}", 404)
    ]
    uvicorn_lines = [line for line in lines if line["logger"] == "uvicorn.error"]
    assert uvicorn_lines, "uvicorn's own lines go through the service's handler"
    assert not [line for line in uvicorn_lines if "color_message" in line]

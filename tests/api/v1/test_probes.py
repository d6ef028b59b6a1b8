import logging
import time

import pytest

from components.features.store.base import OnlineStore
from core.exceptions import StoreUnavailable
from tests.conftest import AppClient

# Storage-agnostic but for the probes that reach the store (marked): the embedded store serves the rest.
pytestmark = pytest.mark.backends("sqlite")


def test_health_and_live(client: AppClient) -> None:
    for path in ("/api/v1/health", "/api/v1/live"):
        response = client.get(path)
        assert response.status_code == 200
        body = response.json()
        assert body["status"] == "healthy"
        assert body["timestamp"].endswith("+00:00")
        assert response.headers["x-request-id"]


def test_health_does_not_touch_the_store(client: AppClient, monkeypatch) -> None:
    store: OnlineStore = client.app.state.runtime.store

    def broken(*args, **kwargs):
        raise AssertionError("health touched the store")

    for name in ("read", "check", "initialise"):
        monkeypatch.setattr(store, name, broken)
    assert client.get("/api/v1/health").status_code == 200


@pytest.mark.backends("sqlite", "dynamodb")
def test_health_reports_the_last_readiness_check_and_the_configured_tables(client: AppClient, monkeypatch) -> None:
    runtime = client.app.state.runtime
    settings = runtime.settings
    body = client.get("/api/v1/health").json()
    assert body["dynamodb_connection"] is None, "no readiness check has run yet"
    if settings.store_backend == "dynamodb":
        assert body["tables_available"] == [settings.dynamodb_table_bright_uid, settings.dynamodb_table_account_id]
    else:
        assert body["tables_available"] == [str(settings.sqlite_path)]

    def broken() -> None:
        raise StoreUnavailable("disk gone")

    with monkeypatch.context() as patch:
        patch.setattr(runtime.store, "check", broken)
        assert client.get("/api/v1/ready").status_code == 503
    assert client.get("/api/v1/health").json()["dynamodb_connection"] is False
    assert client.get("/api/v1/ready").status_code == 200
    assert client.get("/api/v1/health").json()["dynamodb_connection"] is True


@pytest.mark.backends("sqlite", "dynamodb")
def test_ready_reports_store_and_events(client: AppClient) -> None:
    deadline = time.monotonic() + 5
    while "pending" not in (body := client.get("/api/v1/ready").json())["checks"]["events"]:
        assert time.monotonic() < deadline, "the relay never measured the outbox backlog"
        time.sleep(0.02)
    assert body["status"] == "ready"
    assert body["checks"]["store"]["ok"] is True
    assert body["checks"]["events"]["sink"] == "log"
    assert body["checks"]["events"]["pending"] == 0


def test_ready_never_counts_the_outbox_itself(client: AppClient, monkeypatch) -> None:
    """Counting may read the whole outbox (a Scan on DynamoDB): only the relay does it, on its own clock."""

    def counted() -> None:
        raise AssertionError("/ready counted the outbox")

    monkeypatch.setattr(client.app.state.runtime.store, "outbox_stats", counted)
    assert client.get("/api/v1/ready").status_code == 200


def test_ready_is_503_when_store_fails(client: AppClient, monkeypatch) -> None:
    store = client.app.state.runtime.store

    def broken() -> None:
        raise StoreUnavailable("disk gone")

    monkeypatch.setattr(store, "check", broken)
    response = client.get("/api/v1/ready")
    assert response.status_code == 503
    assert response.json()["checks"]["store"] == {"backend": store.name, "ok": False, "error": "disk gone"}


@pytest.mark.backends("sqlite", "dynamodb")
def test_warmup_initialises_and_is_idempotent(client: AppClient) -> None:
    first = client.post("/api/v1/warmup")
    assert first.status_code == 200
    assert first.json()["status"] == "warm"
    second = client.post("/api/v1/warmup")
    assert second.json()["actions"] == ["already warm"]


@pytest.mark.backends("sqlite", "dynamodb")
def test_eager_init_warms_in_background(make_client, caplog) -> None:
    caplog.set_level(logging.INFO, logger="feature_store.runtime")
    client = make_client(eager_init=True)
    assert client.get("/api/v1/health").status_code == 200
    deadline = time.monotonic() + 5
    while not any(record.getMessage() == "eager initialisation done" for record in caplog.records):
        assert time.monotonic() < deadline, "eager initialisation did not finish"
        time.sleep(0.01)


def test_docs_and_openapi_served(client: AppClient) -> None:
    assert client.get("/docs").status_code == 200
    schema = client.get("/openapi.json").json()
    assert schema["info"]["title"] == "Feature Store API"
    assert "/api/v1/items" in schema["paths"]
    assert {tag["name"] for tag in schema["tags"]} == {"features", "probes", "registry"}
    assert "/api/v1/registry" in schema["paths"]


def test_docs_can_be_switched_off(make_client) -> None:
    client = make_client(docs_enabled=False)
    assert client.get("/docs").status_code == 404
    assert client.get("/openapi.json").status_code == 404

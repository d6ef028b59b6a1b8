import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import pytest

from components.features.store.base import OnlineStore
from components.features.store.sqlite import SQLiteStore
from components.features.store.sqlite.commit import GroupCommit
from core.exceptions import StoreUnavailable
from devservers import free_port
from tests.conftest import AppClient, assert_no_internal_text
from tests.factories import write_body

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


@pytest.mark.backends("sqlite")
def test_warmup_is_served_on_get_too(client: AppClient) -> None:
    """Deployment scripts `curl` it without `-X POST`."""
    first = client.get("/api/v1/warmup")
    assert first.status_code == 200
    assert first.json()["status"] == "warm"
    assert client.get("/api/v1/warmup").json()["actions"] == ["already warm"]


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
    assert {tag["name"] for tag in schema["tags"]} == {"features", "probes", "registry", "admin"}
    assert "/api/v1/registry" in schema["paths"]


def test_docs_can_be_switched_off(make_client) -> None:
    client = make_client(docs_enabled=False)
    assert client.get("/docs").status_code == 404
    assert client.get("/openapi.json").status_code == 404


def test_ready_answers_within_its_bound_while_the_store_check_hangs(make_client, monkeypatch) -> None:
    client = make_client(ready_timeout_seconds=0.3)
    store = client.app.state.runtime.store
    started_checks = 0

    async def hung() -> None:
        nonlocal started_checks
        started_checks += 1
        await asyncio.sleep(1.5)

    monkeypatch.setattr(store, "check", hung)
    for _ in range(2):
        started = time.monotonic()
        response = client.get("/api/v1/ready")
        elapsed = time.monotonic() - started
        assert response.status_code == 503
        assert elapsed < 0.3 + 0.25, f"/ready took {elapsed:.2f} s with a 0.3 s bound"
        assert response.json()["checks"]["store"]["error"] == "the store did not answer within 0.3 s"
        assert_no_internal_text(response.json())
    assert started_checks == 1, "a hung check is waited on again, never started twice"
    deadline = time.monotonic() + 3
    while client.get("/api/v1/ready").status_code != 200:
        assert time.monotonic() < deadline, "/ready stayed 503 after the hung check finished"
    assert started_checks == 1


@contextmanager
def full_disk(store: SQLiteStore) -> Iterator[None]:
    """A full disk as SQLite and the write probe see it, until the block ends: no connection may grow
    the file any more (SQLite then fails with SQLITE_FULL and rolls the whole transaction back, as on
    a full disk), and the file system reports no free space."""
    connect = store._connect

    def limited(connection: sqlite3.Connection) -> sqlite3.Connection:
        pages = connection.execute("PRAGMA page_count").fetchone()[0]
        connection.execute(f"PRAGMA max_page_count = {pages}")
        return connection

    with pytest.MonkeyPatch.context() as patch:
        for connection in list(store._connections):
            limited(connection)
        patch.setattr(store, "_connect", lambda *args, **kwargs: limited(connect(*args, **kwargs)))
        patch.setattr(store, "_free_bytes", lambda: 0)
        yield
    for connection in list(store._connections):
        connection.execute("PRAGMA max_page_count = 1073741823")


def test_disk_full_is_store_full_and_ready_is_503_until_space_is_freed(client: AppClient, write) -> None:
    store = client.app.state.runtime.store
    assert isinstance(store, SQLiteStore)
    write("user-0")
    assert client.get("/api/v1/ready").status_code == 200
    big = {"user_features": {f"blob{n}": "x" * 60_000 for n in range(4)}}
    with full_disk(store):
        response = client.post("/api/v1/items", json=write_body("user-1", big))
        assert response.status_code == 503, response.text
        body = response.json()
        assert body["error"] == "store_full"
        assert body["detail"] == "the embedded store is full: writes are refused until disk space is freed"
        assert response.headers["retry-after"] == "30"
        assert_no_internal_text(body)
        assert store.writable is False
        for _ in range(2):
            ready = client.get("/api/v1/ready")
            assert ready.status_code == 503
            assert ready.json()["checks"]["store"] == {
                "backend": "sqlite",
                "ok": False,
                "error": "the embedded store is full: writes are refused until disk space is freed",
            }
            assert_no_internal_text(ready.json())
    # Space freed: the probe passes at once, without waiting for a write.
    assert client.get("/api/v1/ready").status_code == 200
    assert store.writable is True
    assert client.post("/api/v1/items", json=write_body("user-1", big)).status_code == 200


def test_a_failed_write_makes_the_store_unready_until_a_write_succeeds(client: AppClient, write, monkeypatch) -> None:
    store = client.app.state.runtime.store
    assert isinstance(store, SQLiteStore)
    apply = GroupCommit.apply_one

    def full(*args: object) -> list[str]:
        raise sqlite3.OperationalError("database or disk is full")

    monkeypatch.setattr(GroupCommit, "apply_one", staticmethod(full))
    response = client.post("/api/v1/items", json=write_body("user-1"))
    assert (response.status_code, response.json()["error"]) == (503, "store_full")
    assert_no_internal_text(response.json())
    assert store.writable is False
    monkeypatch.setattr(GroupCommit, "apply_one", staticmethod(apply))
    write("user-1")
    assert store.writable is True


def test_ready_reports_the_backlog_while_the_relay_is_stuck(make_client, monkeypatch) -> None:
    """A sink that never answers holds the relay in its first batch; the backlog is still measured."""
    client = make_client(outbox_gauge_seconds=0.05, shutdown_flush_seconds=0.2)
    relay = client.app.state.runtime.relay
    stuck = threading.Event()

    async def never(events: object) -> None:
        stuck.set()
        await asyncio.sleep(3600)

    monkeypatch.setattr(relay.sink, "publish", never)
    for number in range(5):
        assert client.post("/api/v1/items", json=write_body(f"user-{number}")).status_code == 200
    assert stuck.wait(5), "the relay never reached the sink"
    for number in range(5, 30):
        assert client.post("/api/v1/items", json=write_body(f"user-{number}")).status_code == 200
    deadline = time.monotonic() + 3
    while (events := client.get("/api/v1/ready").json()["checks"]["events"]).get("pending") != 30:
        assert time.monotonic() < deadline, f"the backlog reported stayed at {events.get('pending')} of 30"
        time.sleep(0.02)
    assert events["oldest_pending_age_s"] > 0


@pytest.mark.parametrize(
    "body",
    [
        {
            "error": "store_unavailable",
            "detail": "embedded store unavailable: cannot rollback - no transaction is active",
        },
        {"error": "store_unavailable", "detail": "embedded store unavailable: database or disk is full"},
        {"error": "internal_error", "detail": "embedded store rejected the write (IntegrityError)"},
        {"error": "store_unavailable", "detail": "DynamoDB could not serve GetItem (ResourceNotFoundException)"},
        {"status": "unavailable", "checks": {"store": {"ok": False, "error": "DynamoDBUnreachable: timeout"}}},
    ],
)
def test_every_error_body_is_scanned_for_internal_text(body: dict) -> None:
    """The scan every `AppClient` applies to every error body it receives finds what the service used to send."""
    with pytest.raises(AssertionError, match="internal text"):
        assert_no_internal_text(body)


@pytest.mark.slow
@pytest.mark.timing
@pytest.mark.backends("sqlite", "dynamodb")
def test_ready_tracks_the_outbox_through_a_broker_outage(make_client) -> None:
    """The outage of the fault report, scaled down: writes at 80/s to a service whose broker is down.
    Every acknowledged write leaves one event in the outbox, so the acknowledged count is the truth
    `/ready`'s `pending` must follow within 20% (the gauge interval scaled like the outage: 30 s of
    outage with a 2 s gauge is 15 intervals; here 3 s with 0.2 s)."""
    client = make_client(
        kafka_broker_url=f"127.0.0.1:{free_port()}",
        schema_registry="mock://outage",
        kafka_message_timeout_ms=500,
        kafka_socket_timeout_ms=200,
        outbox_max_backoff_seconds=0.5,
        outbox_gauge_seconds=0.2,
        shutdown_flush_seconds=0.5,  # the broker never comes back: shutting down need not wait for it
    )
    started = time.monotonic()
    acknowledged = 0
    samples: list[tuple[float, int, int]] = []
    while (elapsed := time.monotonic() - started) < 3.0:
        sent = time.monotonic()
        assert client.post("/api/v1/items", json=write_body(f"user-{acknowledged}")).status_code == 200
        acknowledged += 1
        if elapsed >= 1.5 and acknowledged % 8 == 0:
            samples.append(
                (round(elapsed, 2), acknowledged, client.get("/api/v1/ready").json()["checks"]["events"]["pending"])
            )
        # Never faster than 80/s: after a stall of this process, writes do not catch up in a burst the gauge
        # has had no interval to see (the writes of one interval are what the 20% allows for).
        time.sleep(max(0.0, sent + 1 / 80 - time.monotonic()))
    assert samples
    off = [(at, truth, pending) for at, truth, pending in samples if abs(pending - truth) > 0.2 * truth]
    assert not off, f"(seconds, acknowledged, pending) off by more than 20%: {off}"

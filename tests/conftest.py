"""Shared fixtures: settings isolated from the environment, a store per backend, an app and its
client, and the session's Kafka-compatible broker."""

import json
import re
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, TypeVar

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from fastapi import FastAPI
from fastapi.testclient import TestClient
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from components.features.store import create_store
from components.features.store.base import OnlineStore
from core import tracing as tracing_module
from core.auth import hash_key, new_key
from core.metrics import metrics
from core.settings import Settings
from core.tracing import tracing
from devservers import (
    LocalIssuer,
    ManagedServer,
    StatsdServer,
    start_dynoxide,
    start_kafka_mock,
    start_moto,
    start_tansu,
)
from main import create_app

BACKENDS = ["sqlite", "dynamodb"]
"""What a test that reaches a store runs on unless its `backends` marker says otherwise: the embedded
store and DynamoDB on Dynoxide."""
DYNAMODB_EMULATORS = ["dynamodb", "dynamodb-moto"]
"""DynamoDB on Dynoxide and on moto: the storage contract suite and the DynamoDB store tests name both,
so a quirk of one emulator that the store leans on shows up as a one-backend failure."""
STORE_BACKENDS = ["sqlite", *DYNAMODB_EMULATORS]
"""Every backend a `backends` marker may name."""

SettingsFactory = Callable[..., Settings]
T = TypeVar("T")


INTERNAL_TEXT = re.compile(
    r"\b[A-Z]\w*(?:Error|Exception)\b|sqlite3|database or disk|rollback|no transaction is active|no such savepoint"
    r"|Traceback|botocore|aiohttp|An error occurred \("
    r"|\b(?:DynamoDBUnreachable|DynamoDBTimeout|ChecksumMismatch|NoCredentials|InvalidParameters|StoreUnavailable|StoreFull)\b"
)
"""What an error body must never say: exception class names and the drivers' own words."""


def assert_no_internal_text(body: Any, sent: str = "") -> None:
    """What an error body says of the error (an envelope's code and detail, a field error's `msg`, or
    `/ready`'s store error) holds no internal text. Field errors' `loc` and `input` echo the client, and so
    may a message: words that occur in what the client `sent` are the client's, not ours."""
    if not isinstance(body, dict):
        return
    if "checks" in body:
        said: Any = body["checks"].get("store", {}).get("error", "")
    else:
        detail = body.get("detail")
        if isinstance(detail, list):
            detail = [item.get("msg") if isinstance(item, dict) else item for item in detail]
        said = [body.get("error"), detail]
    text = json.dumps(said)
    found = [match.group(0) for match in INTERNAL_TEXT.finditer(text) if match.group(0) not in sent]
    assert not found, f"internal text ({found[0]!r}) in an error body: {text}"


class AppClient(TestClient):
    """A test client of the service's own app, so tests reach `app.state.runtime` and `app.openapi()` typed.
    Every error body it receives is checked for internal text, whatever the test is about."""

    app: FastAPI

    def request(self, *args: Any, **kwargs: Any) -> Any:
        response = super().request(*args, **kwargs)
        if response.status_code >= 400 and response.headers.get("content-type", "").startswith("application/json"):
            assert_no_internal_text(response.json(), sent=repr((args, kwargs)))
        return response

    def run(self, call: Callable[..., Awaitable[T]], *args: Any) -> T:
        """Await `call(*args)` on the app's event loop (where its store's clients live) from the test's thread."""
        assert self.portal is not None, "the client must be started (its lifespan entered)"
        return self.portal.call(call, *args)


MEASURED = "measured"
"""The user property a test's `report` lines travel in: test reports carry them from a worker process too."""


@pytest.fixture
def report(request: pytest.FixtureRequest) -> Callable[[str], None]:
    """Say something a test measured (events duplicated by a fault, a broker's count) in the summary at
    the end of the run, where it is seen whether the test passed or not."""

    def add(line: str) -> None:
        request.node.user_properties.append((MEASURED, line))

    return add


def pytest_terminal_summary(terminalreporter: Any) -> None:
    lines = [
        f"{report.nodeid}: {value}"
        for reports in terminalreporter.stats.values()
        for report in reports
        if getattr(report, "when", None) == "teardown"
        for name, value in report.user_properties
        if name == MEASURED
    ]
    if lines:
        terminalreporter.section("measured under faults")
        for line in lines:
            terminalreporter.write_line(line)


@pytest.fixture
def anyio_backend() -> str:
    """Async tests and fixtures run on asyncio, the service's loop."""
    return "asyncio"


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    """`backend` (which `make_settings`, and so every store and app, depends on) runs each test once per
    backend, or on those its `backends` marker names: `pytest.mark.backends("sqlite")` for suites that
    storage does not affect, which the embedded store serves as well as any."""
    if "backend" not in metafunc.fixturenames:
        return
    marker = metafunc.definition.get_closest_marker("backends")
    backends = list(marker.args) if marker else BACKENDS
    unknown = set(backends) - set(STORE_BACKENDS)
    assert backends and not unknown, f"{metafunc.definition.nodeid}: unknown backends {sorted(unknown)}"
    metafunc.parametrize("backend", backends)


@pytest.fixture
def expected_type(backend: str) -> Callable[[object], type]:
    """The type a stored value reads back as: its own, but for the one documented exception —
    DynamoDB keeps a number's value, not its spelling, so an integral float (1.0) reads back as an int.
    Dynoxide normalises numbers as DynamoDB does; moto keeps the text it was sent, so there it stays a float."""

    def expected(value: object) -> type:
        if backend == "dynamodb" and isinstance(value, float) and value.is_integer():
            return int
        return type(value)

    return expected


@pytest.fixture(scope="session")
def aws_test_credentials() -> Iterator[None]:
    """Fake credentials for the local DynamoDB servers, whatever the environment holds."""
    with pytest.MonkeyPatch.context() as patch:
        for name, value in {
            "AWS_ACCESS_KEY_ID": "test",
            "AWS_SECRET_ACCESS_KEY": "test",
            "AWS_CONFIG_FILE": "/dev/null",
            "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
        }.items():
            patch.setenv(name, value)
        for name in ("AWS_SESSION_TOKEN", "AWS_PROFILE", "AWS_DEFAULT_PROFILE"):
            patch.delenv(name, raising=False)
        yield


@pytest.fixture(scope="session")
def dynamodb_endpoint(tmp_path_factory: pytest.TempPathFactory, aws_test_credentials: None) -> Iterator[str]:
    """A real DynamoDB-compatible server (Dynoxide, in memory) for the session, with fake credentials."""
    server, endpoint = start_dynoxide(tmp_path_factory.mktemp("dynoxide"))
    try:
        yield endpoint
    finally:
        server.stop()


@pytest.fixture(scope="session")
def moto_endpoint(aws_test_credentials: None) -> Iterator[str]:
    """moto's DynamoDB in server mode for the session, with fake credentials."""
    server, endpoint = start_moto()
    try:
        yield endpoint
    finally:
        server.stop()


def dynamodb_tables() -> dict[str, object]:
    """Table names of their own for one test, so tests never see each other's data."""
    prefix = f"t{uuid.uuid4().hex[:12]}"
    return {
        "dynamodb_table_bright_uid": f"{prefix}_user",
        "dynamodb_table_account_id": f"{prefix}_account",
        "dynamodb_table_outbox": f"{prefix}_outbox",
        "dynamodb_create_tables": True,
    }


@pytest.fixture
def make_settings(tmp_path: Path, backend: str, request: pytest.FixtureRequest) -> SettingsFactory:
    """Settings for one test on the parametrised backend, untouched by `.env` or the environment's choices.

    On DynamoDB every call within one test shares that test's own tables, created on first use."""
    backend_values: dict[str, object] = {}
    if backend in DYNAMODB_EMULATORS:
        endpoint = request.getfixturevalue("dynamodb_endpoint" if backend == "dynamodb" else "moto_endpoint")
        backend_values = {"dynamodb_endpoint_url": endpoint, **dynamodb_tables()}

    def factory(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "store_backend": "dynamodb" if backend in DYNAMODB_EMULATORS else backend,
            "sqlite_path": tmp_path / "features.db",
            "sqlite_synchronous": "NORMAL",
            "environment": "development",
            "kafka_broker_url": "",
            "statsd_host": "",
            "auth_enabled": False,
            "outbox_poll_seconds": 0.2,
            **backend_values,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return factory


@pytest.fixture
def deployed_overrides(api_keys: dict[str, str], tmp_path: Path) -> Callable[[str], dict[str, object]]:
    """Settings overrides for a staging or production app that passes their safety checks
    (keys from the `api_keys` fixture)."""

    def overrides(environment: str) -> dict[str, object]:
        values: dict[str, object] = {
            "environment": environment,
            "auth_enabled": True,
            "api_keys_file": str(tmp_path / "keys.json"),
        }
        if environment == "production":
            values["dynamodb_create_tables"] = False
        return values

    return overrides


@pytest.fixture
def settings(make_settings: SettingsFactory) -> Settings:
    return make_settings()


@pytest.fixture
async def store(settings: Settings) -> AsyncIterator[OnlineStore]:
    """A store of the parametrised backend, on the test's event loop (async tests only)."""
    store = create_store(settings)
    await store.initialise()
    yield store
    await store.close()


@pytest.fixture
def make_client(make_settings: SettingsFactory) -> Iterator[Callable[..., AppClient]]:
    """Start an app (lifespan included) with settings overrides; every client is closed after the test."""
    clients: list[AppClient] = []

    def factory(**overrides: object) -> AppClient:
        client = AppClient(create_app(make_settings(**overrides)), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., AppClient]) -> AppClient:
    return make_client()


@pytest.fixture
def app(client: AppClient) -> FastAPI:
    return client.app


@pytest.fixture(scope="session")
def statsd_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[StatsdServer]:
    server = StatsdServer(tmp_path_factory.mktemp("statsd"))
    yield server
    server.stop()


@dataclass
class StatsdView:
    """One test's metrics on the shared statsd server, told apart by a unique prefix."""

    server: StatsdServer
    prefix: str

    @property
    def settings(self) -> dict[str, object]:
        return {"statsd_host": "127.0.0.1", "statsd_port": self.server.port, "statsd_prefix": self.prefix}

    def read(self, kind: str) -> dict[str, float | list[float]]:
        mine = f"{self.prefix}."
        return {key[len(mine) :]: value for key, value in self.server.read(kind).items() if key.startswith(mine)}

    def wait_for(
        self, kind: str, expected: Mapping[str, float], timeout: float = 5.0
    ) -> dict[str, float | list[float]]:
        """Poll until every expected key has arrived (counters at least at their value, gauges at it, timers
        with that many samples); return everything this test sent of that kind."""
        deadline = time.monotonic() + timeout
        while True:
            values = self.read(kind)
            if all(_reached(values.get(key), want, kind == "gauges") for key, want in expected.items()):
                return values
            if time.monotonic() > deadline:
                return values
            time.sleep(0.02)


def _reached(value: float | list[float] | None, want: float, exact: bool) -> bool:
    if value is None:
        return False
    if isinstance(value, list):
        return len(value) >= want
    return value == want if exact else value >= want


@pytest.fixture
def statsd(statsd_server: StatsdServer) -> Iterator[StatsdView]:
    """Metrics on for this test only, under a prefix of its own."""
    yield StatsdView(statsd_server, f"t{uuid.uuid4().hex[:12]}")
    metrics.close()


API_KEYS = {
    "reader": {"scopes": ["features:read"]},
    "writer": {
        "scopes": ["features:read", "features:write"],
        "sources": ["prediction_service", "backfill"],
        "categories": ["user_features", "credit_features"],
    },
    "any_writer": {"scopes": ["features:write"], "sources": ["batch_job"], "categories": ["*"]},
    "operator": {"scopes": ["admin"]},
}


@pytest.fixture
def api_keys(tmp_path: Path) -> dict[str, str]:
    """Plaintext keys by name; their hashed entries are in `tmp_path / "keys.json"`."""
    keys = {name: new_key() for name in API_KEYS}
    entries = [{"name": name, "sha256": hash_key(keys[name]), **entry} for name, entry in API_KEYS.items()]
    (tmp_path / "keys.json").write_text(json.dumps(entries))
    return keys


@pytest.fixture
def make_auth_client(make_client: Callable[..., TestClient], api_keys: dict[str, str], tmp_path: Path):
    """An app with API keys on (the `api_keys` file), with more settings overrides."""

    def factory(**overrides: object) -> TestClient:
        return make_client(auth_enabled=True, api_keys_file=str(tmp_path / "keys.json"), **overrides)

    return factory


GRANTS = [
    {"name": "ranker", "match": {"sub": "system:serviceaccount:ml:ranker"}, "scopes": ["features:read"]},
    {
        "name": "pipelines",
        "match": {"groups": "feature-writers"},
        "scopes": ["features:read", "features:write"],
        "sources": ["pipeline"],
        "categories": ["user_features"],
    },
    {"name": "operators", "match": {"client_id": "ops-console", "scope": "admin"}, "scopes": ["admin"]},
]


@pytest.fixture
def oidc_issuer() -> Iterator[LocalIssuer]:
    """An identity provider of the test's own (discovery and JWKS over HTTP on 127.0.0.1)."""
    issuer = LocalIssuer()
    yield issuer
    issuer.stop()


@pytest.fixture
def make_jwt_client(make_auth_client, oidc_issuer: LocalIssuer, tmp_path: Path):
    """An app taking the issuer's tokens (grants `GRANTS`) beside the `api_keys`, with more settings overrides."""
    (tmp_path / "grants.yaml").write_text(json.dumps(GRANTS))

    def factory(**overrides: object) -> TestClient:
        settings: dict[str, object] = {
            "auth_jwt_issuer": oidc_issuer.url,
            "auth_jwt_audience": oidc_issuer.audience,
            "auth_jwt_grants_file": str(tmp_path / "grants.yaml"),
        }
        return make_auth_client(**(settings | overrides))

    return factory


@dataclass(frozen=True)
class KafkaBroker:
    bootstrap: str
    server: ManagedServer


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """One Tansu broker (the Kafka protocol, in memory) for the whole session; tests isolate
    themselves by topic."""
    server, bootstrap = start_tansu(tmp_path_factory.mktemp("tansu"))
    yield KafkaBroker(bootstrap, server)
    server.stop()


@pytest.fixture(scope="session")
def kafka_mock(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """librdkafka's mock cluster (3 brokers) in its own process for the whole session: the broker that
    keeps every message it acknowledged, where Tansu does not. Topics are created on first produce."""
    server, bootstrap = start_kafka_mock(tmp_path_factory.mktemp("kafka-mock"))
    yield KafkaBroker(bootstrap, server)
    server.stop()


@pytest.fixture
def kafka_topic(kafka_broker: KafkaBroker) -> str:
    """A topic of the test's own, created up front with AdminClient (not left to auto-creation) so a
    consumer can assign all its partitions before the first event is written."""
    topic = f"features-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(timeout=10)
    return topic


@pytest.fixture
def kafka_settings(kafka_broker: KafkaBroker, kafka_topic: str) -> dict[str, object]:
    """Settings overrides that publish to the session broker and the test's topic, with timeouts
    short enough for an outage to show within a second or two."""
    return {
        "kafka_broker_url": kafka_broker.bootstrap,
        "schema_registry": f"mock://{kafka_topic}",
        "topic_name": kafka_topic,
        "kafka_message_timeout_ms": 1500,
        "kafka_socket_timeout_ms": 500,
        "outbox_max_backoff_seconds": 0.5,
        "outbox_gauge_seconds": 0.05,
        "shutdown_flush_seconds": 5,
    }


@pytest.fixture
def spans(monkeypatch: pytest.MonkeyPatch) -> Iterator[InMemorySpanExporter]:
    """Tracing on for the apps this test starts, switched on as operators do (`OTEL_TRACES_EXPORTER=otlp`),
    with the OTLP exporter replaced by the SDK's in-memory one and each span exported as it ends."""
    exporter = InMemorySpanExporter()
    for name in ("OTEL_SDK_DISABLED", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "otlp")
    monkeypatch.setattr(tracing_module, "otlp_exporter", lambda _protocol: exporter)
    monkeypatch.setattr(tracing_module, "span_processor", SimpleSpanProcessor)
    yield exporter
    tracing.close()

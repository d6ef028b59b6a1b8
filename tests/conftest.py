"""Shared fixtures: settings isolated from the environment, a store per backend, an app and its client."""

import time
import uuid
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from components.features.store import create_store
from components.features.store.base import OnlineStore
from core.metrics import metrics
from core.settings import Settings
from main import create_app
from tests.servers import StatsdServer

BACKENDS = ["sqlite"]

SettingsFactory = Callable[..., Settings]


@pytest.fixture(params=BACKENDS)
def backend(request: pytest.FixtureRequest) -> str:
    return request.param


@pytest.fixture
def make_settings(tmp_path: Path, backend: str) -> SettingsFactory:
    """Settings for one test on the parametrised backend, untouched by `.env` or the environment's choices."""

    def factory(**overrides: object) -> Settings:
        values: dict[str, object] = {
            "store_backend": backend,
            "sqlite_path": tmp_path / "features.db",
            "sqlite_synchronous": "NORMAL",
            "environment": "development",
            "kafka_broker_url": "",
            "statsd_host": "",
            "auth_enabled": False,
            "outbox_poll_seconds": 0.2,
        }
        values.update(overrides)
        return Settings(_env_file=None, **values)

    return factory


@pytest.fixture
def production_overrides() -> dict[str, object]:
    """The least a production app needs to pass its own safety checks."""
    return {"environment": "production", "auth_enabled": True}


@pytest.fixture
def settings(make_settings: SettingsFactory) -> Settings:
    return make_settings()


@pytest.fixture
def store(settings: Settings) -> Iterator[OnlineStore]:
    store = create_store(settings)
    store.initialise()
    yield store
    store.close()


@pytest.fixture
def make_client(make_settings: SettingsFactory) -> Iterator[Callable[..., TestClient]]:
    """Start an app (lifespan included) with settings overrides; every client is closed after the test."""
    clients: list[TestClient] = []

    def factory(**overrides: object) -> TestClient:
        client = TestClient(create_app(make_settings(**overrides)), raise_server_exceptions=False)
        client.__enter__()
        clients.append(client)
        return client

    yield factory
    for client in clients:
        client.__exit__(None, None, None)


@pytest.fixture
def client(make_client: Callable[..., TestClient]) -> TestClient:
    return make_client()


@pytest.fixture
def app(client: TestClient) -> FastAPI:
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

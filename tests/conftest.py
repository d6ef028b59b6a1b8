"""Shared fixtures: settings isolated from the environment, a store per backend, an app and its client."""

import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from components.features.store import create_store
from components.features.store.base import OnlineStore
from core.auth import hash_key, new_key
from core.settings import Settings
from main import create_app

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

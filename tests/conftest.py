"""Shared fixtures: settings isolated from the environment, a store per backend, an app and its
client, and the session's Kafka-compatible broker."""

import os
import uuid
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from confluent_kafka.admin import AdminClient, NewTopic
from fastapi import FastAPI
from fastapi.testclient import TestClient

from components.features.store import create_store
from components.features.store.base import OnlineStore
from core.settings import Settings
from main import create_app
from tests.servers import SERVER_BIN, ManagedServer, free_port, port_open

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


@dataclass(frozen=True)
class KafkaBroker:
    bootstrap: str
    server: ManagedServer


@pytest.fixture(scope="session")
def kafka_broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[KafkaBroker]:
    """One Tansu broker (the Kafka protocol, in memory) for the whole session; tests isolate
    themselves by topic. It gets a bare environment: Tansu reads SCHEMA_REGISTRY and others from it."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    server = ManagedServer(
        "tansu",
        [str(SERVER_BIN / "tansu"), "broker", "--listener-url", url, "--advertised-listener-url", url,
         "--storage-engine", "memory://tansu/"],
        lambda: port_open(port),
        log_dir=tmp_path_factory.mktemp("tansu"),
        env={"PATH": os.environ.get("PATH", "")},
    )
    yield KafkaBroker(f"127.0.0.1:{port}", server)
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
        "shutdown_flush_seconds": 5,
    }

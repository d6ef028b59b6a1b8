"""The client against the real app: over a real socket (the service under uvicorn, in its own process)
and in-process (the app's test client, or httpx's ASGI transport for the asyncio client)."""

from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any, cast

import httpx
import pytest

from devservers import ServiceProcess
from feature_store_client import FeatureStoreClient, loader
from tests.conftest import AppClient, dynamodb_tables

WRITER = "prediction_service"


@pytest.fixture
def start_service(
    backend: str, tmp_path: Path, request: pytest.FixtureRequest
) -> Iterator[Callable[..., ServiceProcess]]:
    """Start the service under uvicorn on the test's backend (its own SQLite file or DynamoDB tables),
    with more settings as environment variables."""
    servers: list[ServiceProcess] = []

    def start(**env: str) -> ServiceProcess:
        values = {
            "STORE_BACKEND": backend,
            "ENVIRONMENT": "development",
            "LOG_LEVEL": "WARNING",
            "KAFKA_BROKER_URL": "",
        }
        if backend == "dynamodb":
            values["DYNAMODB_ENDPOINT_URL"] = request.getfixturevalue("dynamodb_endpoint")
            values |= {
                name.upper(): str(value).lower() if isinstance(value, bool) else str(value)
                for name, value in dynamodb_tables().items()
            }
        else:
            values["SQLITE_PATH"] = str(tmp_path / f"features-{len(servers)}.db")
        server = ServiceProcess(values | env, tmp_path)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill()


@pytest.fixture(params=["socket", "in_process"])
def store_client(request: pytest.FixtureRequest, backend: str) -> Iterator[FeatureStoreClient]:
    """The blocking client, over a real socket to uvicorn or in-process to the app's test client."""
    if request.param == "socket":
        server = request.getfixturevalue("start_service")()
        with FeatureStoreClient(server.url, timeout=10) as client:
            yield client
    else:
        app_client: AppClient = request.getfixturevalue("client")
        # Starlette's test client answers httpx.Client's request() without deriving from it.
        with FeatureStoreClient(http_client=cast(httpx.Client, app_client)) as client:
            yield client


class Recorder:
    """Records the entity values each part sends, and stops the load after some parts."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, stop_after: int | None, how: str) -> None:
        self.sent: list[str] = []
        self.parts = 0
        original = FeatureStoreClient._write_part

        def write_part(client: FeatureStoreClient, bodies: Sequence[Mapping[str, Any]], *args: Any) -> Any:
            self.parts += 1
            if stop_after is not None and self.parts > stop_after and how == "connection":
                raise_on_send = httpx.ConnectError("connection refused")
                monkeypatch.setattr(client._http, "request", lambda *a, **k: (_ for _ in ()).throw(raise_on_send))
            self.sent += [body["entity_value"] for body in bodies]
            return original(client, bodies, *args)

        monkeypatch.setattr(FeatureStoreClient, "_write_part", write_part)
        if how == "interrupt":
            saved = loader.Checkpoint.save

            def save(checkpoint: loader.Checkpoint) -> None:
                saved(checkpoint)
                if stop_after is not None and self.parts >= stop_after:
                    raise KeyboardInterrupt

            monkeypatch.setattr(loader.Checkpoint, "save", save)

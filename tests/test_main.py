"""The real service in its own process: concurrent writers, restarts, and bodies on a real socket."""

import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

ROOT = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [sys.executable, "-m", "uvicorn", "main:app", "--host", "127.0.0.1", "--port", str(self.port)],
            cwd=ROOT,
            env={**os.environ, **env},
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        deadline = time.monotonic() + 20
        while True:
            try:
                if httpx.get(f"{self.url}/api/v1/health", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("service did not start")
            time.sleep(0.05)

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        self.process.wait(timeout=20)


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[[], Server]]:
    servers: list[Server] = []
    env = {"SQLITE_PATH": str(tmp_path / "features.db"), "STORE_BACKEND": "sqlite", "LOG_LEVEL": "WARNING"}

    def start() -> Server:
        server = Server(env)
        servers.append(server)
        return server

    yield start
    for server in servers:
        if server.process.poll() is None:
            server.stop()


def write_body(entity_value: str, features: dict) -> dict:
    return {
        "meta": {"source": "prediction_service", "compute_id": "job"},
        "data": {"entity_type": "bright_uid", "entity_value": entity_value, "category": "user_features", "features": features},
    }


def test_concurrent_writers_to_one_category(start_server) -> None:
    server = start_server()
    with httpx.Client(base_url=server.url, timeout=30) as client:
        first = client.post("/api/v1/items", json=write_body("hot", {"writer": -1, "seq": 0}))
        assert first.status_code == 200
        created_at = client.get("/api/v1/get/item/hot/user_features").json()["features"]["metadata"]["created_at"]
        payloads = [
            {"writer": writer, "seq": seq, **{f"f{k}": writer * 1000 + seq for k in range(10)}}
            for writer in range(16)
            for seq in range(15)
        ]
        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = list(pool.map(lambda p: client.post("/api/v1/items", json=write_body("hot", p)).status_code, payloads))
        assert statuses == [200] * len(payloads)
        final = client.get("/api/v1/get/item/hot/user_features").json()["features"]
    assert final["metadata"]["created_at"] == created_at
    assert final["data"] in payloads, "final state must be exactly one of the writes, never a mix"


def test_writes_survive_a_restart(start_server) -> None:
    server = start_server()
    assert httpx.post(f"{server.url}/api/v1/items", json=write_body("durable", {"age": 30, "f": 1.5})).status_code == 200
    server.stop()
    restarted = start_server()
    response = httpx.get(f"{restarted.url}/api/v1/get/item/durable/user_features")
    assert response.status_code == 200
    assert response.json()["features"]["data"] == {"age": 30, "f": 1.5}


def raw_request(port: int, head: bytes, body_chunks: list[bytes], pause: float = 0.0) -> tuple[bytes, int]:
    """Send a request by hand; return the response and how many body chunks went out before it came."""
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(head)
        sent = 0
        sock.setblocking(False)
        response = b""
        for chunk in body_chunks:
            try:
                response += sock.recv(65536)
            except BlockingIOError:
                pass
            if response:
                break
            try:
                sock.sendall(chunk)
            except (BlockingIOError, BrokenPipeError, ConnectionResetError):
                break
            sent += 1
            time.sleep(pause)
        sock.setblocking(True)
        while b"\r\n\r\n" not in response:
            data = sock.recv(65536)
            if not data:
                break
            response += data
        return response, sent


def test_huge_content_length_is_refused_before_the_body(start_server) -> None:
    server = start_server()
    head = (
        b"POST /api/v1/items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: 52428800\r\n\r\n"
    )
    response, sent = raw_request(server.port, head, [b" " * 65536] * 10, pause=0.05)
    assert response.startswith(b"HTTP/1.1 413"), response[:100]
    assert sent < 10


def test_streamed_body_is_refused_once_over_the_limit(start_server) -> None:
    server = start_server()
    head = (
        b"POST /api/v1/items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Transfer-Encoding: chunked\r\n\r\n"
    )
    chunk = b"10000\r\n" + b" " * 65536 + b"\r\n"
    response, sent = raw_request(server.port, head, [chunk] * 800, pause=0.002)
    assert response.startswith(b"HTTP/1.1 413"), response[:100]
    assert sent < 100, "the service read far past its 1 MiB limit"

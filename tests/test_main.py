"""The real service in its own process: concurrent writers, restarts, and bodies on a real socket."""

import json
import signal
import socket
import sqlite3
import threading
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from devservers import ServiceProcess, running

BASE_ENV = {"STORE_BACKEND": "sqlite", "ENVIRONMENT": "development", "LOG_LEVEL": "WARNING"}


@pytest.fixture
def start_server(tmp_path: Path) -> Iterator[Callable[..., ServiceProcess]]:
    """Start the service on one SQLite file shared by every process this test starts."""
    servers: list[ServiceProcess] = []

    def start(**env: str) -> ServiceProcess:
        server = ServiceProcess(BASE_ENV | {"SQLITE_PATH": str(tmp_path / "features.db")} | env, tmp_path)
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.kill()


def write_body(entity_value: str, features: dict) -> dict:
    return {
        "meta": {"source": "prediction_service", "compute_id": "job"},
        "data": {
            "entity_type": "bright_uid",
            "entity_value": entity_value,
            "category": "user_features",
            "features": features,
        },
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
            statuses = list(
                pool.map(lambda p: client.post("/api/v1/items", json=write_body("hot", p)).status_code, payloads)
            )
        assert statuses == [200] * len(payloads)
        final = client.get("/api/v1/get/item/hot/user_features").json()["features"]
    assert final["metadata"]["created_at"] == created_at
    assert final["data"] in payloads, "final state must be exactly one of the writes, never a mix"


def test_writes_survive_a_restart(start_server) -> None:
    server = start_server()
    assert (
        httpx.post(f"{server.url}/api/v1/items", json=write_body("durable", {"age": 30, "f": 1.5})).status_code == 200
    )
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
        b"POST /api/v1/items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 52428800\r\n\r\n"
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


SLOW_CATEGORIES = [f"c{index:04d}" for index in range(1000)]


def read_response(sock: socket.socket) -> tuple[int, dict]:
    response = b""
    while True:
        data = sock.recv(65536)
        if not data:
            break
        response += data
        head, _, body = response.partition(b"\r\n\r\n")
        length = next(
            (int(line.split(b":")[1]) for line in head.split(b"\r\n") if line.lower().startswith(b"content-length:")),
            None,
        )
        if length is not None and len(body) >= length:
            break
    head, _, body = response.partition(b"\r\n\r\n")
    return int(head.split(b" ")[1]), json.loads(body)


@pytest.mark.slow
@pytest.mark.timing
def test_sigterm_finishes_in_flight_requests_and_flushes_pending_events(start_server, tmp_path: Path) -> None:
    graceful, flush = 10, 10
    server = start_server(
        GRACEFUL_SHUTDOWN_SECONDS=str(graceful),
        LOG_LEVEL="INFO",
        LOG_FORMAT="json",
        SQLITE_SYNCHRONOUS="NORMAL",
        SHUTDOWN_FLUSH_SECONDS=str(flush),
        # One event per relay step, so the events of a large write are still pending when the server stops.
        OUTBOX_BATCH_SIZE="1",
        MAX_CATEGORIES_PER_WRITE=str(len(SLOW_CATEGORIES)),
        ALLOWED_CATEGORIES=",".join(["user_features", *SLOW_CATEGORIES]),
    )
    terminated = threading.Event()
    acknowledged: list[str] = []
    answers: list[int] = []
    errors_before_sigterm: list[str] = []

    def keep_writing(writer: int) -> None:
        """One new connection per request, so none is left idle for the server to close under it."""
        with httpx.Client(base_url=server.url, timeout=30, limits=httpx.Limits(max_keepalive_connections=0)) as client:
            for sequence in range(100_000):
                entity = f"writer-{writer}-{sequence}"
                try:
                    response = client.post("/api/v1/items", json=write_body(entity, {"seq": sequence}))
                except httpx.TransportError as error:
                    if terminated.is_set():
                        return
                    errors_before_sigterm.append(repr(error))
                    continue
                answers.append(response.status_code)
                if response.status_code == 200:
                    acknowledged.append(entity)

    writers = [threading.Thread(target=keep_writing, args=(n,)) for n in range(8)]
    for writer in writers:
        writer.start()
    while len(acknowledged) < 200:
        time.sleep(0.01)

    # A write in flight across the signal: headers and half its body sent before, the rest after.
    body = json.dumps(
        {
            "meta": {"source": "prediction_service", "compute_id": "slow"},
            "data": {
                "entity_type": "bright_uid",
                "entity_value": "slow",
                "feature_list": [{"category": category, "features": {"x": 1}} for category in SLOW_CATEGORIES],
            },
        }
    ).encode()
    slow = socket.create_connection(("127.0.0.1", server.port), timeout=30)
    slow.sendall(
        b"POST /api/v1/items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
        b"Content-Length: %d\r\n\r\n" % len(body) + body[: len(body) // 2]
    )
    time.sleep(0.3)
    server.terminate()
    signalled_at = time.monotonic()
    terminated.set()

    time.sleep(0.5)
    assert server.process.poll() is None, "the server must wait for the in-flight write"
    with pytest.raises(ConnectionRefusedError):
        socket.create_connection(("127.0.0.1", server.port), timeout=2).close()
    slow.sendall(body[len(body) // 2 :])
    status, answer = read_response(slow)
    slow.close()
    assert status == 200
    assert answer["categories_updated"] == SLOW_CATEGORIES

    for writer in writers:
        writer.join(timeout=30)
    # uvicorn shuts down, then re-raises the signal it caught, so the exit status still says SIGTERM.
    assert server.process.wait(timeout=graceful + flush + 5) in (0, -signal.SIGTERM)
    assert time.monotonic() - signalled_at < graceful + flush
    assert errors_before_sigterm == []
    assert set(answers) == {200}, "every request the server answered was completed"

    log = [json.loads(line) for line in server.log_path.read_text().splitlines() if line.startswith("{")]
    published = {
        (line["event"]["entity_id"], line["event"]["resource_name"])
        for line in log
        if line["message"] == "feature_available"
    }
    expected = {(entity, "user_features") for entity in acknowledged} | {
        ("slow", category) for category in SLOW_CATEGORIES
    }
    assert expected - published == set(), "an acknowledged write's event was not published"
    assert any(line["message"] == "Application shutdown complete." for line in log), "shut down, not killed"
    (stopped,) = [line for line in log if line["message"] == "outbox relay stopped"]
    assert stopped["flushed_at_stop"] > 0, "events were pending when the server stopped"
    with sqlite3.connect(tmp_path / "features.db") as db:
        assert db.execute("SELECT count(*) FROM outbox").fetchone() == (0,)


@pytest.mark.slow
def test_workers_stop_when_their_supervisor_is_killed(tmp_path: Path) -> None:
    """Several workers: the supervisor killed outright (SIGKILL, as the OOM killer does), each worker shuts
    down on its own instead of serving on, unsupervised."""
    service = ServiceProcess(
        {"STORE_BACKEND": "sqlite", "SQLITE_PATH": str(tmp_path / "features.db"), "WEB_CONCURRENCY": "2"}, tmp_path
    )
    try:
        deadline = time.monotonic() + 30
        while len(workers := service.workers()) < 2:
            assert time.monotonic() < deadline, "the two workers did not start"
            time.sleep(0.1)
        assert httpx.get(f"{service.url}/api/v1/health", timeout=5).status_code == 200
        service.process.send_signal(signal.SIGKILL)
        service.process.wait()
        deadline = time.monotonic() + 15
        while left := {pid for pid in workers if running(pid)}:
            assert time.monotonic() < deadline, f"workers {sorted(left)} still run without their supervisor"
            time.sleep(0.1)
    finally:
        service.kill()

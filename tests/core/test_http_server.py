"""Connection handling of the served process (`python -m serve`), on real sockets: clients that send
nothing, send slowly, send too much, or come in too many at once get a bounded answer in the JSON
envelope (or a closed connection), and `/health` stays fast for everyone else meanwhile."""

import json
import select
import socket
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from core.http_server import ServiceHttpProtocol, server_options
from core.settings import Settings
from devservers import ServiceProcess

HEADER_TIMEOUT = 1.0
BODY_TIMEOUT = 1.0
KEEP_ALIVE = 2.0
MAX_CONCURRENT = 4
ENV = {
    "STORE_BACKEND": "sqlite",
    "ENVIRONMENT": "development",
    "LOG_LEVEL": "WARNING",
    "HTTP_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
    "BODY_READ_TIMEOUT_SECONDS": str(BODY_TIMEOUT),
    "HTTP_KEEP_ALIVE_SECONDS": str(KEEP_ALIVE),
    "MAX_CONCURRENT_REQUESTS": str(MAX_CONCURRENT),
}
SLACK = 1.5
"""Seconds a timeout may take beyond its setting on this shared machine."""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[ServiceProcess]:
    workdir = tmp_path_factory.mktemp("served")
    served = ServiceProcess(ENV | {"SQLITE_PATH": str(workdir / "features.db")}, workdir)
    yield served
    served.kill()


def connect(server: ServiceProcess) -> socket.socket:
    return socket.create_connection(("127.0.0.1", server.port), timeout=10)


def read_response(sock: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response: status, headers (lower-cased names) and its Content-Length body."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        assert chunk, f"connection closed before a response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    while len(body) < int(headers.get("content-length", "0")):
        chunk = sock.recv(65536)
        assert chunk, "connection closed mid-body"
        body += chunk
    return int(status_line.split(" ")[1]), headers, body


def closed_within(sock: socket.socket, seconds: float) -> float:
    """Seconds until the server closes `sock` (nothing more may arrive); fails after `seconds`."""
    started = time.monotonic()
    sock.settimeout(seconds)
    try:
        assert sock.recv(65536) == b"", "data after the response"
    except ConnectionResetError:
        pass
    return time.monotonic() - started


def assert_envelope(status: int, headers: dict[str, str], body: bytes, want_status: int, error: str) -> dict:
    assert status == want_status, body
    assert headers["content-type"] == "application/json"
    envelope = json.loads(body)
    assert set(envelope) == {"detail", "error", "request_id"}
    assert envelope["error"] == error
    assert envelope["request_id"] == headers["x-request-id"]
    assert headers["connection"] == "close"
    return envelope


def health_ms(server: ServiceProcess) -> float:
    """One probe as a kubelet sends it: a new connection, one GET, read to its close. A raw socket, so the
    milliseconds are the server's, not an HTTP client's own set-up (httpx builds a TLS context per call)."""
    started = time.monotonic()
    with connect(server) as sock:
        sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n")
        status, _, _ = read_response(sock)
    elapsed = (time.monotonic() - started) * 1000
    assert status == 200
    return elapsed


def test_options_come_from_the_settings() -> None:
    settings = Settings(_env_file=None, port=9001, web_concurrency=3, http_keep_alive_seconds=61, max_url_bytes=4096)
    options = server_options(settings)
    assert (options["app"], options["port"], options["workers"], options["timeout_keep_alive"]) == (
        "main:app",
        9001,
        3,
        61,
    )
    assert options["timeout_graceful_shutdown"] == settings.graceful_shutdown_seconds
    assert options["http"].func is ServiceHttpProtocol
    assert options["http"].keywords["limits"].max_url_bytes == 4096


def test_idle_connections_are_closed_and_health_stays_fast(server: ServiceProcess) -> None:
    idle = [connect(server) for _ in range(300)]
    try:
        assert health_ms(server) < 500
        started = time.monotonic()
        for sock in idle:
            closed_within(sock, HEADER_TIMEOUT + SLACK)
        assert time.monotonic() - started < HEADER_TIMEOUT + SLACK
    finally:
        for sock in idle:
            sock.close()


def test_a_head_sent_a_byte_at_a_time_is_refused_with_408(server: ServiceProcess) -> None:
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n")
        for byte in b"X-Slow: " + b"a" * 100:
            if select.select([sock], [], [], 0.1)[0]:
                break  # answered: the server drops what follows, but need not wait for it
            sock.sendall(bytes([byte]))
        assert_envelope(*read_response(sock), 408, "request_timeout")
        assert time.monotonic() - started < HEADER_TIMEOUT + SLACK


def test_a_stalled_body_gets_408_in_the_envelope_and_the_connection_closed(server: ServiceProcess) -> None:
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(
            b"POST /api/v1/items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            b'Content-Length: 200\r\n\r\n{"meta": '
        )
        assert_envelope(*read_response(sock), 408, "request_timeout")
        assert time.monotonic() - started < BODY_TIMEOUT + SLACK
        closed_within(sock, 2)


def test_a_body_trickling_in_is_cut_off_at_the_deadline(server: ServiceProcess) -> None:
    """Each byte arrives well inside any per-read timeout; the whole body never arrives in time."""
    with connect(server) as sock:
        started = time.monotonic()
        sock.sendall(
            b"POST /api/v1/items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100\r\n\r\n"
        )
        sock.setblocking(False)
        answer = b""
        while not answer and time.monotonic() - started < BODY_TIMEOUT + SLACK:
            try:
                sock.send(b" ")
                answer = sock.recv(65536)
            except BlockingIOError:
                pass
            time.sleep(0.05)
        sock.setblocking(True)
        sock.settimeout(5)
        assert answer.startswith(b"HTTP/1.1 408 "), answer[:100]


@pytest.mark.parametrize(
    ("target", "status", "error"),
    [
        (b"/api/v1/health?" + b"a" * 100_000, 414, "uri_too_long"),
        (b"/api/v1/health?" + b"&".join(b"p%d=1" % n for n in range(10_000)), 414, "uri_too_long"),
    ],
    ids=["100 KB URL", "10,000 query parameters"],
)
def test_oversized_targets_get_414_in_the_envelope(server: ServiceProcess, target: bytes, status: int, error: str):
    with connect(server) as sock:
        sock.sendall(b"GET " + target + b" HTTP/1.1\r\nHost: x\r\n\r\n")
        assert_envelope(*read_response(sock), status, error)


@pytest.mark.parametrize(
    "head",
    [
        b"GET /api/v1/get/items?" + b"&".join([b"entity_type=bright_uid"] * 10_000) + b" HTTP/1.1\r\nHost: x\r\n\r\n",
        b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n" + b"X-Big: " + b"a" * 300_000 + b"\r\n\r\n",
        b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nBad Header\x00: y\r\n" + b"X-Pad: " + b"a" * 200_000 + b"\r\n\r\n",
    ],
    ids=["230 KB target", "300 KB header", "malformed 200 KB head"],
)
def test_oversized_heads_are_answered_then_closed_cleanly_never_reset(server: ServiceProcess, head: bytes) -> None:
    """The client is still sending when it is refused: what it sends after the refusal is read and dropped
    until it is done, so the close is a FIN after the answer, not a reset that loses the answer."""
    for _ in range(10):
        with connect(server) as sock:
            sock.sendall(head)
            status, _, _ = read_response(sock)
            assert status in (400, 414, 431)
            sock.settimeout(5)
            assert sock.recv(65536) == b""


@pytest.mark.parametrize(
    "headers",
    [b"X-Big: " + b"a" * 100_000 + b"\r\n", b"".join(b"X-H%d: %s\r\n" % (n, b"v" * 90) for n in range(1000))],
    ids=["one 100 KB header", "1,000 headers"],
)
def test_oversized_headers_get_431_in_the_envelope(server: ServiceProcess, headers: bytes) -> None:
    with connect(server) as sock:
        try:
            sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n" + headers + b"\r\n")
        except (BrokenPipeError, ConnectionResetError):
            pass  # refused before everything was sent; the answer is waiting
        assert_envelope(*read_response(sock), 431, "headers_too_large")


def test_headers_under_the_limit_are_served(server: ServiceProcess) -> None:
    response = httpx.get(f"{server.url}/api/v1/health", headers={"X-Fair": "a" * 12_000}, timeout=5)
    assert response.status_code == 200


def test_an_unparsable_request_gets_400_in_the_envelope(server: ServiceProcess) -> None:
    with connect(server) as sock:
        sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nBad Header\x00: y\r\n\r\n")
        assert_envelope(*read_response(sock), 400, "bad_request")


def test_keep_alive_outlasts_the_head_timeout_then_closes(server: ServiceProcess) -> None:
    """A balancer's pooled connection is not closed between requests by the head deadline; it is
    closed once idle for the keep-alive time."""
    with connect(server) as sock:
        for pause in (HEADER_TIMEOUT + 0.3, 0):
            sock.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\n\r\n")
            status, headers, _ = read_response(sock)
            assert status == 200 and headers.get("connection") != "close"
            time.sleep(pause)
        waited = closed_within(sock, KEEP_ALIVE + SLACK)
        assert waited > KEEP_ALIVE - 0.3, waited


def test_requests_beyond_the_concurrency_limit_get_503_and_health_stays_fast(server: ServiceProcess) -> None:
    """`MAX_CONCURRENT` writes whose bodies stall hold every slot until their deadline."""
    holders = [connect(server) for _ in range(MAX_CONCURRENT)]
    try:
        for sock in holders:
            sock.sendall(
                b"POST /api/v1/items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n"
            )
        time.sleep(0.2)
        refused = httpx.get(f"{server.url}/api/v1/get/item/u/user_features", timeout=5)
        assert refused.status_code == 503
        assert refused.json()["error"] == "overloaded"
        assert refused.headers["retry-after"] == "1"
        assert refused.json()["request_id"] == refused.headers["x-request-id"]
        assert httpx.get(f"{server.url}/api/v1/live", timeout=5).status_code == 200
        assert health_ms(server) < 500
        for sock in holders:
            assert read_response(sock)[0] == 408
    finally:
        for sock in holders:
            sock.close()
    assert httpx.get(f"{server.url}/api/v1/get/item/u/user_features", timeout=5).status_code == 404


def test_a_refused_request_keeps_its_connection_unless_it_sent_a_body(server: ServiceProcess) -> None:
    """Refused as its head arrives: a crowd retrying on its connections does not also reconnect."""
    read = b"GET /api/v1/get/item/u/user_features HTTP/1.1\r\nHost: x\r\n\r\n"
    holders = [connect(server) for _ in range(MAX_CONCURRENT)]
    try:
        for sock in holders:
            sock.sendall(
                b"POST /api/v1/items HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 50\r\n\r\n"
            )
        time.sleep(0.2)
        with connect(server) as sock:
            for _ in range(2):
                sock.sendall(read)
                status, headers, body = read_response(sock)
                assert (status, headers["retry-after"], json.loads(body)["error"]) == (503, "1", "overloaded")
                assert "connection" not in headers
            browser = httpx.get(f"{server.url}/api/v1/limits", headers={"Origin": "http://app"}, timeout=5)
            assert (browser.status_code, browser.headers["access-control-allow-origin"]) == (503, "*")
            with connect(server) as with_body:
                with_body.sendall(b"POST /api/v1/items HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\n{}")
                assert_envelope(*read_response(with_body), 503, "overloaded")
                closed_within(with_body, 3)
            for holder in holders:
                holder.close()
            time.sleep(0.3)
            sock.sendall(read)
            assert read_response(sock)[0] == 404
    finally:
        for holder in holders:
            holder.close()


def test_health_stays_fast_while_abusive_clients_hold_connections(server: ServiceProcess) -> None:
    stop = threading.Event()

    def trickle() -> None:
        while not stop.is_set():
            try:
                with connect(server) as sock:
                    sock.sendall(b"POST /api/v1/items HTTP/1.1\r\nHost: x\r\nX-Slow: ")
                    while not stop.is_set() and sock.send(b"a") and not stop.wait(0.05):
                        pass
            except OSError:
                pass

    abusers = [threading.Thread(target=trickle) for _ in range(20)]
    for thread in abusers:
        thread.start()
    try:
        time.sleep(0.3)
        slowest = max(health_ms(server) for _ in range(20))
    finally:
        stop.set()
        for thread in abusers:
            thread.join()
    assert slowest < 500


@pytest.mark.slow
@pytest.mark.timing
def test_every_worker_process_applies_the_limits(tmp_path: Path) -> None:
    """The image runs two workers, each started afresh (spawned) from the options `serve` built."""
    workers = ServiceProcess(ENV | {"SQLITE_PATH": str(tmp_path / "features.db"), "WEB_CONCURRENCY": "2"}, tmp_path)
    try:
        idle = [connect(workers) for _ in range(8)]
        for sock in idle:
            closed_within(sock, HEADER_TIMEOUT + SLACK)
            sock.close()
        for _ in range(4):
            with connect(workers) as sock:
                sock.sendall(b"GET /api/v1/health?" + b"a" * 10_000 + b" HTTP/1.1\r\nHost: x\r\n\r\n")
                assert_envelope(*read_response(sock), 414, "uri_too_long")
    finally:
        workers.stop()  # SIGTERM: the supervisor stops its workers (SIGKILL would orphan them)

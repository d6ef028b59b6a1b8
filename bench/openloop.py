"""An open-loop load generator: requests sent at a constant rate whatever the service's answers, each
latency counted from the moment its request was due.

    python -m bench.openloop URL METHOD PATH --rate 700 --seconds 10 [--body-file F] [--entities N]

wrk keeps a fixed number of requests in flight and waits for each answer before sending the next, so
a stall delays the requests that would have been sent meanwhile instead of counting them as slow
("coordinated omission"); hey paces each of its workers the same way. Models send requests when
users arrive, not when the last answer came back, so tail latency at a given load is measured here:
a request is sent on an idle keep-alive connection (a new one is opened when all are busy, up to
`MAX_CONNECTIONS`, then requests queue), and its latency runs from when it was due to the end of its
answer. How late the generator itself sent requests is reported beside (`send_lag_p99_ms`), so a
busy machine's share can be told from the service's.

Prints one JSON line: requests, achieved rate, p50/p95/p99/p99.9 in ms, errors.
"""

import argparse
import asyncio
import json
import sys
import time
from collections import Counter, deque
from collections.abc import Callable
from pathlib import Path
from urllib.parse import urlsplit

import uvloop

from bench.load import fill

MAX_CONNECTIONS = 256
INITIAL_CONNECTIONS = 8


class Connection(asyncio.Protocol):
    """One keep-alive HTTP/1.1 connection, one request at a time; answers must carry Content-Length."""

    def __init__(self, on_done: Callable[["Connection", int | None], None]) -> None:
        self.on_done = on_done
        self.transport: asyncio.Transport | None = None
        self.buffer = bytearray()
        self.due = 0.0
        self.busy = False
        self.closed = False

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def send(self, request: bytes, due: float) -> None:
        self.busy, self.due = True, due
        self.transport.write(request)  # type: ignore[union-attr]

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        head_end = self.buffer.find(b"\r\n\r\n")
        if head_end < 0:
            return
        status_line, *header_lines = bytes(self.buffer[:head_end]).split(b"\r\n")
        headers = dict(line.split(b":", 1) for line in header_lines)
        length = next((int(value) for name, value in headers.items() if name.lower() == b"content-length"), None)
        if length is None:
            self.transport.close()  # type: ignore[union-attr]  # an answer without a length is not ours
            return
        end = head_end + 4 + length
        if len(self.buffer) < end:
            return
        del self.buffer[:end]
        self._finish(int(status_line.split(b" ", 2)[1]))

    def _finish(self, status: int | None) -> None:
        """`status`: the answer's, None when the connection ended without one."""
        self.busy = False
        self.on_done(self, status)

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = True
        if self.busy:
            self._finish(None)


async def run(url: str, requests: list[bytes], rate: float, seconds: float) -> dict:
    loop = asyncio.get_running_loop()
    parts = urlsplit(url)
    host, port = parts.hostname or "127.0.0.1", parts.port or 80
    idle: deque[Connection] = deque()
    opening = 0
    queued: deque[float] = deque()
    latencies: list[float] = []
    send_lags: list[float] = []
    statuses: Counter[str] = Counter()
    sent = 0
    total = max(1, int(rate * seconds))

    def done(connection: Connection, status: int | None) -> None:
        latencies.append(loop.time() - connection.due)
        statuses[str(status) if status is not None else "no answer"] += 1
        if connection.closed:
            return
        if queued:
            dispatch_on(connection, queued.popleft())
        else:
            idle.append(connection)

    def dispatch_on(connection: Connection, due: float) -> None:
        nonlocal sent
        send_lags.append(loop.time() - due)
        connection.send(requests[sent % len(requests)], due)
        sent += 1

    async def open_one() -> None:
        nonlocal opening
        opening += 1
        try:
            _, connection = await loop.create_connection(lambda: Connection(done), host, port)
        finally:
            opening -= 1
        if queued:
            dispatch_on(connection, queued.popleft())
        else:
            idle.append(connection)

    await asyncio.gather(*(open_one() for _ in range(INITIAL_CONNECTIONS)))
    connections_opened = INITIAL_CONNECTIONS
    interval = 1 / rate
    start = loop.time()
    for index in range(total):
        due = start + index * interval
        delay = due - loop.time()
        if delay > 0.0005:
            await asyncio.sleep(delay)
        while idle and idle[0].closed:
            idle.popleft()
        if idle:
            dispatch_on(idle.popleft(), due)
            continue
        queued.append(due)
        if connections_opened < MAX_CONNECTIONS and opening < len(queued):
            connections_opened += 1
            loop.create_task(open_one())
    deadline = loop.time() + 30
    while len(latencies) < total and loop.time() < deadline:
        await asyncio.sleep(0.01)
    elapsed = loop.time() - start
    missing = total - len(latencies)
    latencies.sort()
    send_lags.sort()

    def percentile(values: list[float], share: float) -> float:
        return round(values[min(len(values) - 1, int(share * len(values)))] * 1000, 3) if values else 0.0

    return {
        "requests": len(latencies),
        "rps": len(latencies) / elapsed if elapsed > 0 else 0.0,
        "target_rps": rate,
        "p50_ms": percentile(latencies, 0.50),
        "p95_ms": percentile(latencies, 0.95),
        "p99_ms": percentile(latencies, 0.99),
        "p999_ms": percentile(latencies, 0.999),
        "max_ms": round(latencies[-1] * 1000, 3) if latencies else 0.0,
        "errors": sum(count for status, count in statuses.items() if not status.startswith("2")) + missing,
        "statuses": dict(statuses) | ({"unanswered": missing} if missing else {}),
        "connections": connections_opened,
        "send_lag_p99_ms": percentile(send_lags, 0.99),
    }


def build_requests(url: str, method: str, path: str, body: str | None, entities: int) -> list[bytes]:
    """Up to a thousand distinct requests, sent in turn: each `{id}` filled with the next seeded entity."""
    host = urlsplit(url).netloc
    ids = path.count("{id}") + (body or "").count("{id}")
    built = []
    for index in range(min(entities, 1000)):
        first = index * ids
        target = fill(path, entities, first)
        payload = fill(body, entities, first + path.count("{id}")).encode() if body is not None else b""
        head = f"{method} {target} HTTP/1.1\r\nHost: {host}\r\nContent-Length: {len(payload)}\r\n"
        if body is not None:
            head += "Content-Type: application/json\r\n"
        built.append(head.encode() + b"\r\n" + payload)
    return built


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("url")
    parser.add_argument("method")
    parser.add_argument("path")
    parser.add_argument("--rate", type=float, required=True)
    parser.add_argument("--seconds", type=float, required=True)
    parser.add_argument("--body-file", type=Path)
    parser.add_argument("--entities", type=int, default=1)
    args = parser.parse_args()
    if args.rate <= 0 or args.seconds <= 0:
        parser.error("--rate and --seconds must be positive")
    body = args.body_file.read_text() if args.body_file else None
    requests = build_requests(args.url, args.method, args.path, body, args.entities)
    started = time.perf_counter()
    result = uvloop.run(run(args.url, requests, args.rate, args.seconds))
    result["wall_s"] = round(time.perf_counter() - started, 3)
    json.dump(result, sys.stdout)
    print()
    return 0


if __name__ == "__main__":
    raise SystemExit(main())

"""A crowd of keep-alive connections, in a process of its own so that its work does not slow the
process measuring the probes: `python -m tests.overload_client PORT CONNECTIONS SECONDS PATH`.

Each connection sends GET PATH again as soon as it is answered (reconnecting when the server closes),
after the `Retry-After` of a 503 stretched by a jitter as the client library does, until SECONDS have passed; then one JSON line is printed: the count of answers by status (`error` for
a connection reset or refused) and, per status, the latencies in milliseconds."""

import asyncio
import json
import random
import sys
import time
from collections import defaultdict

LatenciesByStatus = defaultdict[str, list[float]]


async def answer(reader: asyncio.StreamReader) -> tuple[int, bool, float]:
    """The status of one response, whether the server closes the connection after it, and its Retry-After."""
    head = await reader.readuntil(b"\r\n\r\n")
    status_line, *lines = head.decode("latin-1").split("\r\n")
    headers = {name.lower(): value.strip() for name, _, value in (line.partition(":") for line in lines)}
    await reader.readexactly(int(headers.get("content-length", "0")))
    closes = headers.get("connection", "").lower() == "close"
    return int(status_line.split(" ")[1]), closes, float(headers.get("retry-after", "0"))


async def one_connection(port: int, request: bytes, stop_at: float, latencies: LatenciesByStatus) -> None:
    writer: asyncio.StreamWriter | None = None
    while time.monotonic() < stop_at:
        started = time.perf_counter()
        try:
            if writer is None:
                reader, writer = await asyncio.open_connection("127.0.0.1", port)
            writer.write(request)
            status, closes, retry_after = await answer(reader)
            latencies[str(status)].append((time.perf_counter() - started) * 1000)
            if retry_after:
                await asyncio.sleep(retry_after * (1 + 0.5 * random.random()))
        except (OSError, asyncio.IncompleteReadError):
            latencies["error"].append((time.perf_counter() - started) * 1000)
            closes = True
            await asyncio.sleep(0.05)
        if closes and writer is not None:
            writer.close()
            writer = None
    if writer is not None:
        writer.close()


async def crowd(port: int, connections: int, seconds: float, path: str) -> LatenciesByStatus:
    request = f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n".encode()
    latencies: LatenciesByStatus = defaultdict(list)
    stop_at = time.monotonic() + seconds
    await asyncio.gather(*(one_connection(port, request, stop_at, latencies) for _ in range(connections)))
    return latencies


if __name__ == "__main__":
    port, connections, seconds, path = int(sys.argv[1]), int(sys.argv[2]), float(sys.argv[3]), sys.argv[4]
    sys.stdout.write(json.dumps(asyncio.run(crowd(port, connections, seconds, path))) + "\n")

"""The open-loop generator against a server that stalls: the requests due while it stalled are counted
slow, as many as fell due, not the handful a closed loop would have had in flight."""

import asyncio
import time

import pytest
import uvloop

from bench.openloop import build_requests, run

pytestmark = pytest.mark.backends("sqlite")

STALL_AT_S, STALL_S = 0.4, 0.3


async def stalling_server() -> tuple[asyncio.Server, int]:
    """Answers `GET /x` at once, except that for STALL_S from STALL_AT_S after start it answers nothing."""
    started = time.monotonic()
    body = b'{"ok":true}'
    answer = b"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: %d\r\n\r\n%s" % (len(body), body)

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            while await reader.readuntil(b"\r\n\r\n"):
                resume_at = started + STALL_AT_S + STALL_S
                if started + STALL_AT_S <= time.monotonic() < resume_at:
                    await asyncio.sleep(resume_at - time.monotonic())
                writer.write(answer)
                await writer.drain()
        except (asyncio.IncompleteReadError, ConnectionError):
            writer.close()  # the generator is done with this connection

    server = await asyncio.start_server(serve, "127.0.0.1", 0)
    return server, server.sockets[0].getsockname()[1]


def test_a_stall_delays_every_request_due_during_it() -> None:
    async def scenario() -> dict:
        server, port = await stalling_server()
        async with server:
            url = f"http://127.0.0.1:{port}"
            return await run(url, build_requests(url, "GET", "/x/{id}", None, 10), rate=200, seconds=1.2)

    result = uvloop.run(scenario())
    assert result["requests"] == 240 and result["statuses"] == {"200": 240}, result
    # 60 requests fell due during the 300 ms stall: a quarter of them, so p95 and p99 are long.
    assert result["p99_ms"] >= 200, result
    assert result["p50_ms"] < STALL_S * 1000 / 2, "most requests were not due during the stall"
    assert result["connections"] > 8, "a stall needs more connections than the idle ones"

"""What one GetItem costs the client, in parts: against a server that answers at once, so the
server's own time is left out."""

import asyncio
import multiprocessing
import time

import aiohttp
import orjson
import uvloop
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from bench.dynamodb_client.dataset import CATEGORIES, TABLE, key
from core.dynamodb_client import ClientConfig, DynamoDBClient
from devservers import free_port, port_open

FIXED_ANSWER = b'{"Item":{"bright_uid":{"S":"bench-1"},"category":{"S":"user_features"}}}'


class FixedAnswer(asyncio.Protocol):
    """An HTTP/1.1 server that answers every request at once with the same small DynamoDB answer,
    so what a call costs the client can be told apart from what the server makes it wait for."""

    answer = b"HTTP/1.1 200 OK\r\nContent-Type: application/x-amz-json-1.0\r\nContent-Length: %d\r\n\r\n%s" % (
        len(FIXED_ANSWER),
        FIXED_ANSWER,
    )

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport: asyncio.Transport = transport  # type: ignore[assignment]
        self.buffer = b""

    def data_received(self, data: bytes) -> None:
        self.buffer += data
        while (end := self.buffer.find(b"\r\n\r\n")) >= 0:
            head = self.buffer[:end].lower()
            length = int(head.split(b"content-length:")[1].split(b"\r\n")[0]) if b"content-length:" in head else 0
            if len(self.buffer) < end + 4 + length:
                return
            self.buffer = self.buffer[end + 4 + length :]
            self.transport.write(self.answer)


def wait_for_port(port: int, timeout: float = 10.0) -> None:
    deadline = time.monotonic() + timeout
    while not port_open(port):
        if time.monotonic() > deadline:
            raise RuntimeError(f"nothing listens on port {port}")
        time.sleep(0.05)


def serve_fixed_answer(port: int) -> None:
    async def serve() -> None:
        server = await asyncio.get_running_loop().create_server(FixedAnswer, "127.0.0.1", port)
        await server.serve_forever()

    asyncio.run(serve())


def call_breakdown(calls: int) -> dict[str, float]:
    """Microseconds of client CPU per GetItem on uvloop against a server that answers at once: aiohttp
    alone, botocore's signing alone, and the whole call (signing, aiohttp, JSON, checksum, retries)."""
    port = free_port()
    server = multiprocessing.get_context("spawn").Process(target=serve_fixed_answer, args=(port,), daemon=True)
    server.start()
    try:
        wait_for_port(port)
        client = DynamoDBClient(
            ClientConfig(endpoint_url=f"http://127.0.0.1:{port}", region="us-east-1"), Credentials("a", "b")
        )
        payload = {"TableName": TABLE, "Key": key(1, CATEGORIES[0])}
        body = orjson.dumps(payload)
        signer = SigV4Auth(Credentials("a", "b").get_frozen_credentials(), "dynamodb", "us-east-1")

        def sign() -> dict[str, str]:
            request = AWSRequest(
                method="POST",
                url=client.config.endpoint_url + "/",
                data=body,
                headers={
                    "Host": f"127.0.0.1:{port}",
                    "Content-Type": "application/x-amz-json-1.0",
                    "X-Amz-Target": "DynamoDB_20120810.GetItem",
                },
            )
            signer.add_auth(request)
            return dict(request.headers.items())

        headers = sign()

        async def measure() -> dict[str, float]:
            session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=None, sock_connect=1, sock_read=2))

            async def post() -> None:
                async with session.post(client.config.endpoint_url + "/", data=body, headers=headers) as response:
                    await response.read()

            async def sign_only() -> None:
                sign()

            async def whole() -> None:
                await client.call("GetItem", payload)

            results = {}
            for name, step in (
                ("aiohttp post and read", post),
                ("botocore SigV4 signing", sign_only),
                ("whole call", whole),
            ):
                for _ in range(100):
                    await step()
                started = time.process_time()
                for _ in range(calls):
                    await step()
                results[name] = round((time.process_time() - started) * 1e6 / calls, 1)
                print(f"GetItem against a server answering at once, {name:<24} {results[name]:7.1f} us")
            await session.close()
            await client.close()
            return results

        with asyncio.Runner(loop_factory=uvloop.new_event_loop) as runner:
            return runner.run(measure())
    finally:
        server.terminate()
        server.join()

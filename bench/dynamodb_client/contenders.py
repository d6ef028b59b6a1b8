"""The ways of calling DynamoDB that the per-call benchmark compares: boto3 from threads, the asyncio
client on asyncio's loop or uvloop, the same client over httpx, and the asyncio client bridged to
threads; each measures this process's CPU per call."""

import asyncio
import os
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from typing import Any

import httpx
import orjson
import uvloop
from botocore.awsrequest import AWSRequest

from bench.boto3_baseline import get_client as get_boto3_client
from bench.dynamodb_client.dataset import (
    CATEGORIES,
    ENTITIES,
    TABLE,
    batch_request,
    decode_items_boto3,
    decode_items_wire,
    fresh_event_time,
    key,
    write_actions,
)
from core.dynamodb_client import DynamoDBClient, DynamoDBServiceError, DynamoDBTimeout, DynamoDBUnreachable
from core.dynamodb_client.client import CONTENT_TYPE, TARGET_PREFIX
from core.settings import Settings


def boto3_operations(client: Any, decode: bool) -> dict[str, Callable[[int], Any]]:
    def get_item(index: int) -> None:
        found = client.get_item(TableName=TABLE, Key=key(index % ENTITIES, CATEGORIES[index % 5]))["Item"]
        if decode:
            decode_items_boto3([found])

    def batch(size: int) -> Callable[[int], None]:
        def call(index: int) -> None:
            answer = client.batch_get_item(RequestItems=batch_request(index * size, size))
            assert not answer.get("UnprocessedKeys"), "unprocessed keys"
            found = answer["Responses"][TABLE]
            assert len(found) == size, len(found)
            if decode:
                decode_items_boto3(found)

        return call

    def transact(index: int) -> None:
        client.transact_write_items(TransactItems=write_actions(index % ENTITIES, fresh_event_time()))

    operations = {"GetItem": get_item, "BatchGetItem50": batch(50), "BatchGetItem100": batch(100)}
    if not decode:
        operations["TransactWriteItems"] = transact
    return operations


def async_operations(client: DynamoDBClient, decode: bool) -> dict[str, Callable[[int], Coroutine[Any, Any, None]]]:
    async def get_item(index: int) -> None:
        answer = await client.get_item(TableName=TABLE, Key=key(index % ENTITIES, CATEGORIES[index % 5]))
        if decode:
            decode_items_wire([answer["Item"]])

    def batch(size: int) -> Callable[[int], Coroutine[Any, Any, None]]:
        async def call(index: int) -> None:
            answer = await client.batch_get_item(RequestItems=batch_request(index * size, size))
            assert not answer.get("UnprocessedKeys"), "unprocessed keys"
            found = answer["Responses"][TABLE]
            assert len(found) == size, len(found)
            if decode:
                decode_items_wire(found)

        return call

    async def transact(index: int) -> None:
        await client.transact_write_items(TransactItems=write_actions(index % ENTITIES, fresh_event_time()))

    operations = {"GetItem": get_item, "BatchGetItem50": batch(50), "BatchGetItem100": batch(100)}
    if not decode:
        operations["TransactWriteItems"] = transact
    return operations


class HttpxClient(DynamoDBClient):
    """The same client over httpx instead of aiohttp, to choose the HTTP library by measurement."""

    _httpx: httpx.AsyncClient | None = None

    async def _attempt(self, operation: str, body: bytes) -> dict[str, Any]:
        if self._httpx is None:
            timeout = httpx.Timeout(self.config.read_timeout, connect=self.config.connect_timeout)
            self._httpx = httpx.AsyncClient(timeout=timeout, limits=httpx.Limits(max_connections=self.config.pool_size))
        signer = await self._signer_now()
        request = AWSRequest(
            method="POST",
            url=self._sign_url,
            data=body,
            headers={"Host": self._host, "Content-Type": CONTENT_TYPE, "X-Amz-Target": TARGET_PREFIX + operation},
        )
        signer.add_auth(request)
        try:
            response = await self._httpx.post(self._sign_url, content=body, headers=dict(request.headers.items()))
        except httpx.TimeoutException as exc:
            raise DynamoDBTimeout(str(exc)) from exc
        except httpx.HTTPError as exc:
            raise DynamoDBUnreachable(str(exc)) from exc
        raw = response.content
        if response.status_code >= 300:
            raise DynamoDBServiceError.from_body(operation, response.status_code, raw, None)
        return orjson.loads(raw)

    async def close(self) -> None:
        if self._httpx is not None:
            await self._httpx.aclose()
            self._httpx = None


Sample = tuple[float, float, float]
"""CPU, of which system, and wall milliseconds per call."""


def per_call(started: tuple[float, float, float], calls: int) -> Sample:
    cpu, system, wall = started
    return (
        (time.process_time() - cpu) * 1000 / calls,
        (os.times().system - system) * 1000 / calls,
        (time.perf_counter() - wall) * 1000 / calls,
    )


def measure_sync(operation: Callable[[int], Any], calls: int, concurrency: int) -> Sample:
    started = time.process_time(), os.times().system, time.perf_counter()
    if concurrency == 1:
        for index in range(calls):
            operation(index)
    else:
        with ThreadPoolExecutor(concurrency) as pool:
            list(pool.map(operation, range(calls)))
    return per_call(started, calls)


async def measure_async(operation: Callable[[int], Awaitable[Any]], calls: int, concurrency: int) -> Sample:
    counter = iter(range(calls))

    async def worker() -> None:
        for index in counter:
            await operation(index)

    started = time.process_time(), os.times().system, time.perf_counter()
    await asyncio.gather(*(worker() for _ in range(concurrency)))
    return per_call(started, calls)


class Contender:
    """One way of calling DynamoDB; `run` measures `calls` calls of one operation."""

    name: str

    def run(self, operation: str, decode: bool, calls: int, concurrency: int) -> Sample:
        raise NotImplementedError

    def close(self) -> None:
        pass


class Boto3(Contender):
    name = "boto3"

    def __init__(self, settings: Settings) -> None:
        client = get_boto3_client(settings)
        self.operations = {decode: boto3_operations(client, decode) for decode in (False, True)}

    def run(self, operation: str, decode: bool, calls: int, concurrency: int) -> Sample:
        return measure_sync(self.operations[decode][operation], calls, concurrency)


class OnLoop(Contender):
    """The asyncio client called from tasks on its event loop, as an async store would call it."""

    def __init__(
        self, name: str, client: DynamoDBClient, loop_factory: Callable[[], asyncio.AbstractEventLoop]
    ) -> None:
        self.name = name
        self.client = client
        self.runner = asyncio.Runner(loop_factory=loop_factory)
        self.operations = {decode: async_operations(client, decode) for decode in (False, True)}

    def run(self, operation: str, decode: bool, calls: int, concurrency: int) -> Sample:
        return self.runner.run(measure_async(self.operations[decode][operation], calls, concurrency))

    def close(self) -> None:
        self.runner.run(self.client.close())
        self.runner.close()


class Bridge(Contender):
    """The asyncio client on a dedicated event loop thread, called from worker threads: what keeping a
    synchronous store over it would cost."""

    name = "aiohttp-bridge"

    def __init__(self, client: DynamoDBClient) -> None:
        self.client = client
        self.loop = uvloop.new_event_loop()
        self.thread = threading.Thread(target=self.loop.run_forever, daemon=True)
        self.thread.start()
        self.operations = {decode: async_operations(client, decode) for decode in (False, True)}

    def run(self, operation: str, decode: bool, calls: int, concurrency: int) -> Sample:
        coroutine = self.operations[decode][operation]

        def call(index: int) -> None:
            asyncio.run_coroutine_threadsafe(coroutine(index), self.loop).result()

        return measure_sync(call, calls, concurrency)

    def close(self) -> None:
        asyncio.run_coroutine_threadsafe(self.client.close(), self.loop).result()
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()
        self.loop.close()


def contenders(chosen: set[str], settings: Settings) -> list[Contender]:
    made: list[Contender] = []
    if "boto3" in chosen:
        made.append(Boto3(settings))
    if "aiohttp" in chosen:
        made.append(OnLoop("aiohttp", DynamoDBClient.from_settings(settings), asyncio.new_event_loop))
    if "aiohttp-uvloop" in chosen:
        made.append(OnLoop("aiohttp-uvloop", DynamoDBClient.from_settings(settings), uvloop.new_event_loop))
    if "httpx" in chosen:
        made.append(OnLoop("httpx", HttpxClient.from_settings(settings), asyncio.new_event_loop))
    if "bridge" in chosen:
        made.append(Bridge(DynamoDBClient.from_settings(settings)))
    return made

"""Client CPU per DynamoDB call: boto3 as the store uses it today against the asyncio client
(`core.dynamodb_client`), on a local Dynoxide loaded with 200 entities x 5 categories x 20 floats
in the store's item layout.

    python -m bench.dynamodb_client [--scale 0.2] [--only NAME ...] [--json FILE]

CPU is this process's own (`time.process_time`, every thread) over the run, divided by the calls;
Dynoxide's CPU is its own process's and is not counted. Each call is measured raw (DynamoDB's
answer as the client returns it) and, for reads, with the items decoded into Python values as the
store does. "seq" runs one call at a time; "c4" keeps four in flight (four threads for boto3, four
tasks for the asyncio client).
"""

import argparse
import asyncio
import json
import multiprocessing
import os
import statistics
import sys
import tempfile
import threading
import time
import uuid
import zlib
from collections.abc import Awaitable, Callable, Coroutine
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

import aiohttp  # noqa: E402
import httpx  # noqa: E402
import orjson  # noqa: E402
import uvloop  # noqa: E402
from botocore.auth import SigV4Auth  # noqa: E402
from botocore.awsrequest import AWSRequest  # noqa: E402
from botocore.credentials import Credentials  # noqa: E402

from bench import boto3_baseline as dynamodb_values  # noqa: E402
from bench.boto3_baseline import get_client as get_boto3_client  # noqa: E402
from core.dynamodb_client import (  # noqa: E402
    ClientConfig,
    DynamoDBClient,
    DynamoDBServiceError,
    DynamoDBTimeout,
    DynamoDBUnreachable,
    attributes,
)
from core.dynamodb_client.client import CONTENT_TYPE, TARGET_PREFIX  # noqa: E402
from core.settings import Settings  # noqa: E402
from devservers import free_port, port_open, start_dynoxide  # noqa: E402

TABLE, OUTBOX, KEY = "bench_user_features", "bench_outbox", "bright_uid"
CATEGORIES = ["user_features", "credit_features", "transaction_features", "trans_features", "d0_unauth_features"]
ENTITIES = 200
FEATURES = 20
CALLS = {"GetItem": 3000, "BatchGetItem50": 300, "BatchGetItem100": 180, "TransactWriteItems": 1200}
"""Calls per measurement, split over the rounds."""


def features(entity: int, category: int) -> dict[str, float]:
    return {f"feature_{index:02d}": (entity * 7 + category * 3 + index) * 1.37 + 0.01 for index in range(FEATURES)}


def metadata(now_iso: str) -> dict[str, Any]:
    return {"updated_at": now_iso, "source": "prediction_service", "compute_id": "bench", "ttl": None}


def key(entity: int, category: str) -> dict[str, Any]:
    return {KEY: {"S": f"bench-{entity}"}, "category": {"S": category}}


def item(entity: int, category_index: int, now_iso: str) -> dict[str, Any]:
    """One category of one entity, laid out as the store writes it."""
    meta = {"created_at": {"S": now_iso}, **dynamodb_values.encode_map(metadata(now_iso))}
    return {
        **key(entity, CATEGORIES[category_index]),
        "features": {"M": {"data": dynamodb_values.encode(features(entity, category_index)), "metadata": {"M": meta}}},
        "event_time": {"S": now_iso},
    }


def write_actions(entity: int, now_iso: str) -> list[dict[str, Any]]:
    """What the store sends for a 1-category write of an existing item: its update form and the outbox put."""
    data = dynamodb_values.encode(features(entity, 0))
    meta = dynamodb_values.encode_map(metadata(now_iso))
    names = {"#k": KEY, "#f": "features", "#e": "event_time", "#x": "expires_at", "#d": "data", "#m": "metadata"}
    values: dict[str, Any] = {":e": {"S": now_iso}, ":d": data}
    assignments = ["#f.#d = :d", "#e = :e"]
    for index, (field, value) in enumerate(meta.items()):
        names[f"#m{index}"] = field
        values[f":m{index}"] = value
        assignments.append(f"#f.#m.#m{index} = :m{index}")
    event_id = str(uuid.uuid4())
    payload = {"event_id": event_id, "features": sorted(features(entity, 0))}
    return [
        {
            "Update": {
                "TableName": TABLE,
                "Key": key(entity, CATEGORIES[0]),
                "UpdateExpression": "SET " + ", ".join(assignments) + " REMOVE #x",
                "ConditionExpression": "attribute_exists(#k) AND (attribute_not_exists(#e) OR #e <= :e)",
                "ExpressionAttributeNames": names,
                "ExpressionAttributeValues": values,
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        },
        {
            "Put": {
                "TableName": OUTBOX,
                "Item": {
                    "event_id": {"S": event_id},
                    "event_key": {"S": f"bright_uid:bench-{entity}"},
                    "payload": {"S": json.dumps(payload)},
                    "created_at": {"N": f"{time.time():.6f}"},
                    "attempts": {"N": "0"},
                    "shard": {"S": str(zlib.crc32(event_id.encode()) % 4)},
                    "due_at": {"N": f"{time.time():.6f}"},
                    "lease_until": {"N": "0"},
                },
            }
        },
    ]


def _now() -> str:
    """The write's event time: newer than every write before it, so the write condition holds."""
    return datetime.now(UTC).isoformat(timespec="microseconds")


def batch_request(start: int, count: int) -> dict[str, Any]:
    keys = [key((start + offset) % ENTITIES, CATEGORIES[0]) for offset in range(count)]
    return {TABLE: {"Keys": keys, "ConsistentRead": False}}


def decode_items_boto3(items: list[dict[str, Any]]) -> None:
    for found in items:
        stored = found["features"]["M"]
        dynamodb_values.decode_map(stored["data"]["M"])
        dynamodb_values.decode_map(stored["metadata"]["M"])


def decode_items_wire(items: list[dict[str, Any]]) -> None:
    for found in items:
        stored = found["features"]["M"]
        attributes.decode_map(stored["data"]["M"])
        attributes.decode_map(stored["metadata"]["M"])


# --- the operations, for each client -------------------------------------------------------------


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
        client.transact_write_items(TransactItems=write_actions(index % ENTITIES, _now()))

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
        await client.transact_write_items(TransactItems=write_actions(index % ENTITIES, _now()))

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


# --- running and measuring -----------------------------------------------------------------------


@dataclass
class Row:
    operation: str
    client: str
    mode: str
    calls: int
    cpu_ms: float
    """Median over the rounds of this process's CPU milliseconds per call."""
    system_ms: float
    """The part of it spent in the kernel (system calls: mostly the loopback network)."""
    wall_ms: float


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


def seed(client: DynamoDBClient) -> None:
    async def run() -> None:
        for table, schema in ((TABLE, [(KEY, "HASH"), ("category", "RANGE")]), (OUTBOX, [("event_id", "HASH")])):
            await client.create_table(
                TableName=table,
                KeySchema=[{"AttributeName": name, "KeyType": kind} for name, kind in schema],
                AttributeDefinitions=[{"AttributeName": name, "AttributeType": "S"} for name, _ in schema],
                BillingMode="PAY_PER_REQUEST",
            )
        stamp = _now()
        items = [item(entity, category, stamp) for entity in range(ENTITIES) for category in range(len(CATEGORIES))]
        for start in range(0, len(items), 25):
            chunk = [{"PutRequest": {"Item": found}} for found in items[start : start + 25]]
            answer = await client.batch_write_item(RequestItems={TABLE: chunk})
            assert not answer.get("UnprocessedItems"), "unprocessed writes while seeding"
        await client.close()

    asyncio.run(run())


def isolate_environment() -> None:
    """Fake credentials and no configured endpoint, whatever the shell holds: both clients resolve the same."""
    os.environ.update(
        AWS_ACCESS_KEY_ID="bench",
        AWS_SECRET_ACCESS_KEY="bench",
        AWS_CONFIG_FILE="/dev/null",
        AWS_SHARED_CREDENTIALS_FILE="/dev/null",
    )
    for name in (
        "AWS_SESSION_TOKEN",
        "AWS_PROFILE",
        "AWS_DEFAULT_PROFILE",
        "AWS_ENDPOINT_URL",
        "AWS_ENDPOINT_URL_DYNAMODB",
    ):
        os.environ.pop(name, None)


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


def summary(rows: list[Row], names: list[str]) -> str:
    """A Markdown table: CPU ms per call for each client, and boto3's over each other client's."""
    table: dict[tuple[str, str], dict[str, float]] = {}
    for row in rows:
        table.setdefault((row.operation, row.mode), {})[row.client] = row.cpu_ms
    others = [name for name in names if name != "boto3"]
    header = ["operation", "mode", *names] + [f"boto3 / {name}" for name in others if "boto3" in names]
    lines = ["| " + " | ".join(header) + " |", "|" + " --- |" * 2 + " ---: |" * (len(header) - 2)]
    for (operation, mode), cpu in table.items():
        cells = [operation, mode] + [f"{cpu[name]:.3f}" if name in cpu else "" for name in names]
        if "boto3" in names:
            cells += [f"{cpu['boto3'] / cpu[name]:.1f}x" if name in cpu and "boto3" in cpu else "" for name in others]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--scale", type=float, default=1.0, help="multiply the number of calls")
    parser.add_argument("--rounds", type=int, default=3, help="rounds per measurement; the median is reported")
    parser.add_argument(
        "--only", nargs="*", help="clients to run: boto3, aiohttp, aiohttp-uvloop, httpx, bridge (default: all)"
    )
    parser.add_argument("--operations", nargs="*", choices=list(CALLS), help="operations to run (default: all)")
    parser.add_argument("--modes", nargs="*", default=["seq", "c4"], choices=["seq", "c4"])
    parser.add_argument("--json", type=Path, help="also write the rows to this file")
    args = parser.parse_args()
    isolate_environment()
    chosen = set(args.only or ["boto3", "aiohttp", "aiohttp-uvloop", "httpx", "bridge"])
    wanted_operations = [name for name in CALLS if name in (args.operations or CALLS)]
    concurrency = {"seq": 1, "c4": 4}
    rows: list[Row] = []

    with tempfile.TemporaryDirectory() as work:
        server, endpoint = start_dynoxide(Path(work))
        try:
            settings = Settings(_env_file=None, store_backend="dynamodb", dynamodb_endpoint_url=endpoint)
            seed(DynamoDBClient.from_settings(settings))
            made = contenders(chosen, settings)
            try:
                for contender in made:  # warm: connections open, code paths run once
                    for name in wanted_operations:
                        contender.run(name, False, 5, 1)
                for decode in (False, True):
                    for name in wanted_operations:
                        if decode and name == "TransactWriteItems":
                            continue
                        calls = max(5, int(CALLS[name] * args.scale / args.rounds))
                        label = name + (" +decode" if decode else "")
                        for mode in args.modes:
                            samples: dict[str, list[Sample]] = {c.name: [] for c in made}
                            for _ in range(args.rounds):  # interleaved, so a change in the machine's load hits all
                                for contender in made:
                                    samples[contender.name].append(
                                        contender.run(name, decode, calls, concurrency[mode])
                                    )
                            for contender in made:
                                cpu, system, wall = (
                                    statistics.median(sample[field] for sample in samples[contender.name])
                                    for field in range(3)
                                )
                                rows.append(
                                    Row(
                                        label,
                                        contender.name,
                                        mode,
                                        calls * args.rounds,
                                        round(cpu, 3),
                                        round(system, 3),
                                        round(wall, 3),
                                    )
                                )
                                print(
                                    f"{label:<26} {contender.name:<15} {mode:<4} {cpu:7.3f} ms CPU "
                                    f"({system:6.3f} system) {wall:8.3f} ms wall"
                                )
            finally:
                for contender in made:
                    contender.close()
        finally:
            server.stop()

    decode_rows = converter_benchmark(max(20, int(500 * args.scale)))
    breakdown = call_breakdown(max(100, int(5000 * args.scale)))
    print()
    print(summary(rows, [contender.name for contender in made]))
    if args.json:
        report = {"calls": [asdict(row) for row in rows], "decode": decode_rows, "breakdown": breakdown}
        args.json.write_text(json.dumps(report, indent=2))
    return 0


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


def converter_benchmark(rounds: int) -> dict[str, float]:
    """Microseconds to decode 50 items' features and metadata into Python, with each converter."""
    stamp = _now()
    boto3_items = [item(entity, 0, stamp) for entity in range(50)]
    wire_items = json.loads(json.dumps(boto3_items))
    results = {}
    for name, decode, items in (
        ("boto3_baseline (the store's before)", decode_items_boto3, boto3_items),
        ("dynamodb_client.attributes", decode_items_wire, wire_items),
    ):
        started = time.process_time()
        for _ in range(rounds):
            decode(items)
        results[name] = round((time.process_time() - started) * 1e6 / rounds, 1)
        print(f"decode 50 items x 20 features, {name:<30} {results[name]:8.1f} us")
    return results


if __name__ == "__main__":
    raise SystemExit(main())

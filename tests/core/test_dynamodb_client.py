"""The asyncio DynamoDB client: calls against a real local DynamoDB (Dynoxide), its errors read as
botocore reads them, and its retries, timeouts, signing and configuration against a small local
HTTP server that answers what a test tells it to."""

import asyncio
import threading
import time
import uuid
import zlib
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import boto3
import orjson
import pytest
from aiohttp import web
from botocore import xform_name
from botocore.credentials import Credentials, RefreshableCredentials
from botocore.exceptions import ClientError

from components.features.store.dynamodb import translate_error
from core.dynamodb_client import (
    ChecksumMismatch,
    ClientConfig,
    DynamoDBClient,
    DynamoDBError,
    DynamoDBServiceError,
    DynamoDBTimeout,
    DynamoDBUnreachable,
    InvalidParameters,
    NoCredentials,
    get_client,
    get_client_async,
)
from core.dynamodb_client.retries import RetryPolicy
from core.exceptions import FeatureStoreError, PayloadTooLarge, StoreUnavailable
from core.settings import Settings
from devservers import free_port

pytestmark = pytest.mark.anyio

TARGET = "DynamoDB_20120810."


def settings_for(endpoint: str, **overrides: Any) -> Settings:
    return Settings(_env_file=None, store_backend="dynamodb", dynamodb_endpoint_url=endpoint, **overrides)


# --- against Dynoxide ----------------------------------------------------------------------------


@pytest.fixture
async def dynamodb(dynamodb_endpoint: str) -> AsyncIterator[DynamoDBClient]:
    client = DynamoDBClient.from_settings(settings_for(dynamodb_endpoint))
    yield client
    await client.close()


@pytest.fixture
async def table(dynamodb: DynamoDBClient) -> str:
    name = f"t{uuid.uuid4().hex[:12]}"
    await dynamodb.create_table(
        TableName=name,
        KeySchema=[{"AttributeName": "pk", "KeyType": "HASH"}, {"AttributeName": "sk", "KeyType": "RANGE"}],
        AttributeDefinitions=[
            {"AttributeName": "pk", "AttributeType": "S"},
            {"AttributeName": "sk", "AttributeType": "S"},
        ],
        BillingMode="PAY_PER_REQUEST",
    )
    return name


def key(pk: str, sk: str = "a") -> dict[str, Any]:
    return {"pk": {"S": pk}, "sk": {"S": sk}}


async def test_put_then_get_returns_dynamodb_json(dynamodb: DynamoDBClient, table: str) -> None:
    item = {**key("user-1"), "n": {"N": "1.25"}, "big": {"N": str(10**30)}, "b": {"B": b"\x00\xffbytes"}}
    assert await dynamodb.put_item(TableName=table, Item=item) == {}
    found = (await dynamodb.get_item(TableName=table, Key=key("user-1"), ConsistentRead=True))["Item"]
    assert found["n"] == {"N": "1.25"} and found["big"] == {"N": str(10**30)}
    assert found["b"] == {"B": "AP9ieXRlcw=="}, "binary values travel as base64 text"
    assert await dynamodb.get_item(TableName=table, Key=key("nobody")) == {}


async def test_batch_get_of_a_hundred_keys(dynamodb: DynamoDBClient, table: str) -> None:
    for start in range(0, 100, 25):
        writes = [{"PutRequest": {"Item": {**key(f"e{i}"), "i": {"N": str(i)}}}} for i in range(start, start + 25)]
        assert not (await dynamodb.batch_write_item(RequestItems={table: writes})).get("UnprocessedItems")
    answer = await dynamodb.batch_get_item(RequestItems={table: {"Keys": [key(f"e{i}") for i in range(100)]}})
    assert not answer.get("UnprocessedKeys")
    assert sorted(int(found["i"]["N"]) for found in answer["Responses"][table]) == list(range(100))


async def test_cancelled_transaction_surfaces_its_reasons(dynamodb: DynamoDBClient, table: str) -> None:
    await dynamodb.put_item(TableName=table, Item={**key("taken"), "v": {"S": "old"}})
    actions = [
        {
            "Put": {
                "TableName": table,
                "Item": {**key("taken"), "v": {"S": "new"}},
                "ConditionExpression": "attribute_not_exists(pk)",
                "ReturnValuesOnConditionCheckFailure": "ALL_OLD",
            }
        },
        {"Put": {"TableName": table, "Item": {**key("free"), "v": {"S": "new"}}}},
    ]
    with pytest.raises(DynamoDBServiceError) as caught:
        await dynamodb.transact_write_items(TransactItems=actions, ClientRequestToken=str(uuid.uuid4()))
    error = caught.value
    assert (error.code, error.status) == ("TransactionCanceledException", 400)
    reasons = error.cancellation_reasons
    assert [reason["Code"] for reason in reasons] == ["ConditionalCheckFailed", "None"]
    assert reasons[0]["Item"]["v"] == {"S": "old"}
    assert error.response["CancellationReasons"] == reasons
    assert error.response["Error"]["Code"] == "TransactionCanceledException"
    assert await dynamodb.get_item(TableName=table, Key=key("free"), ConsistentRead=True) == {}


async def test_failed_condition_carries_the_old_item(dynamodb: DynamoDBClient, table: str) -> None:
    await dynamodb.put_item(TableName=table, Item={**key("x"), "v": {"N": "1"}})
    with pytest.raises(DynamoDBServiceError) as caught:
        await dynamodb.update_item(
            TableName=table,
            Key=key("x"),
            UpdateExpression="SET v = :two",
            ConditionExpression="v = :zero",
            ExpressionAttributeValues={":two": {"N": "2"}, ":zero": {"N": "0"}},
            ReturnValuesOnConditionCheckFailure="ALL_OLD",
        )
    assert caught.value.code == "ConditionalCheckFailedException"
    assert caught.value.response["Item"]["v"] == {"N": "1"}


def boto3_client(settings: Settings) -> Any:
    """boto3, the reference this client's answers and errors are compared with."""
    return boto3.session.Session().client(
        "dynamodb", region_name=settings.aws_region, endpoint_url=settings.dynamodb_endpoint_url or None
    )


def boto3_error(settings: Settings, operation: str, params: dict[str, Any]) -> ClientError:
    method = getattr(boto3_client(settings), xform_name(operation))
    with pytest.raises(ClientError) as caught:
        method(**params)
    return caught.value


async def test_errors_read_and_translate_as_botocore_reads_them(
    dynamodb_endpoint: str, dynamodb: DynamoDBClient, table: str
) -> None:
    """Same failure through boto3 and through this client: same code, message and `response`, and the
    store translates it into the service's error it always gave for that code (413, 503 with the
    retry hint, 500)."""
    await dynamodb.put_item(TableName=table, Item={**key("x"), "v": {"N": "1"}})
    failures: dict[str, tuple[str, dict[str, Any], type[FeatureStoreError], int | None]] = {
        "item too large": (
            "PutItem",
            {"TableName": table, "Item": {**key("big"), "v": {"S": "x" * 410_000}}},
            PayloadTooLarge,
            None,
        ),
        "missing table": ("GetItem", {"TableName": "no_such_table", "Key": key("x")}, StoreUnavailable, 2),
        "bad key": ("GetItem", {"TableName": table, "Key": {"nope": {"S": "x"}}}, FeatureStoreError, None),
        "condition": (
            "PutItem",
            {"TableName": table, "Item": key("x"), "ConditionExpression": "attribute_not_exists(pk)"},
            StoreUnavailable,
            2,
        ),
        "transaction too large": (
            "TransactWriteItems",
            {"TransactItems": [{"Put": {"TableName": table, "Item": {**key("b"), "v": {"S": "x" * 410_000}}}}]},
            PayloadTooLarge,
            None,
        ),
    }
    for name, (operation, params, kind, retry_after) in failures.items():
        expected = boto3_error(settings_for(dynamodb_endpoint), operation, params)
        with pytest.raises(DynamoDBServiceError) as caught:
            await dynamodb.call(operation, params)
        mine = caught.value
        assert mine.response["Error"] == expected.response["Error"], name
        assert (mine.code, mine.message) == (expected.response["Error"]["Code"], expected.response["Error"]["Message"])
        assert str(mine) == str(expected), name
        translated = translate_error(mine, name)
        assert (type(translated), translated.retry_after) == (kind, retry_after), name


async def test_endpoint_from_aws_endpoint_url_dynamodb(dynamodb_endpoint: str, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("AWS_ENDPOINT_URL_DYNAMODB", dynamodb_endpoint)
    client = DynamoDBClient.from_settings(settings_for("", aws_region="eu-west-3"))
    try:
        assert (client.config.endpoint_url, client.config.region) == (dynamodb_endpoint, "eu-west-3")
        assert "TableNames" in await client.call("ListTables", {})
    finally:
        await client.close()


async def test_values_round_trip_as_the_store_reads_them(
    dynamodb_endpoint: str, dynamodb: DynamoDBClient, table: str
) -> None:
    """What the store encodes reads back as the same values, as JSON types (no `Decimal`), and boto3
    finds the same item stored."""
    from boto3.dynamodb.types import TypeDeserializer

    from core.dynamodb_client import attributes

    values = {
        "int": 42,
        "negative": -7,
        "huge_int": 2**100,
        "float": 0.1 + 0.2,
        "integral_float": 3.0,
        "tiny": 1e-7,
        "large": 1.5e120,
        "out_of_range": 1e-300,
        "infinite": float("inf"),
        "text": "héllo",
        "flag": True,
        "nothing": None,
        "list": [1, 2.5, "x", [None]],
        "nested": {"a": {"b": -0.0}},
    }
    encoded = attributes.encode_map(values)
    await dynamodb.put_item(TableName=table, Item={**key("values"), "data": {"M": encoded}})
    wire = (await dynamodb.get_item(TableName=table, Key=key("values"), ConsistentRead=True))["Item"]
    through_boto3 = boto3_client(settings_for(dynamodb_endpoint)).get_item(
        TableName=table, Key=key("values"), ConsistentRead=True
    )["Item"]
    decoded = attributes.decode_map(wire["data"]["M"])
    # DynamoDB keeps a number's value, not its spelling: an integral float comes back as its digits.
    assert decoded == values | {"large": 15 * 10**119}
    assert TypeDeserializer().deserialize(through_boto3["data"]["M"]["int"]) == 42
    assert decoded["integral_float"] == 3 and type(decoded["integral_float"]) is int
    assert type(decoded["float"]) is float and decoded["out_of_range"] == 1e-300
    assert attributes.decode({"B": "AP8="}) == "00ff"


# --- the shared client ---------------------------------------------------------------------------


def test_one_client_per_configuration_for_all_threads(dynamodb_endpoint: str) -> None:
    settings = settings_for(dynamodb_endpoint, dynamodb_max_attempts=4)
    barrier = threading.Barrier(8)
    built: list[DynamoDBClient] = []

    def build() -> None:
        barrier.wait()
        built.append(get_client(settings))

    threads = [threading.Thread(target=build) for _ in range(8)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    assert len({id(client) for client in built}) == 1
    assert get_client(settings_for(dynamodb_endpoint, dynamodb_max_attempts=4)) is built[0]
    assert get_client(settings_for(dynamodb_endpoint, dynamodb_max_attempts=5)) is not built[0]
    assert asyncio.run(get_client_async(settings)) is built[0]


def test_shared_client_serves_one_event_loop_after_another(dynamodb_endpoint: str) -> None:
    """Each event loop gets a connection pool of its own (a pool cannot cross loops)."""
    client = get_client(settings_for(dynamodb_endpoint, dynamodb_read_timeout_seconds=3.0))

    async def list_tables() -> Any:
        try:
            return await client.call("ListTables", {})
        finally:
            await client.close()

    assert "TableNames" in asyncio.run(list_tables())
    assert "TableNames" in asyncio.run(list_tables())


# --- against a local server that answers as told --------------------------------------------------


@dataclass
class Answer:
    status: int = 200
    body: Any = field(default_factory=dict)
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    crc32: bool = True
    raw: bytes | None = None


@dataclass
class FakeDynamoDB:
    """Answers each request with the next scripted answer (the last one repeats) and records requests."""

    url: str
    answers: list[Answer] = field(default_factory=list)
    requests: list[tuple[dict[str, str], bytes]] = field(default_factory=list)
    peers: list[Any] = field(default_factory=list)
    """The client's address of each request: one per pooled connection."""

    def script(self, *answers: Answer) -> None:
        self.answers[:] = answers

    async def handle(self, request: web.Request) -> web.Response:
        self.requests.append((dict(request.headers), await request.read()))
        self.peers.append(request.transport.get_extra_info("peername") if request.transport else None)
        answer = self.answers[min(len(self.requests), len(self.answers)) - 1] if self.answers else Answer()
        if answer.delay:
            await asyncio.sleep(answer.delay)
        body = answer.raw if answer.raw is not None else orjson.dumps(answer.body)
        headers = {"Content-Type": "application/x-amz-json-1.0", "x-amzn-RequestId": "req-1", **answer.headers}
        if answer.crc32:
            headers.setdefault("x-amz-crc32", str(zlib.crc32(body)))
        return web.Response(status=answer.status, body=body, headers=headers)


@pytest.fixture
async def fake() -> AsyncIterator[FakeDynamoDB]:
    port = free_port()
    server = FakeDynamoDB(f"http://127.0.0.1:{port}")
    app = web.Application()
    app.router.add_post("/", server.handle)
    runner = web.AppRunner(app)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", port).start()
    yield server
    await runner.cleanup()


def throttled(code: str = "ThrottlingException", status: int = 400, headers: dict[str, str] | None = None) -> Answer:
    body = {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "message": "slow down"}
    return Answer(status, body, headers or {})


def make_client(url: str, *, credentials: Any = None, rand: float = 0.001, **config: Any) -> DynamoDBClient:
    values: dict[str, Any] = {"endpoint_url": url, "region": "eu-west-3", "read_timeout": 2.0, **config}
    client = DynamoDBClient(ClientConfig(**values), credentials or Credentials("AKIDTEST", "secret"))
    client.retry_policy = RetryPolicy(client.config.retry_mode, client.config.max_attempts, rand=lambda: rand)
    return client


@pytest.fixture
async def client_for(fake: FakeDynamoDB) -> AsyncIterator[Any]:
    made: list[DynamoDBClient] = []

    def factory(**config: Any) -> DynamoDBClient:
        client = make_client(fake.url, **config)
        made.append(client)
        return client

    yield factory
    for client in made:
        await client.close()


async def test_requests_are_signed_for_the_region_and_service(fake: FakeDynamoDB, client_for: Any) -> None:
    fake.script(Answer(body={"Item": {"pk": {"S": "a"}}}))
    client = client_for(credentials=Credentials("AKIDTEST", "secret", "session-token"))
    assert await client.get_item(TableName="t", Key={"pk": {"S": "a"}}) == {"Item": {"pk": {"S": "a"}}}
    headers, body = fake.requests[0]
    today = datetime.now(UTC).strftime("%Y%m%d")
    authorization = headers["Authorization"]
    assert authorization.startswith(f"AWS4-HMAC-SHA256 Credential=AKIDTEST/{today}/eu-west-3/dynamodb/aws4_request, ")
    signed = authorization.split("SignedHeaders=")[1].split(",")[0].split(";")
    assert {"host", "x-amz-date", "x-amz-target", "content-type", "x-amz-security-token"} <= set(signed)
    assert headers["X-Amz-Target"] == TARGET + "GetItem"
    assert headers["Content-Type"] == "application/x-amz-json-1.0"
    assert headers["X-Amz-Security-Token"] == "session-token"
    assert headers["Host"] == fake.url.removeprefix("http://")
    assert orjson.loads(body) == {"TableName": "t", "Key": {"pk": {"S": "a"}}}


async def test_an_empty_answer_is_an_empty_result_as_in_botocore(fake: FakeDynamoDB, client_for: Any) -> None:
    fake.script(Answer(raw=b""))
    assert await client_for().call("DeleteItem", {}) == {}
    fake.script(Answer(raw=b"<html>proxy</html>"))
    with pytest.raises(DynamoDBError, match="not JSON"):
        await client_for(max_attempts=3).call("DeleteItem", {})
    assert len(fake.requests) == 2, "an answer that cannot be read is not retried"


async def test_binary_values_are_sent_as_base64(fake: FakeDynamoDB, client_for: Any) -> None:
    await client_for().put_item(TableName="t", Item={"b": {"B": b"\x00\x01"}})
    assert orjson.loads(fake.requests[0][1])["Item"]["b"] == {"B": "AAE="}
    with pytest.raises(InvalidParameters):
        await client_for().put_item(TableName="t", Item={"b": {"N": object()}})
    assert len(fake.requests) == 1, "nothing is sent for parameters that cannot be serialised"


async def test_refreshable_credentials_refresh_off_the_event_loop(fake: FakeDynamoDB, client_for: Any) -> None:
    loop_thread = threading.get_ident()
    refreshed_on: list[int] = []

    def refresh() -> dict[str, str]:
        refreshed_on.append(threading.get_ident())
        expiry = datetime.now(UTC) + timedelta(hours=1)
        return {
            "access_key": f"AKIDNEW{len(refreshed_on)}",
            "secret_key": "s",
            "token": "t",
            "expiry_time": expiry.isoformat(),
        }

    expired = datetime.now(UTC) - timedelta(minutes=1)
    credentials = RefreshableCredentials("AKIDOLD", "s", "t", expired, refresh, "test")
    client = client_for(credentials=credentials)
    await client.call("ListTables", {})
    await client.call("ListTables", {})
    assert len(refreshed_on) == 1 and refreshed_on[0] != loop_thread
    assert all("Credential=AKIDNEW1/" in headers["Authorization"] for headers, _ in fake.requests)


async def test_no_credentials_fails_without_sending(fake: FakeDynamoDB) -> None:
    client = DynamoDBClient(ClientConfig(endpoint_url=fake.url, region="eu-west-3"), None)
    with pytest.raises(NoCredentials):
        await client.call("ListTables", {})
    assert fake.requests == []


async def test_throttling_is_retried_then_succeeds(fake: FakeDynamoDB, client_for: Any) -> None:
    fake.script(throttled(), throttled("ProvisionedThroughputExceededException"), Answer(body={"Count": 1}))
    client = client_for(max_attempts=3)
    assert await client.call("Query", {"TableName": "t"}) == {"Count": 1}
    assert len(fake.requests) == 3
    assert client.retry_policy.quota is not None
    assert client.retry_policy.quota.available == 500 - 5, "a success after retries gives back the last retry's cost"


@pytest.mark.parametrize(
    "answer",
    [
        throttled("RequestLimitExceeded"),
        throttled("TransactionInProgressException"),
        Answer(500, {"__type": "com.amazonaws.dynamodb.v20120810#InternalServerError", "message": "oops"}),
        Answer(503, raw=b"<html>Service Unavailable</html>"),
        Answer(429, raw=b""),
    ],
    ids=["request-limit", "transaction-in-progress", "500", "503-html", "429-empty"],
)
async def test_retryable_failures_stop_after_max_attempts(fake: FakeDynamoDB, client_for: Any, answer: Answer) -> None:
    fake.script(answer)
    with pytest.raises(DynamoDBServiceError) as caught:
        await client_for(max_attempts=4).call("GetItem", {})
    assert len(fake.requests) == 4
    assert caught.value.status == answer.status
    if answer.raw is not None:
        assert caught.value.code == str(answer.status), "a body without __type is coded by its status, as in botocore"


@pytest.mark.parametrize(
    "code",
    ["ValidationException", "ConditionalCheckFailedException", "ResourceNotFoundException", "AccessDeniedException"],
)
async def test_client_errors_are_not_retried(fake: FakeDynamoDB, client_for: Any, code: str) -> None:
    fake.script(Answer(400, {"__type": f"com.amazonaws.dynamodb.v20120810#{code}", "Message": "no"}))
    with pytest.raises(DynamoDBServiceError) as caught:
        await client_for(max_attempts=5).call("PutItem", {})
    assert len(fake.requests) == 1
    assert (caught.value.code, caught.value.message, caught.value.response["ResponseMetadata"]["RequestId"]) == (
        code,
        "no",
        "req-1",
    )


async def test_throttling_error_maps_to_the_services_retry_later(fake: FakeDynamoDB, client_for: Any) -> None:
    fake.script(throttled())
    with pytest.raises(DynamoDBServiceError) as caught:
        await client_for(max_attempts=1).call("GetItem", {})
    assert caught.value.throttling
    translated = translate_error(caught.value, "GetItem")
    assert (translated.status_code, translated.retry_after) == (503, 1)


async def test_backoff_honours_retry_after_and_stays_short_for_transient_failures(
    fake: FakeDynamoDB, client_for: Any
) -> None:
    fake.script(throttled(headers={"x-amz-retry-after": "300"}), Answer(body={}))
    started = time.monotonic()
    await client_for(rand=0.0).call("GetItem", {})
    assert 0.3 <= time.monotonic() - started < 0.3 + 0.5, "the jitter drew 0; DynamoDB asked for 300 ms"
    fake.requests.clear()
    fake.script(Answer(500, {}), Answer(500, {}), Answer(body={}))
    started = time.monotonic()
    await client_for(rand=1.0).call("GetItem", {})
    assert time.monotonic() - started < 0.025 + 0.05 + 0.5, "transient failures back off from 25 ms"
    assert len(fake.requests) == 3


def test_backoff_formulas() -> None:
    standard = RetryPolicy("standard", 10, rand=lambda: 1.0)
    assert [standard.backoff(attempt, "throttling") for attempt in (1, 2, 3, 6, 9)] == [1, 2, 4, 20, 20]
    assert [standard.backoff(attempt, "transient") for attempt in (1, 2, 3)] == [0.025, 0.05, 0.1]
    assert standard.backoff(1, "transient", retry_after=30) == 0.025 + 5, "retry-after is capped at 5 s beyond"
    jitter = RetryPolicy("standard", 10, rand=lambda: 0.5)
    assert jitter.backoff(2, "throttling") == 1.0
    legacy = RetryPolicy("legacy", 10)
    assert [legacy.backoff(attempt, "throttling") for attempt in (1, 2, 3)] == [0.05, 0.1, 0.2]
    assert legacy.quota is None
    with pytest.raises(ValueError):
        RetryPolicy("eager", 3)


def test_retry_quota_stops_retries_when_dynamodb_keeps_failing() -> None:
    policy = RetryPolicy("standard", 3, rand=lambda: 0.0)
    unreachable = DynamoDBUnreachable("down")
    retries = 0
    while policy.retry("GetItem", 1, unreachable) is not None:
        retries += 1
    assert retries == 500 // 14
    assert policy.retry("GetItem", 1, DynamoDBServiceError("GetItem", 400, {"__type": "x#ThrottlingException"})) == (
        0.0,
        5,
    ), "a throttling retry costs less than the 10 left"
    policy.succeeded(0)
    assert policy.quota is not None and policy.quota.available == 500 - 35 * 14 - 5 + 1


@pytest.mark.slow
@pytest.mark.timing
async def test_adaptive_mode_paces_sends_after_throttling_without_blocking_the_loop() -> None:
    policy = RetryPolicy("adaptive", 3)
    assert policy.limiter is not None
    await asyncio.wait_for(policy.before_send(), 0.1)
    policy.answered(throttled=True)
    ticks = 0

    async def ticker() -> None:
        nonlocal ticks
        while True:
            ticks += 1
            await asyncio.sleep(0.01)

    task = asyncio.create_task(ticker())
    started = time.monotonic()
    await policy.before_send()
    elapsed = time.monotonic() - started
    task.cancel()
    assert elapsed >= 0.5, "after a throttle at a rate of about one call a second, the next send waits"
    assert ticks >= elapsed / 0.01 / 3, "the event loop kept running while the send waited"


async def test_read_timeout_raises_a_timeout_after_retrying(fake: FakeDynamoDB, client_for: Any) -> None:
    fake.script(Answer(delay=1.0))
    started = time.monotonic()
    with pytest.raises(DynamoDBTimeout, match="did not answer GetItem in time"):
        await client_for(read_timeout=0.1, max_attempts=2).call("GetItem", {})
    assert time.monotonic() - started < 0.9
    assert len(fake.requests) == 2


async def test_connection_refused_is_unreachable() -> None:
    client = make_client(f"http://127.0.0.1:{free_port()}", max_attempts=2)
    try:
        with pytest.raises(DynamoDBUnreachable) as caught:
            await client.call("GetItem", {})
        assert not isinstance(caught.value, DynamoDBTimeout)
    finally:
        await client.close()


async def test_damaged_answer_is_retried_then_reported(fake: FakeDynamoDB, client_for: Any) -> None:
    fake.script(Answer(body={"Item": {}}, headers={"x-amz-crc32": "1"}), Answer(body={"Item": {}}))
    assert await client_for(max_attempts=2).call("GetItem", {}) == {"Item": {}}
    fake.requests.clear()
    fake.script(Answer(body={"Item": {}}, headers={"x-amz-crc32": "1"}))
    with pytest.raises(ChecksumMismatch):
        await client_for(max_attempts=2).call("GetItem", {})
    assert len(fake.requests) == 2


async def test_connections_are_pooled(fake: FakeDynamoDB, client_for: Any) -> None:
    client = client_for()
    for _ in range(5):
        await client.call("ListTables", {})
    assert len(fake.requests) == 5
    assert len(set(fake.peers)) == 1, "one connection, kept alive, served every call"


# --- configuration resolved as boto3 resolves it --------------------------------------------------


@pytest.fixture
def clean_environment(monkeypatch: pytest.MonkeyPatch) -> pytest.MonkeyPatch:
    for name, value in {
        "AWS_ACCESS_KEY_ID": "AKIDENV",
        "AWS_SECRET_ACCESS_KEY": "secret",
        "AWS_CONFIG_FILE": "/dev/null",
        "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
    }.items():
        monkeypatch.setenv(name, value)
    for name in ("AWS_ENDPOINT_URL", "AWS_ENDPOINT_URL_DYNAMODB", "AWS_PROFILE", "AWS_SESSION_TOKEN", "HTTPS_PROXY"):
        monkeypatch.delenv(name, raising=False)
    return monkeypatch


def test_endpoint_and_region_resolution(clean_environment: pytest.MonkeyPatch) -> None:
    def resolved(endpoint: str = "", region: str = "eu-west-3") -> tuple[str, str]:
        config = DynamoDBClient.from_settings(settings_for(endpoint, aws_region=region)).config
        return config.endpoint_url, config.region

    assert resolved() == ("https://dynamodb.eu-west-3.amazonaws.com", "eu-west-3")
    assert resolved(region="cn-north-1")[0] == "https://dynamodb.cn-north-1.amazonaws.com.cn"
    clean_environment.setenv("AWS_ENDPOINT_URL", "http://everything.local:1")
    assert resolved()[0] == "http://everything.local:1"
    clean_environment.setenv("AWS_ENDPOINT_URL_DYNAMODB", "http://dynamodb.local:2")
    assert resolved()[0] == "http://dynamodb.local:2", "the service's own variable wins over the global one"
    assert resolved("http://settings.local:3")[0] == "http://settings.local:3", "DYNAMODB_ENDPOINT_URL wins"


def test_settings_become_the_clients_configuration(clean_environment: pytest.MonkeyPatch) -> None:
    settings = settings_for(
        "",
        aws_region="eu-west-2",
        dynamodb_connect_timeout_seconds=0.7,
        dynamodb_read_timeout_seconds=1.5,
        dynamodb_max_attempts=5,
        dynamodb_retry_mode="adaptive",
        dynamodb_max_connections=44,
    )
    client = DynamoDBClient.from_settings(settings)
    config = client.config
    assert (config.connect_timeout, config.read_timeout, config.max_attempts, config.pool_size) == (0.7, 1.5, 5, 44)
    assert client.retry_policy.mode == "adaptive" and client.retry_policy.max_attempts == 5
    assert config.ca_bundle, "https endpoints verify against botocore's CA bundle"
    assert config.proxy is None


async def test_credentials_come_from_botocores_chain(
    clean_environment: pytest.MonkeyPatch, tmp_path: Any, fake: FakeDynamoDB
) -> None:
    clean_environment.delenv("AWS_ACCESS_KEY_ID")
    clean_environment.delenv("AWS_SECRET_ACCESS_KEY")
    credentials_file = tmp_path / "credentials"
    credentials_file.write_text("[reader]\naws_access_key_id = AKIDPROFILE\naws_secret_access_key = s\n")
    clean_environment.setenv("AWS_SHARED_CREDENTIALS_FILE", str(credentials_file))
    clean_environment.setenv("AWS_PROFILE", "reader")
    client = DynamoDBClient.from_settings(settings_for(fake.url))
    try:
        await client.call("ListTables", {})
    finally:
        await client.close()
    assert "Credential=AKIDPROFILE/" in fake.requests[0][0]["Authorization"]


def test_proxy_from_the_environment(clean_environment: pytest.MonkeyPatch) -> None:
    clean_environment.setenv("HTTPS_PROXY", "http://proxy.local:3128")
    assert DynamoDBClient.from_settings(settings_for("")).config.proxy == "http://proxy.local:3128"
    clean_environment.setenv("NO_PROXY", "amazonaws.com")
    assert DynamoDBClient.from_settings(settings_for("")).config.proxy is None

"""An asyncio DynamoDB client speaking DynamoDB's JSON 1.0 protocol over a pooled aiohttp session.

What the AWS SDK is trusted for stays with botocore: credentials come from botocore's own chain
(environment, shared files and profiles, web identity / EKS IRSA, ECS task role, instance
metadata), refreshed by botocore, with a refresh run in a thread so the event loop never waits on
a credentials provider; requests are signed by botocore's `SigV4Auth`; region and endpoint are the
ones a botocore client built from the same settings resolves (`DYNAMODB_ENDPOINT_URL`, then
`AWS_ENDPOINT_URL_DYNAMODB`, `AWS_ENDPOINT_URL`, the shared config, FIPS and partition endpoints);
the CA bundle and proxies are botocore's too. The request pipeline (serialisation, validation,
events) and response parsing are replaced by orjson on DynamoDB's own JSON, which is what the
store builds and reads anyway.

The HTTP session belongs to an event loop; the client keeps one per loop that uses it (in a
service, the one loop), created on first use and closed by `close()` from that loop.
"""

import asyncio
import base64
import socket
import ssl
import threading
import zlib
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import botocore
import orjson
from aiohttp.abc import AbstractCookieJar
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials, RefreshableCredentials
from botocore.exceptions import BotoCoreError
from yarl import URL

from core import VERSION
from core.dynamodb_client.config import SERVICE, ClientConfig, resolve
from core.dynamodb_client.errors import (
    ChecksumMismatch,
    DynamoDBError,
    DynamoDBServiceError,
    DynamoDBTimeout,
    DynamoDBUnreachable,
    InvalidParameters,
    NoCredentials,
)
from core.dynamodb_client.retries import THROTTLING, RetryPolicy, failure_kind
from core.settings import Settings

TARGET_PREFIX = "DynamoDB_20120810."
CONTENT_TYPE = "application/x-amz-json-1.0"
KEEPALIVE_SECONDS = 15.0
"""Idle pooled connections are closed after this long (aiohttp's default, said out loud)."""
USER_AGENT = f"feature-store-api/{VERSION} aiohttp/{aiohttp.__version__} botocore/{botocore.__version__}"


def _wire_value(value: Any) -> Any:
    """orjson's fallback: binary attribute values travel as base64 text (what botocore does with bytes)."""
    if isinstance(value, bytes | bytearray | memoryview):
        return base64.b64encode(value).decode("ascii")
    raise TypeError(f"a {type(value).__name__} cannot be sent to DynamoDB")


def _keepalive_socket(addr_info: Any) -> socket.socket:
    family, kind, proto, _, _ = addr_info
    sock = socket.socket(family, kind, proto)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_KEEPALIVE, 1)
    return sock


class DynamoDBClient:
    """`await client.call("GetItem", {...})` returns DynamoDB's JSON answer as a dict; failures raise
    `DynamoDBError`s (see `errors`), after the retry mode's retries. Safe to share between tasks."""

    def __init__(self, config: ClientConfig, credentials: Credentials | None) -> None:
        self.config = config
        self._credentials = credentials
        self._refreshable = isinstance(credentials, RefreshableCredentials)
        self._signer: SigV4Auth | None = None
        self.retry_policy = RetryPolicy(config.retry_mode, config.max_attempts)
        parts = urlsplit(config.endpoint_url)
        self._sign_url = config.endpoint_url if parts.path else config.endpoint_url + "/"
        self._url = URL(self._sign_url)
        # Signed as botocore would derive it from the URL, and sent as is: naming it saves the signer
        # parsing the URL twice per request.
        self._host = self._url.host_port_subcomponent
        self._timeout = aiohttp.ClientTimeout(
            total=None,
            # Waiting for a free pooled connection (plus connecting) is bounded by what one call may take.
            connect=config.connect_timeout + config.read_timeout,
            sock_connect=config.connect_timeout,
            sock_read=config.read_timeout,
        )
        self._ssl: ssl.SSLContext | bool = (
            ssl.create_default_context(cafile=config.ca_bundle) if parts.scheme == "https" else False
        )
        self._sessions: dict[asyncio.AbstractEventLoop, aiohttp.ClientSession] = {}
        self._current: tuple[asyncio.AbstractEventLoop | None, aiohttp.ClientSession | None] = (None, None)
        self._sessions_lock = threading.Lock()

    @classmethod
    def from_settings(cls, settings: Settings) -> "DynamoDBClient":
        """A new client of its own (blocking: see `resolve`); the service shares one, `get_client`."""
        return cls(*resolve(settings))

    # --- the HTTP session of the running loop ---

    def _session(self) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        current_loop, session = self._current
        if current_loop is loop and session is not None and not session.closed:
            return session
        with self._sessions_lock:
            session = self._sessions.get(loop)
            if session is None or session.closed:
                for old in [old for old in self._sessions if old.is_closed()]:
                    del self._sessions[old]
                session = self._new_session()
                self._sessions[loop] = session
            self._current = (loop, session)
        return session

    def _new_session(self) -> aiohttp.ClientSession:
        connector = aiohttp.TCPConnector(
            limit=self.config.pool_size,
            keepalive_timeout=KEEPALIVE_SECONDS,
            ssl=self._ssl,
            socket_factory=_keepalive_socket,
        )
        cookies: AbstractCookieJar = aiohttp.DummyCookieJar()
        return aiohttp.ClientSession(
            connector=connector,
            timeout=self._timeout,
            cookie_jar=cookies,
            headers={"User-Agent": USER_AGENT, "Accept-Encoding": "identity"},
            proxy=self.config.proxy,
        )

    async def close(self) -> None:
        """Close the running loop's session (its pooled connections); a later call opens a new one."""
        with self._sessions_lock:
            session = self._sessions.pop(asyncio.get_running_loop(), None)
            self._current = (None, None)
        if session is not None:
            await session.close()

    # --- credentials and signing ---

    async def _signer_now(self) -> SigV4Auth:
        """A signer holding current credentials. A refresh (or a first fetch of deferred credentials)
        may call a provider over the network, so it runs in a thread."""
        credentials = self._credentials
        if credentials is None:
            raise NoCredentials("no AWS credentials found by the credentials chain")
        signer = self._signer
        if signer is not None and not self._refreshable:
            return signer
        try:
            if isinstance(credentials, RefreshableCredentials) and credentials.refresh_needed():
                frozen = await asyncio.to_thread(credentials.get_frozen_credentials)
            else:
                frozen = credentials.get_frozen_credentials()
        except BotoCoreError as exc:
            raise NoCredentials(f"AWS credentials could not be refreshed: {exc}") from exc
        if signer is None or signer.credentials != frozen:
            signer = self._signer = SigV4Auth(frozen, SERVICE, self.config.region)
        return signer

    # --- calls ---

    async def call(self, operation: str, payload: dict[str, Any], *, max_attempts: int | None = None) -> dict[str, Any]:
        """Send one DynamoDB operation (`"GetItem"`, ...) with its JSON parameters; retried per the retry
        mode, for at most `max_attempts` attempts when given (1 for a probe that must answer quickly)."""
        try:
            body = orjson.dumps(payload, default=_wire_value)
        except TypeError as exc:
            raise InvalidParameters(f"invalid parameters for {operation}: {exc}") from exc
        policy = self.retry_policy
        attempt, spent = 1, 0
        reached = False
        while True:
            if policy.limiter is not None:
                await policy.before_send()
            try:
                answer = await self._attempt(operation, body)
            except DynamoDBError as error:
                policy.answered(failure_kind(error) == THROTTLING)
                reached |= _may_have_reached(error)
                last = max_attempts is not None and attempt >= max_attempts
                decision = None if last else policy.retry(operation, attempt, error)
                if decision is None:
                    error.maybe_applied = reached
                    raise
                delay, spent = decision
                await asyncio.sleep(delay)
                attempt += 1
                continue
            policy.answered(False)
            policy.succeeded(spent)
            return answer

    async def _attempt(self, operation: str, body: bytes) -> dict[str, Any]:
        signer = await self._signer_now()
        request = AWSRequest(
            method="POST",
            url=self._sign_url,
            data=body,
            headers={"Host": self._host, "Content-Type": CONTENT_TYPE, "X-Amz-Target": TARGET_PREFIX + operation},
        )
        signer.add_auth(request)
        try:
            async with self._session().post(self._url, data=body, headers=dict(request.headers.items())) as response:
                raw = await response.read()
                status = response.status
                headers = response.headers
        except TimeoutError as exc:
            sent = not isinstance(exc, aiohttp.ConnectionTimeoutError)
            message = f"DynamoDB did not answer {operation} in time ({type(exc).__name__})"
            raise DynamoDBTimeout(message, sent=sent) from exc
        except aiohttp.ClientError as exc:
            sent = not isinstance(exc, aiohttp.ClientConnectorError)
            message = f"DynamoDB unreachable for {operation}: {type(exc).__name__}: {exc}"
            raise DynamoDBUnreachable(message, sent=sent) from exc
        checksum = headers.get("x-amz-crc32")
        if checksum is not None and checksum.isdigit() and zlib.crc32(raw) != int(checksum):
            raise ChecksumMismatch(f"DynamoDB's answer to {operation} does not match its CRC32 checksum")
        if status >= 300:
            error = DynamoDBServiceError.from_body(operation, status, raw, headers.get("x-amzn-requestid"))
            error.retry_after_ms = headers.get("x-amz-retry-after")
            raise error
        if not raw:
            return {}
        try:
            answer = orjson.loads(raw)
        except orjson.JSONDecodeError as exc:
            raise DynamoDBError(f"DynamoDB answered {operation} with a body that is not JSON") from exc
        if not isinstance(answer, dict):
            raise DynamoDBError(f"DynamoDB answered {operation} with a body that is not a JSON object")
        return answer

    # --- the operations the store uses, named as in boto3, parameters as in DynamoDB's API ---

    async def get_item(self, **params: Any) -> dict[str, Any]:
        return await self.call("GetItem", params)

    async def put_item(self, **params: Any) -> dict[str, Any]:
        return await self.call("PutItem", params)

    async def update_item(self, **params: Any) -> dict[str, Any]:
        return await self.call("UpdateItem", params)

    async def delete_item(self, **params: Any) -> dict[str, Any]:
        return await self.call("DeleteItem", params)

    async def batch_get_item(self, **params: Any) -> dict[str, Any]:
        return await self.call("BatchGetItem", params)

    async def batch_write_item(self, **params: Any) -> dict[str, Any]:
        return await self.call("BatchWriteItem", params)

    async def transact_write_items(self, **params: Any) -> dict[str, Any]:
        return await self.call("TransactWriteItems", params)

    async def query(self, **params: Any) -> dict[str, Any]:
        return await self.call("Query", params)

    async def describe_table(self, **params: Any) -> dict[str, Any]:
        return await self.call("DescribeTable", params)

    async def create_table(self, **params: Any) -> dict[str, Any]:
        return await self.call("CreateTable", params)


_lock = threading.Lock()
_clients: dict[tuple[Any, ...], DynamoDBClient] = {}


def _key(settings: Settings) -> tuple[Any, ...]:
    return (
        settings.aws_region,
        settings.dynamodb_endpoint_url,
        settings.dynamodb_connect_timeout_seconds,
        settings.dynamodb_read_timeout_seconds,
        settings.dynamodb_retry_mode,
        settings.dynamodb_max_attempts,
        settings.dynamodb_max_connections,
    )


def get_client(settings: Settings) -> DynamoDBClient:
    """The process-wide client for this configuration, built on the first call (thread-safe). The
    first call blocks while credentials and the endpoint are resolved: make it from a thread or at
    start-up (`/warmup`, `EAGER_INIT`), or use `get_client_async` from the event loop."""
    key = _key(settings)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                client = _clients[key] = DynamoDBClient.from_settings(settings)
    return client


async def get_client_async(settings: Settings) -> DynamoDBClient:
    """`get_client` for the event loop: the first call builds the client in a thread."""
    client = _clients.get(_key(settings))
    if client is None:
        client = await asyncio.to_thread(get_client, settings)
    return client


def _may_have_reached(error: DynamoDBError) -> bool:
    """Whether DynamoDB may have received (and applied) the attempt that ended with `error`."""
    if isinstance(error, DynamoDBUnreachable):
        return error.sent
    return isinstance(error, DynamoDBServiceError) and error.status >= 500

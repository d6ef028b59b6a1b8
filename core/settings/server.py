"""Server settings: the service's name and pages, the process (`python -m serve`): where it listens and how
it treats connections, its threads, and who may call it (CORS origins, API keys)."""

from pydantic import Field

from core.settings.base import CommaSeparated, Environment, EnvironmentSettings


class ServerSettings(EnvironmentSettings):
    app_name: str = "Feature Store API"
    docs_enabled: bool = True
    """Serve `/docs` and `/openapi.json`; production may switch them off."""
    console_enabled: bool = True
    """Serve `/console`, the web page that looks an entity up through the public API (which still checks keys)."""
    eager_init: bool = False
    threadpool_size: int = Field(50, gt=0)
    """Worker threads for calls that block: the embedded store's writes and large batch reads, Kafka's producer."""

    host: str = "0.0.0.0"
    """Address the server listens on."""
    port: int = Field(8000, gt=0, lt=65536)
    web_concurrency: int = Field(1, gt=0)
    """Worker processes; each has its own store client, producer and limits below."""
    graceful_shutdown_seconds: int = Field(20, gt=0)
    """After SIGTERM, how long in-flight requests may take before their connections are closed."""
    http_keep_alive_seconds: float = Field(75.0, gt=0)
    """An idle keep-alive connection is closed after this; above a load balancer's own idle timeout (60 s
    on AWS ALB and nginx), so the balancer, not the service, closes idle connections."""
    http_header_timeout_seconds: float = Field(10.0, gt=0)
    """A connection must send a complete request head (line and headers) this soon after it opens, and each
    later request's head this soon after its first byte; otherwise it is closed (408 if it had begun one)."""
    body_read_timeout_seconds: float = Field(10.0, gt=0)
    """A request body must arrive in full within this many seconds of its head (408, connection closed)."""
    max_url_bytes: int = Field(8192, ge=256)
    """Longest request target (path and query string) read (414)."""
    max_header_bytes: int = Field(16384, ge=1024)
    """Most bytes of header fields (names and values) one request may send (431)."""
    max_concurrent_requests: int = Field(64, gt=0)
    """Requests one worker process handles at once; more are answered 503 `overloaded` at once.
    `/health` and `/live` are exempt, so liveness holds under overload. Requests admitted together run
    back to back on the one event loop, so this bounds how long a probe or a refusal can wait behind
    them: with 1,000 connections reading, 200 let refusals wait 70 ms (p50) to 100-130 ms (p99), 64
    about 22 ms to 30 ms, and served more reads, not fewer. A process waiting on DynamoDB needs no
    more: its connection pool (`DYNAMODB_MAX_CONNECTIONS`) is 64 too."""
    max_event_loop_lag_ms: float = Field(50.0, gt=0)
    """While the worker's event loop runs this late with 32 requests or more in flight, new requests are
    answered 503 `overloaded` at once (`/health` and `/live` exempt): a crowd is refused before it queues,
    so that probes and refusals are not kept waiting behind it."""

    cors_origins: CommaSeparated = ()
    """Origins browsers may call from; empty means `*` in development and none elsewhere."""
    auth_enabled: bool = False
    """Require an API key on every feature route and /warmup; staging and production refuse to start without."""
    api_keys_file: str = ""
    """JSON or YAML list of hashed keys with scopes; see `python -m core.auth new-key`."""

    @property
    def allowed_origins(self) -> tuple[str, ...]:
        if self.cors_origins:
            return self.cors_origins
        return ("*",) if self.environment == Environment.DEVELOPMENT else ()

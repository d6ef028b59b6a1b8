"""The process-wide objects of one app (store, event sink, outbox relay, the feature layers),
built once and shared by every request; also what the probes and warm-up report about them."""

import asyncio
import logging
import time
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from components.config_reload import ConfigReloader
from components.events.events import EventSchema, EventSink, LogSink, load_event_schema
from components.events.outbox import OutboxRelay
from components.features.controller import FeatureController
from components.features.flows import FeatureFlows
from components.features.history import HistoryFlows
from components.features.history_service import HistoryService
from components.features.registry import Registry
from components.features.services import FeatureService
from components.features.store import create_store
from core.auth import Authenticator
from core.exceptions import ConfigurationError, FeatureStoreError
from core.grants import Grants
from core.settings import Settings, StoreBackend
from core.tokens import TokenVerifier, token_verifier

logger = logging.getLogger("feature_store.runtime")

READINESS_CACHE_SECONDS = 2.0


@dataclass(frozen=True, slots=True)
class Readiness:
    ready: bool
    """The store can serve reads and writes."""
    checks: dict[str, dict[str, Any]]
    """What each dependency reported: the store, and the events' sink and outbox."""


def create_sink(settings: Settings, schema: EventSchema) -> EventSink:
    """Kafka when a broker is configured, else the log; the producer itself is created on first use."""
    if settings.kafka_broker_url:
        from components.events.kafka import KafkaSink

        return KafkaSink(settings, schema)
    return LogSink()


def configured_tables(settings: Settings) -> list[str]:
    """The feature tables the service reads and writes (one per entity type), or the embedded store's file."""
    if settings.store_backend == StoreBackend.DYNAMODB:
        return list(dict.fromkeys(entity_type.table for entity_type in settings.entity_types.values()))
    return [str(settings.sqlite_path)]


def authenticator(settings: Settings, categories: Iterable[str], grant_names: Iterable[str] = ()) -> Authenticator:
    """The API-key check; a problem of the keys file is a configuration error naming API_KEYS_FILE."""
    try:
        return Authenticator.from_settings(settings, categories, grant_names)
    except ValueError as exc:
        message = str(exc)
        if not message.startswith("API_KEYS_FILE"):
            message = f"API_KEYS_FILE {settings.api_keys_file}: {message}"
        raise ConfigurationError(message) from None


class Runtime:
    def __init__(self, settings: Settings) -> None:
        self.settings = settings
        self.registry = Registry.from_settings(settings)
        # None when AUTH_ENABLED=false: routes then ask for no key; tokens None without AUTH_JWT_ISSUER.
        self.tokens: TokenVerifier | None = None
        if settings.auth_enabled and settings.auth_jwt_issuer:
            self.tokens = token_verifier(settings, self.registry.names)
        grant_names = self.tokens.grants.names if self.tokens else ()
        self.auth = authenticator(settings, self.registry.names, grant_names) if settings.auth_enabled else None
        self.store = create_store(settings)
        self.event_schema = load_event_schema()
        self.sink = create_sink(settings, self.event_schema)
        self.relay = OutboxRelay(
            self.store,
            self.sink,
            batch_size=settings.outbox_batch_size,
            poll_seconds=settings.outbox_poll_seconds,
            lease_seconds=settings.outbox_lease_seconds,
            max_backoff_seconds=settings.outbox_max_backoff_seconds,
            gauge_seconds=settings.outbox_gauge_seconds,
            max_attempts=settings.outbox_max_attempts,
        )
        self.flows = FeatureFlows(
            self.store,
            self.relay,
            self.registry.default_ttl,
            tombstone_seconds=settings.delete_tombstone_seconds,
            idempotency_seconds=settings.idempotency_ttl_seconds,
            history=self.registry.history,
        )
        self.service = FeatureService(
            settings, self.flows, self.registry, store_max_categories_per_write=self.store.max_categories_per_write
        )
        self.history = HistoryService(self.service, HistoryFlows(self.flows))
        self.controller = FeatureController(self.service, self.history)
        self._ready_at = 0.0
        self._check: asyncio.Task[None] | None = None
        """The store check in flight: a hung one is awaited again by the next probe, never started twice."""
        self._eager: asyncio.Task[None] | None = None
        self.store_reachable: bool | None = None
        """What the last readiness check found; None before the first. `/health` reports it without checking."""
        self.tables_available = configured_tables(settings)
        self.config = ConfigReloader(self)

    def use_configuration(self, registry: Registry, grants: Grants | None, auth: Authenticator | None) -> None:
        """Swap in a reloaded configuration, checked whole (`ConfigReloader`): each object is replaced, never
        changed, so a request in flight keeps the ones it started with."""
        if registry is not self.registry:
            self.registry = registry
            self.service.use_registry(registry)
            self.flows.default_ttl = registry.default_ttl
            self.flows.history = registry.history
            registry.report_max_ages()
        if self.tokens is not None and grants is not None:
            self.tokens.grants = grants
        self.auth = auth

    async def start(self) -> None:
        """On the app's event loop (the lifespan): start the relay, export the registry's max ages, and warm up
        in the background if asked."""
        self.relay.start()
        if self.tokens is not None:
            self.tokens.keys.start()
        self.config.start()
        self.registry.report_max_ages()
        if self.settings.eager_init:
            self._eager = asyncio.get_running_loop().create_task(self._eager_warmup(), name="eager-init")

    async def _eager_warmup(self) -> None:
        try:
            logger.info("eager initialisation done", extra={"actions": await self.warmup()})
        except Exception:
            logger.exception("eager initialisation failed; clients will be created on first use")

    async def warmup(self) -> list[str]:
        """Create the lazy clients now instead of on the first request."""
        actions = await self.store.initialise()
        await self.store.check()
        actions += await self.sink.initialise()
        return actions or ["already warm"]

    async def _check_store(self) -> str | None:
        """Run (or keep waiting for) the store's check for at most `READY_TIMEOUT_SECONDS`; None when
        it passed, else what went wrong in the service's words."""
        check = self._check
        if check is None:

            async def run() -> None:
                await self.store.check()

            check = self._check = asyncio.get_running_loop().create_task(run(), name="store-check")
        done, _ = await asyncio.wait({check}, timeout=self.settings.ready_timeout_seconds)
        if not done:
            return f"the store did not answer within {self.settings.ready_timeout_seconds:g} s"
        self._check = None
        if check.cancelled():
            return "the store check was cancelled"
        error = check.exception()
        if error is None:
            return None
        if isinstance(error, FeatureStoreError):
            return error.message
        logger.error("store check failed", exc_info=error)
        return "the store check failed"

    async def readiness(self) -> Readiness:
        """Ready when the store serves reads and writes; the event sink is reported but never makes us
        unready. Answers within `READY_TIMEOUT_SECONDS`; a passed check is reused for a moment."""
        store_check: dict[str, Any] = {"backend": self.store.name, "ok": True}
        if time.monotonic() - self._ready_at > READINESS_CACHE_SECONDS or not self.store.writable:
            error = await self._check_store()
            if error is None:
                self._ready_at = time.monotonic()
            else:
                self._ready_at = 0.0
                store_check.update(ok=False, error=error)
            self.store_reachable = store_check["ok"]
        checks = {"store": store_check, "events": self.sink.state() | self.relay.stats.as_dict()}
        if self.tokens is not None:
            checks["identity_provider"] = self.tokens.keys.state()
        if self.config.files:
            checks["configuration"] = self.config.state()
        backlog = self.relay.backlog
        if backlog is not None:
            checks["events"] |= {
                "pending": backlog.pending,
                "oldest_pending_age_s": round(backlog.oldest_age_seconds, 3),
                "dead_letters": backlog.dead_letters,
            }
        return Readiness(store_check["ok"], checks)

    async def shutdown(self) -> None:
        if self._eager is not None and not self._eager.done():
            self._eager.cancel()
        check, self._check = self._check, None
        if check is not None and not check.done():
            # Left to end, not cancelled: its worker thread (SQLite) must be done before the store closes
            # the connection it uses. SQLite's waits end within its busy timeout; a network call, sooner.
            done, _ = await asyncio.wait({check}, timeout=self.settings.shutdown_flush_seconds)
            if not done:
                check.cancel()
        if self.tokens is not None:
            await self.tokens.keys.stop()
        await self.config.stop()
        await self.relay.stop(self.settings.shutdown_flush_seconds)
        await self.store.close()

"""Feature Store API: the application factory and the `main:app` that uvicorn serves."""

import asyncio
import gc
import logging
import multiprocessing
import signal
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import anyio.to_thread
from fastapi import FastAPI
from fastapi.telemetry import TelemetryConfig

from api.console import console_routes
from api.direct import log_request_handler
from api.errors import register_error_handlers
from api.openapi import install_openapi
from api.v1 import access, admin, earlier, history, inspect, limits, registry, routes
from api.v1.routes import BULK_WRITE_PATH
from components.runtime import Runtime
from core import VERSION
from core.logging import configure_logging
from core.metrics import exporters_for, metrics
from core.settings import Settings
from core.startup_errors import exit_on_configuration_error
from core.tracing import DEFAULT_SERVICE_NAME, tracing
from middlewares.cors import cors_for
from middlewares.request import RequestMiddleware
from middlewares.tracing import TracedRequestMiddleware

NO_FASTAPI_TELEMETRY: TelemetryConfig = {"tracing": False, "metrics": False, "logs": False}
DESCRIPTION = """
Online feature store: compute jobs write ML features per entity and category; models read them
back in milliseconds. Every write announces each category written with a `feature_available`
Avro event on Kafka (or in the log when no Kafka is configured).
"""

logger = logging.getLogger("feature_store.tracing")

GC_GEN0_THRESHOLD = 20_000
"""Allocations between two young-generation collections (CPython's default: 700). A read that returns
many items allocates thousands of objects at once (a 50-entity batch from DynamoDB parses thousands of
dicts), so at the default the collector ran several times per request, each time walking the
answer just built; request handling makes next to no reference cycles for it to find."""


def tune_garbage_collection() -> None:
    """Collect less often, and leave what start-up built (modules, models, routes) out of every later
    collection. Once per process: a frozen object's cycles are never collected again."""
    if gc.get_freeze_count() == 0:
        gc.collect()
        gc.freeze()
    gc.set_threshold(GC_GEN0_THRESHOLD, *gc.get_threshold()[1:])


def stop_with_supervisor() -> None:
    """In a worker of `python -m serve` with several workers: shut down gracefully (as on SIGTERM) when the
    supervisor process is gone. uvicorn's workers do not watch it, and a supervisor killed outright (SIGKILL,
    the OOM killer) left them serving on, outside any process manager's reach."""
    supervisor = multiprocessing.parent_process()
    if supervisor is None:
        return
    loop = asyncio.get_running_loop()

    def supervisor_gone() -> None:
        loop.remove_reader(supervisor.sentinel)
        signal.raise_signal(signal.SIGTERM)

    loop.add_reader(supervisor.sentinel, supervisor_gone)


TAGS = [
    {"name": "features", "description": "Read and write features."},
    {"name": "registry", "description": "What each category holds: features, types, owners, rules."},
    {"name": "probes", "description": "Liveness, readiness and warm-up for orchestrators."},
    {"name": "admin", "description": "Operators' actions: dead letters. Need the `admin` scope."},
]


def create_app(settings: Settings | None = None) -> FastAPI:
    settings = settings or Settings()
    # First, so that logging knows whether its lines carry trace ids.
    tracing.configure(settings.dd_service or DEFAULT_SERVICE_NAME, VERSION)
    configure_logging(settings)
    if tracing.enabled:
        logger.info("tracing on", extra={"otlp_protocol": tracing.protocol})
    metrics.configure(*exporters_for(settings, VERSION, settings.dd_service or DEFAULT_SERVICE_NAME))
    runtime = Runtime(settings)

    @asynccontextmanager
    async def lifespan(_app: FastAPI) -> AsyncIterator[None]:
        anyio.to_thread.current_default_thread_limiter().total_tokens = settings.threadpool_size
        tune_garbage_collection()
        stop_with_supervisor()
        log_request_handler()
        await runtime.start()
        yield
        await runtime.shutdown()
        tracing.flush()
        metrics.close()

    app = FastAPI(
        title=settings.app_name,
        version=VERSION,
        description=DESCRIPTION,
        openapi_tags=TAGS,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        openapi_url="/openapi.json" if settings.docs_enabled else None,
        # The service's own tracing (`core.tracing`) and metrics (`core.metrics`) observe requests. FastAPI's
        # would add a second server span wherever a global OpenTelemetry provider is set, and checks
        # for one on every request.
        telemetry=NO_FASTAPI_TELEMETRY,
    )
    app.state.runtime = runtime
    register_error_handlers(app)
    # The routes themselves, not `include_router`: FastAPI 0.165 builds an included router's routes
    # again for every app, on its first request (every route's dependant, response fields and
    # handler: tens of milliseconds), where these were built once, at import.
    for router in (
        routes.reads,
        inspect.router,
        history.reads,
        earlier.reads,
        registry.router,
        limits.router,
        access.router,
        routes.writes,
        earlier.writes,
        routes.probes,
        admin.router,
        history.admin,
    ):
        app.router.routes.extend(router.routes)
    if "prometheus" in settings.metrics_exporters:
        from api.metrics import metrics_route  # prometheus-client is imported only when it is used

        app.router.routes.append(metrics_route(settings.metrics_path, settings.metrics_require_key))
    if settings.console_enabled:
        app.router.routes.extend(console_routes())
    install_openapi(app, settings, runtime.registry.names)  # after the API's routes: the docs pages come last
    app.add_middleware(
        # Chosen once: with tracing off, requests pass through the plain middleware and create no span.
        TracedRequestMiddleware if tracing.enabled else RequestMiddleware,
        max_body_bytes=settings.max_body_bytes,
        body_read_timeout_seconds=settings.body_read_timeout_seconds,
        max_concurrent_requests=settings.max_concurrent_requests,
        body_limits={BULK_WRITE_PATH: settings.max_batch_write_body_bytes},
        slow_request_ms=settings.slow_request_ms,
        cors=cors_for(settings),
        unobserved_paths=[settings.metrics_path] if "prometheus" in settings.metrics_exporters else [],
    )
    return app


with exit_on_configuration_error():  # `uvicorn main:app` and each worker process import it
    app = create_app()

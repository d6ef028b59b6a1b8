"""HTTP only: paths, status codes, request/response models and dependencies.

Three routers: `reads`, each behind the read scope's key check (which passes everything when API
keys are off), `writes` (the key decides the writer, so the principal is a parameter) and `probes`.
Reads come first: routes are matched in order.

Every route is `async def`: the layers below are async, and the store (or the event sink) decides
what runs in a worker thread, so no route pays a threadpool hop for work that does not block.
The controller is taken from the app (`api.runtime.runtime_of`) rather than through a dependency: it
is the same object for every request, and each dependency costs FastAPI a resolution step per request.
"""

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Request
from pydantic import StringConstraints

from api.auth import Writer, require_admin, require_read
from api.idempotency import OPENAPI as IDEMPOTENCY_OPENAPI
from api.idempotency import idempotent
from api.responses import errors
from api.routing import StrictQueryRoute
from api.runtime import runtime_of
from components.features.bulk_models import BatchWriteRequest, BatchWriteResponse, DeleteResponse
from components.features.models import (
    AS_OF_DESCRIPTION,
    MAX_AGE_DESCRIPTION,
    EntityValue,
    EventTime,
    GetBatchRequest,
    GetItemsRequest,
    WriteRequest,
)
from components.features.response_models import (
    BatchResponse,
    CategoryItemResponse,
    FeaturesResponse,
    HealthResponse,
    ReadyResponse,
    WarmupResponse,
    WriteResponse,
)
from core import VERSION
from core.metrics import metrics
from core.serialization import JSONBytesResponse, dumps
from core.timeutils import isoformat, utcnow

MaxAgeQuery = Annotated[float | None, Query(gt=0, allow_inf_nan=False, description=MAX_AGE_DESCRIPTION)]
AsOfQuery = Annotated[EventTime | None, Query(description=AS_OF_DESCRIPTION)]
EntityTypeQuery = Annotated[
    str,
    Query(
        max_length=128,
        description="The entity type. `table_type` (the earlier API's name) is accepted instead; "
        "given both, they must agree.",
    ),
]


reads = APIRouter(
    prefix="/api/v1", tags=["features"], route_class=StrictQueryRoute, dependencies=[Depends(require_read)]
)
writes = APIRouter(prefix="/api/v1", tags=["features"], route_class=StrictQueryRoute)
probes = APIRouter(prefix="/api/v1", tags=["probes"], route_class=StrictQueryRoute)


@reads.get(
    "/get/item/{entity_value}/{category}",
    operation_id="read_category",
    response_model=CategoryItemResponse,
    responses=errors(401, 403, 404, 422, 429, 503),
    summary="Read one category of one entity",
)
async def read_category(
    request: Request,
    entity_value: Annotated[EntityValue, Path(examples=["user-123"])],
    category: Annotated[str, Path(max_length=128, examples=["user_features"])],
    entity_type: EntityTypeQuery = "bright_uid",
    max_age_seconds: MaxAgeQuery = None,
    as_of: AsOfQuery = None,
) -> JSONBytesResponse:
    """404 when the entity has nothing in that category, or only expired data, or data older than
    `max_age_seconds`; with `as_of`, when it had none then (the message says why)."""
    return await runtime_of(request).controller.read_category(
        entity_value, category, entity_type, max_age_seconds, as_of
    )


@reads.post(
    "/get/items",
    operation_id="read_features",
    response_model=FeaturesResponse,
    responses=errors(401, 403, 413, 415, 422, 429, 503),
    summary="Read features across categories of one entity",
)
async def read_features(request: Request, body: GetItemsRequest) -> JSONBytesResponse:
    """`category:feature` picks one feature, `category:*` the whole category. Categories that are not
    allowed, absent or expired are listed in `unavailable_feature_categories`; absent features of a
    present category in `unavailable_features`."""
    return await runtime_of(request).controller.read_features(body)


@reads.post(
    "/get/items/batch",
    operation_id="read_batch",
    response_model=BatchResponse,
    responses=errors(401, 403, 413, 415, 422, 429, 503),
    summary="Read the same features for many entities",
)
async def read_batch(request: Request, body: GetBatchRequest) -> JSONBytesResponse:
    """One result per requested entity, in request order."""
    return await runtime_of(request).controller.read_batch(body)


@writes.post(
    "/items",
    operation_id="write_features",
    response_model=WriteResponse,
    responses=errors(401, 403, 409, 413, 415, 422, 429, 503),
    summary="Write features of one entity",
    openapi_extra=IDEMPOTENCY_OPENAPI,
)
async def write_features(request: Request, body: Annotated[WriteRequest, Body()], writer: Writer) -> JSONBytesResponse:
    """Replaces the data of each category given, atomically across categories, and announces each
    category written with a `feature_available` event. With API keys on, the key must have
    `features:write` and decides the source and the categories it may write."""
    await idempotent(request)
    return await runtime_of(request).controller.write(body, writer)


BULK_WRITE_PATH = "/api/v1/items/batch"
"""Its body limit scales with MAX_BATCH_WRITE_ENTITIES (`Settings.max_batch_write_body_bytes`)."""


@writes.post(
    BULK_WRITE_PATH.removeprefix(writes.prefix),
    operation_id="write_batch",
    response_model=BatchWriteResponse,
    responses=errors(401, 403, 413, 415, 422, 429),
    summary="Write features of many entities",
    openapi_extra=IDEMPOTENCY_OPENAPI,
)
async def write_batch(
    request: Request, body: Annotated[BatchWriteRequest, Body()], writer: Writer
) -> JSONBytesResponse:
    """Each entity is written as `POST /api/v1/items` writes one: atomically on its own, with its events.
    An entity refused (a category not allowed, a type the registry refuses, a writer not allowed) or
    that the store failed to write gets an `error` and nothing written; the others are written. A
    malformed request, or more entities than `MAX_BATCH_WRITE_ENTITIES`, is a 422 and writes nothing."""
    await idempotent(request)
    return await runtime_of(request).controller.write_batch(body, writer)


@writes.delete(
    "/items/{entity_value}",
    operation_id="delete_features",
    response_model=DeleteResponse,
    responses=errors(401, 403, 409, 422, 429, 503),
    summary="Delete categories of one entity",
    openapi_extra=IDEMPOTENCY_OPENAPI,
)
async def delete_features(
    request: Request,
    entity_value: Annotated[EntityValue, Path(examples=["user-123"])],
    writer: Writer,
    entity_type: EntityTypeQuery = "bright_uid",
    category: Annotated[
        list[Annotated[str, StringConstraints(max_length=128)]],
        Query(description="A category to delete; repeat for more. None: every category of the entity."),
    ] = [],  # noqa: B006 - FastAPI copies a default, never shares it
    event_time: Annotated[
        EventTime | None,
        Query(
            description="When the deletion took effect (ISO 8601; `+` as `%2B`); default: now. Categories "
            "holding newer data are left alone; writes older than it are skipped while the deletion is remembered."
        ),
    ] = None,
) -> JSONBytesResponse:
    """Removes the data of the categories, each announced with a `feature_deleted` event naming the
    features removed, and remembers each deletion for `DELETE_TOMBSTONE_SECONDS`. Deleting what is not
    there answers 200 with an empty `categories_deleted`. Needs `features:write` with API keys on, and
    a key may delete only the categories it may write (every category: only a key granted `*`)."""
    await idempotent(request)
    return await runtime_of(request).controller.delete(entity_value, entity_type, category, writer, event_time)


@probes.get("/health", operation_id="health", response_model=HealthResponse, summary="Liveness")
async def health(request: Request) -> JSONBytesResponse:
    """Touches no external service: answers as long as the process serves HTTP. `dynamodb_connection` is
    what the last readiness check (`/ready`) found the online store to be, null before any check."""
    runtime = runtime_of(request)
    body = {
        "status": "healthy",
        "timestamp": isoformat(utcnow()),
        "service": runtime.settings.app_name,
        "version": VERSION,
        "environment": runtime.settings.environment.value,
        "dynamodb_connection": runtime.store_reachable,
        "tables_available": runtime.tables_available,
    }
    return JSONBytesResponse(dumps(body))


probes.add_api_route(
    "/live", health, methods=["GET"], operation_id="live", response_model=HealthResponse, summary="Liveness (alias)"
)


@probes.get("/ready", operation_id="ready", response_model=ReadyResponse, responses={503: {"model": ReadyResponse}})
async def ready(request: Request) -> JSONBytesResponse:
    """200 when the online store can serve reads and writes; Kafka's state is reported, not required."""
    readiness = await runtime_of(request).readiness()
    metrics.gauge("ready", 1 if readiness.ready else 0)
    body = {
        "status": "ready" if readiness.ready else "unavailable",
        "timestamp": isoformat(utcnow()),
        "checks": readiness.checks,
    }
    return JSONBytesResponse(dumps(body), status_code=200 if readiness.ready else 503)


@probes.post(
    "/warmup",
    operation_id="warmup",
    response_model=WarmupResponse,
    responses=errors(401, 403, 429, 503),
    dependencies=[Depends(require_admin)],
)
async def warmup(request: Request) -> JSONBytesResponse:
    """Create the store client and event producer now, so the first real request does not pay for it.
    Needs the `admin` scope when API keys are on."""
    started = utcnow()
    actions = await runtime_of(request).warmup()
    duration_ms = (utcnow() - started).total_seconds() * 1000
    return JSONBytesResponse(dumps({"status": "warm", "actions": actions, "duration_ms": round(duration_ms, 3)}))


probes.add_api_route(
    "/warmup",
    warmup,
    methods=["GET"],
    operation_id="warmup_by_get",
    response_model=WarmupResponse,
    responses=errors(401, 403, 429, 503),
    dependencies=[Depends(require_admin)],
    summary="Warmup (for scripts that `curl` it)",
)

"""The earlier API (seed 001, "Feature Store CRUD Application"), kept for the callers that still use it.

Its single-category read is the current `GET /get/item/{entity_value}/{category}`, which accepts
`table_type` as an alias of `entity_type`. Its two other calls are here, deprecated in OpenAPI, and
served by the current reads and writes: the controller turns their bodies into the current requests.
Added to the app after the current routers (`main.create_app`), so none of these paths can shadow a current one.
"""

from typing import Annotated

from fastapi import APIRouter, Body, Depends, Path, Query, Request

from api.auth import Writer, require_read
from api.responses import errors
from api.routing import StrictQueryRoute
from api.runtime import runtime_of
from api.v1.routes import AsOfQuery, EntityTypeQuery, MaxAgeQuery
from components.features.models import EarlierReadBody, EarlierWriteBody, EntityValue, EventTime, MetaText
from components.features.records import Provenance
from components.features.response_models import FeaturesResponse, WriteResponse
from core.serialization import JSONBytesResponse

reads = APIRouter(
    prefix="/api/v1", tags=["features"], route_class=StrictQueryRoute, dependencies=[Depends(require_read)]
)
writes = APIRouter(prefix="/api/v1", tags=["features"], route_class=StrictQueryRoute)

EntityValuePath = Annotated[EntityValue, Path(openapi_examples={"user": {"value": "user-123"}})]
"""Examples as OpenAPI parameter examples, which Swagger UI's "Try it out" fills in (JSON Schema ones it does not)."""


@reads.post(
    "/get/item/{entity_value}",
    operation_id="read_features_earlier",
    response_model=FeaturesResponse,
    responses=errors(401, 403, 413, 415, 422, 429, 503),
    summary="Read features across categories of one entity (earlier API)",
    deprecated=True,
)
async def read_features_by_category(
    request: Request,
    entity_value: EntityValuePath,
    body: EarlierReadBody,
    entity_type: EntityTypeQuery = "bright_uid",
    max_age_seconds: MaxAgeQuery = None,
    as_of: AsOfQuery = None,
) -> JSONBytesResponse:
    """The body maps each category to the feature names wanted; `[]` or `["*"]` asks for the whole
    category. Answers exactly like `POST /api/v1/get/items`, which replaces it: a body
    `{"user_features": ["age"], "transaction_features": []}` is the feature list
    `["user_features:age", "transaction_features:*"]`."""
    return await runtime_of(request).controller.read_features_by_category(
        entity_value, entity_type, body.root, max_age_seconds, as_of
    )


@writes.post(
    "/items/{entity_value}",
    operation_id="write_features_earlier",
    response_model=WriteResponse,
    responses=errors(401, 403, 413, 415, 422, 429, 503),
    summary="Write features of one entity (earlier API)",
    deprecated=True,
)
async def write_by_category(
    request: Request,
    entity_value: EntityValuePath,
    body: Annotated[EarlierWriteBody, Body()],
    writer: Writer,
    entity_type: EntityTypeQuery = "bright_uid",
    source: Annotated[
        MetaText | None,
        Query(
            description="The writer, as `meta.source` of `POST /api/v1/items`: required without API keys; "
            "with keys, one of the key's sources (its first when absent).",
            openapi_examples={"prediction_service": {"value": "prediction_service"}},
        ),
    ] = None,
    compute_id: Annotated[MetaText | None, Query(description="The job run that computed the features.")] = None,
    ttl: Annotated[int | None, Query(gt=0, description="Seconds the written categories stay valid.")] = None,
    event_time: Annotated[
        EventTime | None,
        Query(description="When the data was true (ISO 8601; write `+` as `%2B`); older writes are skipped."),
    ] = None,
) -> JSONBytesResponse:
    """The body maps each category to its features; each category's data is replaced as a whole, all
    categories atomically, exactly like `POST /api/v1/items` with `feature_list`, which replaces it.
    What the current write carries in `meta` comes in the query string."""
    provenance = Provenance(source, compute_id, ttl, event_time)
    return await runtime_of(request).controller.write_by_category(
        entity_value, entity_type, body.root, writer, provenance
    )

"""HTTP only: the service's published maxima, so a client splits its requests instead of guessing them.

The numbers are the settings the service enforces (`MAX_*`, docs/configuration.md); a request over
any of them is a 4xx before anything is read or written.
"""

from fastapi import APIRouter, Depends, Request

from api.auth import require_read
from api.responses import errors
from api.routing import StrictQueryRoute
from api.runtime import runtime_of
from components.features.names import MAX_ENTITY_VALUE_BYTES
from components.features.response_models import LimitsResponse
from core.serialization import JSONBytesResponse, dumps
from core.settings import Settings


def limits_of(settings: Settings) -> dict[str, int]:
    return {
        "max_batch_entities": settings.max_batch_entities,
        "max_feature_list": settings.max_feature_list,
        "max_categories_per_write": settings.max_categories_per_write,
        "max_features_per_category": settings.max_features_per_category,
        "max_features_per_write": settings.max_features_per_write,
        "max_body_bytes": settings.max_body_bytes,
        "max_string_bytes": settings.max_string_bytes,
        "max_json_depth": settings.max_json_depth,
        "max_ttl_seconds": settings.max_ttl_seconds,
        "max_entity_value_bytes": MAX_ENTITY_VALUE_BYTES,
        "max_batch_write_entities": settings.max_batch_write_entities,
        "max_batch_write_body_bytes": settings.max_batch_write_body_bytes,
        "max_event_time_ahead_seconds": settings.max_event_time_ahead_seconds,
    }


router = APIRouter(
    prefix="/api/v1", tags=["features"], route_class=StrictQueryRoute, dependencies=[Depends(require_read)]
)


@router.get(
    "/limits",
    operation_id="limits",
    response_model=LimitsResponse,
    responses=errors(401, 403, 429),
    summary="The service's maxima: batch size, feature list, write size, body bytes",
)
async def read_limits(request: Request) -> JSONBytesResponse:
    """What one request may hold; a request over any of these is refused with a 4xx. Clients read it
    once and split larger work (e.g. batch reads) to fit."""
    return JSONBytesResponse(dumps(limits_of(runtime_of(request).settings)))

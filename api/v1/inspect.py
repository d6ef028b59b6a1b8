"""HTTP only: an entity's every category with its state, for a person debugging what a model read."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Request

from api.auth import require_read
from api.responses import errors
from api.routing import StrictQueryRoute
from api.runtime import runtime_of
from api.v1.routes import EntityTypeQuery
from components.features.models import EntityValue
from components.features.response_models import InspectResponse
from core.serialization import JSONBytesResponse

router = APIRouter(
    prefix="/api/v1", tags=["features"], route_class=StrictQueryRoute, dependencies=[Depends(require_read)]
)


@router.get(
    "/inspect/{entity_value}",
    operation_id="inspect_entity",
    response_model=InspectResponse,
    responses=errors(401, 403, 422, 429, 503),
    summary="Every category of one entity with its state: fresh, stale, expired, erased or absent",
)
async def inspect_entity(
    request: Request,
    entity_value: Annotated[EntityValue, Path(examples=["user-123"])],
    entity_type: EntityTypeQuery = "bright_uid",
) -> JSONBytesResponse:
    """Unlike a read, it shows what a read would not serve and why: data past its TTL, data older than the
    registry's `max_age_seconds`, a deletion's tombstone. Never 404: an unknown entity has every category
    `absent`."""
    return await runtime_of(request).controller.inspect(entity_value, entity_type)

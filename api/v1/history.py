"""HTTP only: a category's history (docs/history.md): its kept versions listed (read scope), and a compute job's
writes rolled back (admin scope)."""

from typing import Annotated

from fastapi import APIRouter, Depends, Path, Query, Request

from api.auth import require_admin, require_read
from api.responses import errors
from api.routing import StrictQueryRoute
from api.runtime import runtime_of
from api.v1.routes import EntityTypeQuery
from components.features.history_models import (
    HISTORY_CURSOR_PATTERN,
    MAX_HISTORY_PAGE,
    HistoryResponse,
    RollbackRequest,
    RollbackResponse,
)
from components.features.models import EntityValue
from core.auth import Principal
from core.serialization import JSONBytesResponse

reads = APIRouter(
    prefix="/api/v1", tags=["history"], route_class=StrictQueryRoute, dependencies=[Depends(require_read)]
)
admin = APIRouter(prefix="/api/v1/admin", tags=["history"], route_class=StrictQueryRoute)


@reads.get(
    "/history/{entity_value}/{category}",
    operation_id="list_history",
    response_model=HistoryResponse,
    responses=errors(401, 403, 422, 429, 503),
    summary="The values a category's writes replaced, newest first",
)
async def list_history(
    request: Request,
    entity_value: Annotated[EntityValue, Path(examples=["user-123"])],
    category: Annotated[str, Path(max_length=128, examples=["user_features"])],
    entity_type: EntityTypeQuery = "bright_uid",
    limit: Annotated[int, Query(ge=1, le=MAX_HISTORY_PAGE, description="Most versions in the page.")] = 20,
    cursor: Annotated[
        str | None,
        Query(
            pattern=HISTORY_CURSOR_PATTERN,
            description="`next_cursor` of the previous page (a version): the page starts below it.",
        ),
    ] = None,
) -> JSONBytesResponse:
    """The kept versions of a category with history (the registry's `history`), each with its metadata as it was
    current and the time it is forgotten. Never 404: a category keeping none lists no versions."""
    before = int(cursor) if cursor is not None else None
    return await runtime_of(request).controller.history(entity_value, category, entity_type, limit, before)


@admin.post(
    "/rollback",
    operation_id="rollback",
    response_model=RollbackResponse,
    responses=errors(401, 403, 413, 415, 422, 429, 503),
    summary="Undo a compute job's writes: the value before it becomes current again",
)
async def rollback(
    request: Request,
    body: RollbackRequest,
    caller: Annotated[Principal | None, Depends(require_admin)],
) -> JSONBytesResponse:
    """For each entity, every category whose current value the job wrote gets back its latest kept version that
    another job wrote: a write like any other (one version on, a `feature_available` event with that version's
    `event_time`, the job's value kept in history). Categories the job did not write are left alone and reported.
    Sending it again restores nothing more: the job no longer holds any current value."""
    return await runtime_of(request).controller.rollback(body.entity_type, body.entity_values, body.compute_id, caller)

"""HTTP only: operators' endpoints for dead letters (docs/events.md#dead-letters), listed in pages and
re-driven once their cause is fixed. Both need the `admin` scope when API keys are on."""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from pydantic import BaseModel, ConfigDict, Field, StrictBool, StringConstraints, field_validator, model_validator
from pydantic.json_schema import SkipJsonSchema

from api.auth import require_admin
from api.responses import errors
from api.routing import StrictQueryRoute
from api.runtime import runtime_of
from components.events.outbox import DEAD_LETTER_CURSOR_PATTERN, EVENT_ID_PATTERN, DeadLetter, DeadLetterCursor
from components.features.response_models import EVENT_ID_EXAMPLE, DeadLettersResponse, RedriveResponse
from core.serialization import JSONBytesResponse, dumps
from core.timeutils import epoch_to_iso

MAX_PAGE = 100
MAX_REDRIVE = 1000
"""Most dead letters one re-drive names, or takes when asked for all of them."""

EventId = Annotated[str, StringConstraints(pattern=EVENT_ID_PATTERN)]


class RedriveRequest(BaseModel):
    """Either the dead letters to re-drive, by id, or `all`."""

    model_config = ConfigDict(
        extra="forbid",
        json_schema_extra={
            "examples": [{"event_ids": [EVENT_ID_EXAMPLE]}, {"all": True}],
            # The validator's rule, stated for clients: ids (with `all` absent or false), or `all: true` alone.
            "oneOf": [
                {"required": ["event_ids"], "properties": {"all": {"const": False}}},
                {"required": ["all"], "properties": {"all": {"const": True}}, "not": {"required": ["event_ids"]}},
            ],
        },
    )

    event_ids: Annotated[list[EventId], Field(min_length=1, max_length=MAX_REDRIVE)] | SkipJsonSchema[None] = Field(
        None, description="Dead letters to re-drive, at most 1,000."
    )
    all: StrictBool = Field(
        False, description="Re-drive every dead letter, up to 1,000 per call (the longest dead first)."
    )

    @field_validator("event_ids", mode="before")
    @classmethod
    def _ids_or_nothing(cls, value: object) -> object:
        if value is None:
            raise ValueError('name the dead letters, or leave "event_ids" out and send "all": true')
        return value

    @model_validator(mode="after")
    def _one_selection(self) -> "RedriveRequest":
        if (self.event_ids is None) == (not self.all):
            raise ValueError('give either "event_ids" or "all": true, not both')
        return self


router = APIRouter(
    prefix="/api/v1/admin",
    tags=["admin"],
    route_class=StrictQueryRoute,
    dependencies=[Depends(require_admin)],
)


def as_item(letter: DeadLetter) -> dict[str, Any]:
    event = letter.event
    return {
        "event_id": event.event_id,
        "key": event.key,
        "event": event.payload,
        "reason": letter.reason,
        "attempts": event.attempts,
        "created_at": epoch_to_iso(event.created_at_epoch),
        "dead_at": epoch_to_iso(letter.dead_at_epoch),
    }


@router.get(
    "/dead-letters",
    operation_id="list_dead_letters",
    response_model=DeadLettersResponse,
    responses=errors(401, 403, 422, 429, 503),
    summary="Events kept as dead letters, the longest dead first",
)
async def list_dead_letters(
    request: Request,
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE, description="Most dead letters in the page.")] = 50,
    cursor: Annotated[
        str | None,
        Query(
            pattern=DEAD_LETTER_CURSOR_PATTERN,
            description="`next_cursor` of the previous page: `<dead_at epoch seconds>:<event_id>`, the page "
            "starts after that position.",
        ),
    ] = None,
) -> JSONBytesResponse:
    """Events that the broker refused for good, or that failed on their own `OUTBOX_MAX_ATTEMPTS`
    times, with the reason and their attempts. They are kept until re-driven."""
    after = DeadLetterCursor.decode(cursor) if cursor is not None else None
    page = await runtime_of(request).store.list_dead_letters(limit, after)
    body = {
        "dead_letters": [as_item(letter) for letter in page.dead_letters],
        "next_cursor": page.next.encode() if page.next else None,
    }
    return JSONBytesResponse(dumps(body))


@router.post(
    "/dead-letters/redrive",
    operation_id="redrive_dead_letters",
    response_model=RedriveResponse,
    responses=errors(401, 403, 413, 415, 422, 429, 503),
    summary="Put dead letters back among the events to publish",
)
async def redrive_dead_letters(request: Request, body: RedriveRequest) -> JSONBytesResponse:
    """Each becomes due at once with its attempts at zero, and the relay publishes it. Fix the cause
    first: an event refused for good again becomes a dead letter again."""
    runtime = runtime_of(request)
    named = list(dict.fromkeys(body.event_ids)) if body.event_ids is not None else None
    redriven = await runtime.relay.redrive(runtime.store, named, MAX_REDRIVE)
    not_found: list[str] = []
    if named is not None:
        found = set(redriven)
        redriven = [event_id for event_id in named if event_id in found]
        not_found = [event_id for event_id in named if event_id not in found]
    return JSONBytesResponse(dumps({"redriven": redriven, "not_found": not_found}))

"""HTTP only: what the caller may do, so a client (the console among them) shows it instead of guessing it
from refusals."""

from typing import Annotated, Literal

from fastapi import APIRouter, Depends
from pydantic import BaseModel, ConfigDict, Field

from api.auth import require_caller
from api.responses import errors
from api.routing import StrictQueryRoute
from core.auth import SCOPE_ADMIN, SCOPE_READ, SCOPE_WRITE, Principal
from core.serialization import JSONBytesResponse, dumps

EVERY_SCOPE = sorted((SCOPE_READ, SCOPE_WRITE, SCOPE_ADMIN))


class AccessResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "auth_enabled": True,
                    "kind": "api_key",
                    "name": "ranker-writer",
                    "actor": "key:ranker-writer",
                    "scopes": ["features:read", "features:write"],
                    "sources": ["ranker"],
                    "categories": ["user_features"],
                }
            ]
        }
    )

    auth_enabled: bool = Field(description="False: AUTH_ENABLED is off, every caller may do everything.")
    kind: Literal["api_key", "jwt", "anonymous"] = Field(
        description="How the caller proved who it is: an API key, a JWT bearer token, or nothing (auth off)."
    )
    name: str | None = Field(
        description="The key's name, or the names of every grant a token matched (comma-separated); "
        "null when auth is off."
    )
    actor: str | None = Field(
        description="Who the audit trail records: `key:<name>`, or `sub:<subject> client:<id>` for a token."
    )
    scopes: list[Literal["admin", "features:read", "features:write"]] = Field(description="What the caller may do.")
    sources: list[str] = Field(
        description="The sources it may write as (the first is used when a write names none); "
        "empty when auth is off: a write names its own."
    )
    categories: list[str] | None = Field(description="The categories it may write; null: every allowed category.")


def access_of(principal: Principal | None) -> dict[str, object]:
    if principal is None:
        return {
            "auth_enabled": False,
            "kind": "anonymous",
            "name": None,
            "actor": None,
            "scopes": EVERY_SCOPE,
            "sources": [],
            "categories": None,
        }
    return {
        "auth_enabled": True,
        "kind": principal.kind,
        "name": principal.name,
        "actor": principal.actor,
        "scopes": sorted(principal.scopes),
        "sources": list(principal.sources),
        "categories": None if principal.categories is None else sorted(principal.categories),
    }


router = APIRouter(prefix="/api/v1", tags=["features"], route_class=StrictQueryRoute)


@router.get(
    "/access",
    operation_id="access",
    response_model=AccessResponse,
    responses=errors(401, 403, 429),
    summary="What the caller may do: its name, how it authenticated, scopes, sources and categories",
)
async def read_access(principal: Annotated[Principal | None, Depends(require_caller)]) -> JSONBytesResponse:
    """Any valid API key or token may ask, whatever its scopes (a token that matches no grant is a 403).
    The grants in force now: a keys or grants file reloaded since shows at once."""
    return JSONBytesResponse(dumps(access_of(principal)))

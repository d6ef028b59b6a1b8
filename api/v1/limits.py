"""HTTP only: the service's published maxima, so a client splits its requests instead of guessing them.

The numbers are the settings the service enforces (`MAX_*`, docs/configuration.md); a request over
any of them is a 4xx before anything is read or written.
"""

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from api.auth import require_read
from api.responses import errors
from api.routing import StrictQueryRoute
from api.runtime import runtime_of
from components.features.models import MAX_ENTITY_VALUE_BYTES
from core.serialization import JSONBytesResponse, dumps
from core.settings import Settings


class LimitsResponse(BaseModel):
    model_config = ConfigDict(
        json_schema_extra={
            "examples": [
                {
                    "max_batch_entities": 1000,
                    "max_feature_list": 1000,
                    "max_categories_per_write": 25,
                    "max_features_per_category": 1000,
                    "max_features_per_write": 5000,
                    "max_body_bytes": 1_048_576,
                    "max_string_bytes": 65_536,
                    "max_json_depth": 16,
                    "max_ttl_seconds": 315_360_000,
                    "max_entity_value_bytes": 1024,
                    "max_batch_write_entities": 500,
                    "max_batch_write_body_bytes": 16_777_216,
                }
            ]
        }
    )

    max_batch_entities: int = Field(description="Most entities in one batch read.", examples=[1000])
    max_feature_list: int = Field(description="Most `category:feature` entries in one read.", examples=[1000])
    max_categories_per_write: int = Field(description="Most categories in one write.", examples=[25])
    max_features_per_category: int = Field(description="Most features in one category of a write.", examples=[1000])
    max_features_per_write: int = Field(
        description="Most features across the categories of one write.", examples=[5000]
    )
    max_body_bytes: int = Field(description="Largest request body, in bytes.", examples=[1_048_576])
    max_string_bytes: int = Field(description="Longest string feature value, in UTF-8 bytes.", examples=[65_536])
    max_json_depth: int = Field(description="Deepest nesting inside one feature value.", examples=[16])
    max_ttl_seconds: int = Field(description="Largest `meta.ttl`.", examples=[315_360_000])
    max_entity_value_bytes: int = Field(description="Longest entity value, in UTF-8 bytes.", examples=[1024])
    max_batch_write_entities: int = Field(description="Most entities in one bulk write.", examples=[500])
    max_batch_write_body_bytes: int = Field(
        description="Largest bulk write request body, in bytes.", examples=[16_777_216]
    )


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

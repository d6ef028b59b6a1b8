"""HTTP only: the feature registry's discovery endpoints, with ETags so a poller pays for a change only.

The documents are rendered once when the registry is built (components/features/registry.py); a
request that names the current ETag in `If-None-Match` gets a bodiless 304.
"""

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Header, Path, Request
from starlette.responses import Response

from api.auth import require_read
from api.responses import Responses, errors
from api.routing import StrictQueryRoute
from api.runtime import runtime_of
from components.features.registry import Document
from components.features.response_models import RegistryCategory, RegistryResponse
from core.exceptions import NotFound
from core.serialization import JSONBytesResponse

ETAG_HEADERS: dict[str, Any] = {
    "ETag": {"description": "The document's version, for `If-None-Match`.", "schema": {"type": "string"}},
    "Cache-Control": {"description": "`no-cache`: revalidate with the ETag.", "schema": {"type": "string"}},
}
NOT_MODIFIED: Responses = {
    200: {"headers": ETAG_HEADERS},
    304: {
        "description": "Not modified: the registry is the one the `If-None-Match` ETag names.",
        "headers": ETAG_HEADERS,
    },
}

router = APIRouter(
    prefix="/api/v1", tags=["registry"], route_class=StrictQueryRoute, dependencies=[Depends(require_read)]
)

IfNoneMatch = Annotated[
    str | None,
    Header(max_length=8192, description="ETags of registry documents the caller holds; a match answers 304."),
]


def etag_matches(if_none_match: str, etag: str) -> bool:
    """`If-None-Match` compares weakly (RFC 9110): `W/"x"` matches `"x"`; `*` matches any current document."""
    for candidate in if_none_match.split(","):
        candidate = candidate.strip()
        if candidate == "*" or candidate.removeprefix("W/") == etag:
            return True
    return False


def answer(document: Document, if_none_match: str | None) -> Response:
    headers = {"ETag": document.etag, "Cache-Control": "no-cache"}
    if if_none_match is not None and etag_matches(if_none_match, document.etag):
        return Response(status_code=304, headers=headers)
    return JSONBytesResponse(document.body, headers=headers)


@router.get(
    "/registry",
    operation_id="registry",
    response_model=RegistryResponse,
    responses={**NOT_MODIFIED, **errors(401, 403, 429)},
    summary="The feature registry: every category with its features, types, owner and rules",
)
async def read_registry(request: Request, if_none_match: IfNoneMatch = None) -> Response:
    """Every category the service accepts, as declared in `FEATURE_REGISTRY_FILE` with defaults filled in
    (or, without a file, the open categories of `ALLOWED_CATEGORIES`). Send the `ETag` back in
    `If-None-Match` to get a 304 while nothing changed."""
    return answer(runtime_of(request).registry.document, if_none_match)


@router.get(
    "/registry/{category}",
    operation_id="registry_category",
    response_model=RegistryCategory,
    responses={**NOT_MODIFIED, **errors(401, 403, 404, 429)},
    summary="One category of the feature registry",
)
async def read_registry_category(
    request: Request,
    category: Annotated[str, Path(max_length=128, examples=["user_features"])],
    if_none_match: IfNoneMatch = None,
) -> Response:
    """404 for a category the registry does not hold."""
    document = runtime_of(request).registry.category_documents.get(category)
    if document is None:
        raise NotFound(f"category {category!r} is not in the feature registry")
    return answer(document, if_none_match)

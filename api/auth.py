"""The API-key dependency: reads the caller's key from the request and checks it for a route's scope."""

from collections.abc import Callable
from typing import Annotated, Any

from fastapi import Depends, FastAPI, Request
from fastapi.openapi.models import APIKey, APIKeyIn
from fastapi.security.base import SecurityBase
from starlette.datastructures import Headers

from core.auth import SCOPE_ADMIN, SCOPE_READ, SCOPE_WRITE, Principal


def presented_key(headers: Headers) -> str | None:
    """`X-API-Key: <key>`, else `Authorization: Bearer <key>`."""
    key = headers.get("x-api-key")
    if key is None:
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            key = credentials.strip()
    return key


class ApiKeyAccess(SecurityBase):
    """Requires a key with `scope` when AUTH_ENABLED; does nothing otherwise (returns None).

    A SecurityBase so OpenAPI documents the scheme and Swagger UI offers "Authorize".
    """

    def __init__(self, scope: str) -> None:
        self.scope = scope
        self.scheme_name = "ApiKey"
        self.model = APIKey(
            **{"in": APIKeyIn.header},
            name="X-API-Key",
            description="Required when AUTH_ENABLED=true; `Authorization: Bearer <key>` works too.",
        )

    async def __call__(self, request: Request) -> Principal | None:
        authenticator = request.app.state.runtime.auth
        if authenticator is None:
            return None
        return authenticator.authenticate(presented_key(request.headers), self.scope)


require_read = ApiKeyAccess(SCOPE_READ)
require_admin = ApiKeyAccess(SCOPE_ADMIN)
"""/warmup: an operator action, so neither readers nor writers may trigger it; EAGER_INIT needs no key."""
Writer = Annotated[Principal | None, Depends(ApiKeyAccess(SCOPE_WRITE))]


WRITER_NAMED: dict[str, Any] = {
    "anyOf": [
        {
            "required": [spelling],
            "properties": {spelling: {"required": ["source"], "properties": {"source": {"type": "string"}}}},
        }
        for spelling in ("meta", "metadata")
    ]
}
"""Without keys a write names its writer: `meta.source` (or `metadata.source`) is a string, not absent nor null."""


def document_without_keys(app: FastAPI) -> None:
    """With AUTH_ENABLED=false no route asks for a key, so the OpenAPI document must not say it does; and
    the writer is the write's own `meta.source`, so the document requires it (a write without it is a 422)."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        components = schema.get("components", {})
        components.pop("securitySchemes", None)
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                operation.pop("security", None)
        write = components.get("schemas", {}).get("WriteRequest")
        if write is not None:
            write.update(WRITER_NAMED)
        return schema

    app.openapi = openapi  # type: ignore[method-assign]


BEARER_SCHEME: dict[str, Any] = {
    "type": "http",
    "scheme": "bearer",
    "description": "The same API key as `X-API-Key`, sent as `Authorization: Bearer <key>`.",
}


def document_bearer(app: FastAPI) -> None:
    """With AUTH_ENABLED=true a key is accepted as `X-API-Key` or as a Bearer token (`presented_key`):
    OpenAPI declares both schemes, and every operation that needs a key accepts either."""
    build: Callable[[], dict[str, Any]] = app.openapi

    def openapi() -> dict[str, Any]:
        schema = build()
        schemes = schema.get("components", {}).get("securitySchemes", {})
        if "ApiKey" in schemes:
            schemes.setdefault("Bearer", BEARER_SCHEME)
        for path_item in schema.get("paths", {}).values():
            for operation in path_item.values():
                security = operation.get("security", [])
                if {"ApiKey": []} in security and {"Bearer": []} not in security:
                    security.append({"Bearer": []})
        return schema

    app.openapi = openapi  # type: ignore[method-assign]

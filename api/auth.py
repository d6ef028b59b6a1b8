"""The API-key dependency: reads the caller's key from the request and checks it for a route's scope."""

from typing import Annotated

from fastapi import Depends, Request
from fastapi.openapi.models import APIKey, APIKeyIn
from fastapi.security.base import SecurityBase
from starlette.datastructures import Headers

from api.runtime import runtime_of
from core.auth import SCOPE_ADMIN, SCOPE_READ, SCOPE_WRITE, Principal
from core.request_context import annotate_request
from core.tokens import InvalidToken, looks_like_jwt


def presented_key(headers: Headers) -> str | None:
    """`X-API-Key: <key>`, else `Authorization: Bearer <key>`."""
    key = headers.get("x-api-key")
    if key is None:
        scheme, _, credentials = headers.get("authorization", "").partition(" ")
        if scheme.lower() == "bearer":
            key = credentials.strip()
    return key


class ApiKeyAccess(SecurityBase):
    """Requires a key with `scope` (None: any valid key or token) when AUTH_ENABLED; does nothing otherwise
    (returns None).

    A SecurityBase so OpenAPI documents the scheme and Swagger UI offers "Authorize".
    """

    def __init__(self, scope: str | None) -> None:
        self.scope = scope
        self.scheme_name = "ApiKey"
        self.model = APIKey(
            **{"in": APIKeyIn.header},
            name="X-API-Key",
            description="Required when AUTH_ENABLED=true; `Authorization: Bearer <key>` works too.",
        )

    async def __call__(self, request: Request) -> Principal | None:
        runtime = runtime_of(request)
        authenticator = runtime.auth
        if authenticator is None:
            return None
        presented = presented_key(request.headers)
        try:
            if runtime.tokens is not None and looks_like_jwt(presented):
                principal = authenticator.authorise(await runtime.tokens.principal(presented), self.scope)
            else:
                principal = authenticator.authenticate(presented, self.scope)
        except InvalidToken as exc:
            annotate_request(auth_refused=exc.reason)
            raise
        annotate_request(caller=principal.actor)
        return principal


require_read = ApiKeyAccess(SCOPE_READ)
require_caller = ApiKeyAccess(None)
"""Any known caller, whatever its scopes: `/access`, where a caller learns what it may do."""
require_admin = ApiKeyAccess(SCOPE_ADMIN)
"""/warmup: an operator action, so neither readers nor writers may trigger it; EAGER_INIT needs no key."""
Writer = Annotated[Principal | None, Depends(ApiKeyAccess(SCOPE_WRITE))]

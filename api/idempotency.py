"""The `Idempotency-Key` header of the write operations: checked, and handed down with a fingerprint of the
request it came with (`core.request_context.idempotency_var`), which the flows store with the change.

Read from the request rather than declared as a FastAPI parameter: a header parameter would take the routes
off the direct handler (`api.direct`), which costs every write, keyed or not. OpenAPI documents it through
`OPENAPI`."""

import hashlib

from starlette.requests import Request

from core.exceptions import InvalidRequest
from core.request_context import idempotency_var

HEADER = "idempotency-key"
MAX_KEY_LENGTH = 255
DESCRIPTION = (
    "A key of the caller's choosing, new for each new request (a UUID): the same request sent again with it "
    "within IDEMPOTENCY_TTL_SECONDS answers its first result and applies nothing again; the same key with "
    "another request is a 409 `idempotency_conflict`. Retry with it after `outcome_unknown`, a timeout or a "
    "lost connection."
)
OPENAPI = {
    "parameters": [
        {
            "name": "Idempotency-Key",
            "in": "header",
            "required": False,
            "description": DESCRIPTION,
            "schema": {"type": "string", "minLength": 1, "maxLength": MAX_KEY_LENGTH},
        }
    ]
}


async def idempotent(request: Request) -> None:
    """Hand the request's `Idempotency-Key` down, if it has one; 422 for a key that is empty, too long or not
    printable ASCII. The fingerprint covers the method, path, query string and body as sent."""
    key = request.headers.get(HEADER)
    if key is None:
        return
    if not 0 < len(key) <= MAX_KEY_LENGTH or not (key.isascii() and key.isprintable()):
        raise InvalidRequest(
            f"Idempotency-Key must be 1 to {MAX_KEY_LENGTH} printable ASCII characters", ("header", "Idempotency-Key")
        )
    scope = request.scope
    fingerprint = hashlib.blake2b(digest_size=16)
    fingerprint.update(f"{scope['method']} {scope['path']}?".encode())
    fingerprint.update(scope["query_string"])
    fingerprint.update(b"\n")
    fingerprint.update(await request.body())
    idempotency_var.set((key, fingerprint.hexdigest()))

"""The `responses=` of the routes' decorators: error statuses in the service's envelope, and the
headers the service sends, so OpenAPI (and clients generated from it) know them.

`StrictQueryRoute` (api/routing.py) applies `with_request_id` to every operation: the request middleware
sets `X-Request-ID` on every response, whatever its status.
"""

from typing import Any

from components.features.response_models import ErrorResponse

Responses = dict[int | str, dict[str, Any]]

RETRYABLE_STATUSES = (429, 503)
"""The statuses whose errors carry `Retry-After` (`core.exceptions.RetryLater`)."""

REQUEST_ID_HEADER: dict[str, Any] = {
    "description": "The request's id: the caller's `X-Request-ID` when it is 1 to 128 printable characters "
    "(letters, digits, `._:/+=-`), else a generated one. Error bodies repeat it as `request_id`.",
    "required": True,
    "schema": {"type": "string", "maxLength": 128},
}
RETRY_AFTER_HEADER: dict[str, Any] = {
    "description": "Seconds to wait before retrying.",
    "required": True,
    "schema": {"type": "integer"},
}

WWW_AUTHENTICATE_HEADER: dict[str, Any] = {
    "description": 'How to authenticate: `Bearer realm="feature-store"` when JWT callers are on (with '
    '`error="invalid_token"` and the reason code as `error_description` when a credential was refused, '
    'RFC 6750), else `ApiKey realm="feature-store", header="X-API-Key"`.',
    "required": True,
    "schema": {"type": "string"},
}


def _headers(code: int) -> dict[str, Any]:
    if code in RETRYABLE_STATUSES:
        return {"Retry-After": RETRY_AFTER_HEADER}
    if code == 401:
        return {"WWW-Authenticate": WWW_AUTHENTICATE_HEADER}
    return {}


def errors(*codes: int) -> Responses:
    """Each status as an `ErrorResponse`; 429 and 503 with `Retry-After`, 401 with `WWW-Authenticate`."""
    return {
        code: {"model": ErrorResponse, "headers": headers} if (headers := _headers(code)) else {"model": ErrorResponse}
        for code in codes
    }


def with_request_id(responses: Responses, status_code: int) -> Responses:
    """`responses` and the operation's own `status_code`, each documenting `X-Request-ID` beside its other headers."""
    documented: Responses = {}
    for code, response in {status_code: {}, **responses}.items():
        headers = {"X-Request-ID": REQUEST_ID_HEADER, **response.get("headers", {})}
        documented[code] = {**response, "headers": headers}
    return documented

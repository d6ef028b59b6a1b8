"""The one shape of every error response: `{"detail": ..., "error": ..., "request_id": ...}`.

It lives below both its senders: the middlewares, which answer some errors before any route runs
(body too large, not JSON, an exception nobody expected), and `api/errors.py`, which maps the
service's error hierarchy and the framework's exceptions onto it.
"""

from collections.abc import Mapping
from http import HTTPStatus
from typing import Any

from core.exceptions import (
    BadRequest,
    FeatureStoreError,
    Forbidden,
    HeadersTooLarge,
    InvalidRequest,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    RequestTimeout,
    ServiceUnavailable,
    Unauthorized,
    UnsupportedMediaType,
    UriTooLong,
)
from core.request_context import request_id_var
from core.serialization import JSONBytesResponse, dumps

_CODES = {
    **{
        exc.status_code: exc.error
        for exc in (
            BadRequest,
            Unauthorized,
            Forbidden,
            NotFound,
            PayloadTooLarge,
            UnsupportedMediaType,
            RequestTimeout,
            UriTooLong,
            HeadersTooLarge,
            InvalidRequest,
            RateLimited,
            FeatureStoreError,
            ServiceUnavailable,
        )
    },
    HTTPStatus.METHOD_NOT_ALLOWED.value: "method_not_allowed",
}


def error_code(status_code: int) -> str:
    """The envelope's `error` for framework-raised statuses (404 route, 405, 413 mid-stream): always one
    of `ERROR_CODES`, so the documented enum holds; any other status is a bad request or an internal error."""
    if status_code in _CODES:
        return _CODES[status_code]
    return FeatureStoreError.error if status_code >= 500 else BadRequest.error


def error_response(
    status_code: int, error: str, detail: Any, headers: Mapping[str, str] | None = None
) -> JSONBytesResponse:
    body = {"detail": detail, "error": error, "request_id": request_id_var.get()}
    return JSONBytesResponse(dumps(body), status_code=status_code, headers=headers)


def exception_response(exc: FeatureStoreError) -> JSONBytesResponse:
    """One of the service's own errors as HTTP: its status, code and detail, and `Retry-After` when it has one."""
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    return error_response(exc.status_code, exc.error, exc.detail, headers)


def internal_error_response() -> JSONBytesResponse:
    """For exceptions nobody expected: the client learns nothing of the internals."""
    return exception_response(FeatureStoreError("Internal server error"))

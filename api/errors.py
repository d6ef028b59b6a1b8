"""The one place the error hierarchy and the framework's exceptions become HTTP responses, all in the
envelope of `core/error_envelope.py`: detail, error, request_id."""

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from api.auth import presented_key
from api.runtime import runtime_of
from core.error_envelope import error_code, error_response, exception_response
from core.exceptions import MAX_LOC_CHARS, FeatureStoreError, InvalidRequest, Unauthorized
from core.serialization import JSONBytesResponse
from core.tokens import InvalidToken

logger = logging.getLogger("feature_store.errors")
REALM = "feature-store"


def _field_errors(errors: Any) -> list[dict[str, Any]]:
    """Pydantic's errors without `input` (may be huge or sensitive) or `ctx` (may hold exception objects);
    `loc` may hold the client's own object keys, so long ones are cut."""
    return [
        {
            "type": error.get("type", "value_error"),
            "loc": [item[:MAX_LOC_CHARS] if isinstance(item, str) else item for item in error.get("loc", ())],
            "msg": str(error.get("msg", "")),
        }
        for error in errors
    ]


def _unparsable_body(cause: BaseException) -> str | None:
    """Why FastAPI could not parse a JSON body, in words that reveal nothing internal; None if not a parse error.

    FastAPI turns everything but a JSONDecodeError into a bare 400; these are malformed JSON like any other.
    """
    if isinstance(cause, RecursionError):
        return "JSON nested too deeply"
    if isinstance(cause, UnicodeDecodeError):
        return "body is not valid UTF-8"
    if isinstance(cause, ValueError):
        return "JSON number too long"
    return None


def authentication_challenge(request: Request, exc: Unauthorized) -> str:
    """The `WWW-Authenticate` of a 401. With JWT callers on, RFC 6750's Bearer challenge: no error code when
    no credential came, else `invalid_token` with the refusal's reason code (an API key sent as a bearer token
    is one). Without them, the API-key scheme, naming its header."""
    if runtime_of(request).tokens is None:
        return f'ApiKey realm="{REALM}", header="X-API-Key"'
    if presented_key(request.headers) is None:
        return f'Bearer realm="{REALM}"'
    reason = exc.reason if isinstance(exc, InvalidToken) else "invalid_api_key"
    return f'Bearer realm="{REALM}", error="invalid_token", error_description="{reason}"'


async def _feature_store_error(request: Request, exc: FeatureStoreError) -> JSONBytesResponse:
    if exc.status_code >= 500:
        logger.error("request failed: %s", exc.message, extra={"error": exc.error})
    response = exception_response(exc)
    if isinstance(exc, Unauthorized):
        response.headers["WWW-Authenticate"] = authentication_challenge(request, exc)
    return response


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONBytesResponse:
    return error_response(InvalidRequest.status_code, InvalidRequest.error, _field_errors(exc.errors()))


async def _http_error(_request: Request, exc: HTTPException) -> JSONBytesResponse:
    if exc.status_code == 400 and exc.__cause__ is not None and (reason := _unparsable_body(exc.__cause__)):
        return exception_response(InvalidRequest(reason, kind="json_invalid"))
    return error_response(exc.status_code, error_code(exc.status_code), exc.detail, exc.headers)


_HANDLERS: dict[type[Exception], Callable[..., Awaitable[JSONBytesResponse]]] = {
    # `...`: Starlette types a handler as taking any Exception, but calls it only with the class it is registered for.
    FeatureStoreError: _feature_store_error,
    RequestValidationError: _validation_error,
    HTTPException: _http_error,
}


def register_error_handlers(app: FastAPI) -> None:
    for exc_class, handler in _HANDLERS.items():
        app.add_exception_handler(exc_class, handler)

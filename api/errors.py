"""The one place errors become HTTP responses, all in the same envelope: detail, error, request_id."""

import logging
from collections.abc import Awaitable, Callable, Mapping
from http import HTTPStatus
from typing import Any

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from starlette.exceptions import HTTPException

from core.exceptions import MAX_LOC_CHARS, FeatureStoreError, PayloadTooLarge, UnsupportedMediaType
from core.request_context import request_id_var
from core.serialization import JSONBytesResponse, dumps

logger = logging.getLogger("feature_store.errors")


_CODES = {exc.status_code: exc.error for exc in (PayloadTooLarge, UnsupportedMediaType)}


def error_code(status_code: int) -> str:
    """The envelope's `error` for framework-raised statuses (404 route, 405, 413 mid-stream)."""
    if status_code in _CODES:
        return _CODES[status_code]
    try:
        return HTTPStatus(status_code).phrase.lower().replace(" ", "_").replace("-", "_")
    except ValueError:
        return "error"


def error_response(
    status_code: int, error: str, detail: Any, headers: Mapping[str, str] | None = None
) -> JSONBytesResponse:
    body = {"detail": detail, "error": error, "request_id": request_id_var.get()}
    return JSONBytesResponse(dumps(body), status_code=status_code, headers=headers)


def internal_error_response() -> JSONBytesResponse:
    """For exceptions nobody expected: the client learns nothing of the internals."""
    return error_response(500, "internal_error", "Internal server error")


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


async def _feature_store_error(_request: Request, exc: FeatureStoreError) -> JSONBytesResponse:
    headers = {"Retry-After": str(exc.retry_after)} if exc.retry_after is not None else None
    if exc.status_code >= 500:
        logger.error("request failed: %s", exc.message, extra={"error": exc.error})
    return error_response(exc.status_code, exc.error, exc.detail, headers)


async def _validation_error(_request: Request, exc: RequestValidationError) -> JSONBytesResponse:
    return error_response(422, "validation_error", _field_errors(exc.errors()))


async def _http_error(_request: Request, exc: HTTPException) -> JSONBytesResponse:
    if exc.status_code == 400 and exc.__cause__ is not None and (reason := _unparsable_body(exc.__cause__)):
        return error_response(422, "validation_error", [{"type": "json_invalid", "loc": ["body"], "msg": reason}])
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

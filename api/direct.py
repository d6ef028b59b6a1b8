"""A request handler that validates a route's parameters and awaits its endpoint, without FastAPI's
general machinery, for routes that need nothing more.

FastAPI's own handler resolves every request through its dependency graph, inspects each parameter's
annotation again, builds an error context and telemetry record, and handles response models: ~50 us
of a single-category read's ~130 us (in-process ASGI loop, 20,000 reads, FastAPI 0.165; the read
itself, store included, is under half of that). A route is served here when its endpoint is a
coroutine returning a `Response` and takes only path and query parameters, the request, and
dependencies that are coroutines of the request alone (the API-key check). It gets the same validators
(each parameter's own, as FastAPI built it), so the same values and the same errors at the same
locations, in the same order: dependencies first, then path, then query parameters. Any other route
is left to FastAPI (`direct_handler` returns None).
"""

import inspect
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any

from fastapi._compat import ModelField, field_annotation_is_sequence
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Json
from starlette.requests import Request
from starlette.responses import Response

Handler = Callable[[Request], Coroutine[Any, Any, Response]]

IMMUTABLE_DEFAULTS = (str, int, float, bool, type(None))
"""FastAPI gives a missing parameter a deep copy of its default; these need none."""


@dataclass(frozen=True, slots=True)
class _Parameter:
    name: str
    field: ModelField
    location: str
    """`path` or `query`, the first item of an error's `loc`."""
    many: bool
    """Read from every repetition (a list parameter)."""
    required: bool


def _is_coroutine(call: Any) -> bool:
    """A coroutine function, or an object whose `__call__` is one (the key check)."""
    return inspect.iscoroutinefunction(call) or inspect.iscoroutinefunction(type(call).__call__)


def _takes_only_the_request(dependant: Dependant, *, params: bool) -> bool:
    """Nothing but the request (and path and query parameters when `params`)."""
    return not (
        (dependant.path_params or dependant.query_params)
        and not params
        or dependant.header_params
        or dependant.cookie_params
        or dependant.body_params
        or dependant.websocket_param_name
        or dependant.http_connection_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
    )


def _plain(field: ModelField) -> bool:
    """A parameter read as FastAPI reads most: one name, no model, no JSON, an immutable default."""
    info = field.field_info
    annotation = info.annotation
    return (
        info.validation_alias is None
        and not info.validate_default
        and not (inspect.isclass(annotation) and issubclass(annotation, BaseModel))
        and not any(type(item) is Json for item in info.metadata)
        and (info.is_required() or isinstance(info.default, IMMUTABLE_DEFAULTS))
    )


def _returns_a_response(call: Callable[..., Any]) -> bool:
    try:
        returned = inspect.signature(call, eval_str=True).return_annotation
    except (NameError, TypeError, ValueError):
        return False
    return inspect.isclass(returned) and issubclass(returned, Response)


def direct_handler(dependant: Dependant) -> Handler | None:
    """The handler for a route whose needs are covered here; None to leave it to FastAPI."""
    endpoint = dependant.call
    if endpoint is None or not inspect.iscoroutinefunction(endpoint) or not _returns_a_response(endpoint):
        return None
    if not _takes_only_the_request(dependant, params=True):
        return None
    dependencies = []
    for dependency in dependant.dependencies:
        if (
            dependency.call is None
            or not _is_coroutine(dependency.call)
            or dependency.request_param_name is None
            or dependency.dependencies
            or not _takes_only_the_request(dependency, params=False)
        ):
            return None
        dependencies.append((dependency.name, dependency.request_param_name, dependency.call))
    parameters = [
        _Parameter(
            field.name,
            field,
            location,
            location == "query" and field_annotation_is_sequence(field.field_info.annotation),
            field.field_info.is_required(),
        )
        for location, fields in (("path", dependant.path_params), ("query", dependant.query_params))
        for field in fields
    ]
    if not all(_plain(parameter.field) for parameter in parameters):
        return None
    request_name = dependant.request_param_name

    async def handle(request: Request) -> Response:
        values: dict[str, Any] = {}
        for name, request_param, call in dependencies:
            value = await call(**{request_param: request})
            if name is not None:
                values[name] = value
        if request_name is not None:
            values[request_name] = request
        errors: list[Any] = []
        path, query = request.path_params, request.query_params
        for parameter in parameters:
            field = parameter.field
            if parameter.location == "path":
                raw: Any = path.get(field.alias)
            elif parameter.many:
                raw = query.getlist(field.alias) or None
            else:
                raw = query.get(field.alias)
            if raw is None:
                if parameter.required:
                    errors.append(
                        {"type": "missing", "loc": (parameter.location, field.alias), "msg": "Field required"}
                    )
                else:
                    values[parameter.name] = field.field_info.default
                continue
            value, field_errors = field.validate(raw, values, loc=(parameter.location, field.alias))
            if field_errors:
                errors.extend(field_errors)
            else:
                values[parameter.name] = value
        if errors:
            raise RequestValidationError(errors)
        return await endpoint(**values)

    return handle

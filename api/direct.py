"""A request handler that validates a route's inputs and awaits its endpoint, without FastAPI's
general machinery, for routes that need nothing more.

FastAPI's own handler resolves every request through its dependency graph, inspects each parameter's
annotation again, builds an error context and telemetry record, and handles response models: a third
of a single-category read's time (figures: docs/performance.md, "Figures behind the code"). A route is served here when its endpoint is a coroutine returning
a `Response` and takes only path and query parameters, one body model, the request, and
dependencies that are coroutines of the request alone (the API-key check). It gets the same
validators (each input's own, as FastAPI built it), so the same values and the same errors at the
same locations, in FastAPI's order: the body read and parsed, the dependencies, then path, query and
body validation. The body is read as FastAPI reads it with a strict Content-Type (its default); a
route that relaxes it, or needs anything else (headers, forms, several body fields, mutable
defaults, a dependency with a concurrency limit), is left to FastAPI (`direct_handler` returns None).
FastAPI's own body size limit (`max_body_size`) is not used here: the request middleware enforces
the service's. Nor are `app.dependency_overrides` (see docs/development.md, "The direct request
handler").

It leans on FastAPI's private names and on how its handler behaves, so it is fenced: when one of
those names cannot be imported, when the installed FastAPI is not a version it was verified
against, or when FastAPI's `Dependant` has a field it does not know (or lacks one it reads), every
route stays on FastAPI's own handler (`unavailable_reason` says why), and one line at start-up says
which handler serves the routes (`log_request_handler`).
"""

from __future__ import annotations  # the annotations name FastAPI's private types, which may be missing

import dataclasses
import email.message
import functools
import inspect
import json
import logging
from collections.abc import Callable, Coroutine
from typing import Any

import fastapi
from fastapi import params
from fastapi.exceptions import RequestValidationError
from pydantic import BaseModel, Json
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response

# FastAPI's private names: when one is gone, every route stays on FastAPI's own handler (`unavailable_reason`).
try:
    from fastapi._compat import ModelField, Undefined, field_annotation_is_sequence, get_missing_field_error
    from fastapi.dependencies.models import Dependant
except ImportError as error:
    MISSING_NAMES: str | None = str(error)
else:
    MISSING_NAMES = None

logger = logging.getLogger("feature_store.routing")

Handler = Callable[[Request], Coroutine[Any, Any, Response]]

# Before adding a FastAPI version, re-verify this module against that version's source
# (fastapi/routing.py: get_request_handler; fastapi/dependencies/utils.py:
# solve_dependencies, request_params_to_args, request_body_to_args; fastapi/dependencies/models.py):
# - the private names imported above still exist and mean the same: ModelField's `validate(value, values,
#   loc=...)` returning (value, errors), `field_info`, `alias`, `name`; `Undefined`; `field_annotation_is_sequence`;
#   `get_missing_field_error`'s error; and, in api/routing.py, `_effective_route_context_var` still holding the
#   inclusion being built (its `original_route`, `dependant`, `strict_content_type`), whose dependencies (the
#   API-key check) the handler must be built with;
# - Dependant's fields (DEPENDANT_FIELDS) and that each still means what its entry says;
# - the behaviours copied here: the body read (JSON only for application/json and +json with a strict
#   Content-Type, the `json_invalid` error, a 400 for any other failure), the order (body read, dependencies,
#   then path, query and body validation), a list query parameter read from every repetition, a missing
#   optional input given its default (which FastAPI deep-copies: IMMUTABLE_DEFAULTS), each dependency called
#   once a request;
# then run tests/api/test_direct.py, whose equivalence tests compare this handler's answers with FastAPI's.
VERIFIED_FASTAPI_VERSIONS = frozenset({"0.165.0"})
"""The FastAPI versions this handler was verified against; under any other, FastAPI's own serves every route."""

DEPENDANT_FIELDS = {
    "path_params": "validated here (plain fields only)",
    "query_params": "validated here (plain fields only)",
    "header_params": "any: left to FastAPI",
    "cookie_params": "any: left to FastAPI",
    "body_params": "validated here (one model, the whole JSON body)",
    "dependencies": "awaited here (coroutines of the request alone, each once)",
    "name": "the argument a dependency's value is passed as",
    "call": "the endpoint or dependency awaited",
    "request_param_name": "given the request",
    "websocket_param_name": "any: left to FastAPI",
    "http_connection_param_name": "any: left to FastAPI",
    "response_param_name": "any: left to FastAPI",
    "background_tasks_param_name": "any: left to FastAPI",
    "security_scopes_param_name": "any: left to FastAPI",
    "own_oauth_scopes": "for SecurityScopes and the dependency cache only, neither of which applies here",
    "parent_oauth_scopes": "for SecurityScopes and the dependency cache only, neither of which applies here",
    "use_cache": "a dependency listed twice is left to FastAPI, so each is called once either way",
    "path": "for FastAPI's error context only",
    "scope": "for generator dependencies only, which are left to FastAPI",
    "concurrency": "a dependency with a limit is left to FastAPI",
}
"""Every field of FastAPI's `Dependant` this handler was written for -> what it does with it."""

IMMUTABLE_DEFAULTS = (str, int, float, bool, type(None))
"""FastAPI gives a missing parameter a deep copy of its default; these need none."""


def unavailable_reason() -> str | None:
    """Why every route stays on FastAPI's own handler in this process; None when this one may serve them."""
    if MISSING_NAMES is not None:
        return f"FastAPI's private names it uses cannot be imported ({MISSING_NAMES})"
    version = fastapi.__version__
    if version not in VERIFIED_FASTAPI_VERSIONS:
        verified = ", ".join(sorted(VERIFIED_FASTAPI_VERSIONS))
        return f"FastAPI {version} is not a version it was verified against ({verified})"
    if not dataclasses.is_dataclass(Dependant):
        return "FastAPI's Dependant is not the dataclass it was written for"
    fields = {field.name for field in dataclasses.fields(Dependant)}
    unknown, gone = sorted(fields - DEPENDANT_FIELDS.keys()), sorted(DEPENDANT_FIELDS.keys() - fields)
    if unknown or gone:
        return (
            f"FastAPI's Dependant has fields it does not know ({', '.join(unknown) or 'none'})"
            f" or lacks ones it reads ({', '.join(gone) or 'none'})"
        )
    return None


def log_request_handler() -> None:
    """The start-up line saying which handler serves the API's routes, and why when it is FastAPI's alone."""
    reason = unavailable_reason()
    if reason is None:
        logger.info(
            "request handler: api.direct serves the routes it can, FastAPI's own the others",
            extra={"fastapi_version": fastapi.__version__},
        )
    else:
        logger.warning(
            "request handler: FastAPI's own serves every route, api.direct is off: %s",
            reason,
            extra={"fastapi_version": fastapi.__version__},
        )


@dataclasses.dataclass(frozen=True, slots=True)
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


def _takes_only_the_request(dependant: Dependant, *, inputs: bool) -> bool:
    """Nothing but the request (and path and query parameters and a body when `inputs`)."""
    takes_inputs = bool(dependant.path_params or dependant.query_params or dependant.body_params)
    return (inputs or not takes_inputs) and not (
        dependant.header_params
        or dependant.cookie_params
        or dependant.websocket_param_name
        or dependant.http_connection_param_name
        or dependant.response_param_name
        or dependant.background_tasks_param_name
        or dependant.security_scopes_param_name
    )


def _plain(field: ModelField) -> bool:
    """An input read as FastAPI reads most: one name, no JSON, an immutable default."""
    info = field.field_info
    return (
        info.validation_alias is None
        and not info.validate_default
        and not any(type(item) is Json for item in info.metadata)
        and (info.is_required() or isinstance(info.default, IMMUTABLE_DEFAULTS))
    )


def _a_model(field: ModelField) -> bool:
    """A path or query parameter FastAPI assembles from several names."""
    annotation = field.field_info.annotation
    return inspect.isclass(annotation) and issubclass(annotation, BaseModel)


def _whole_body(fields: list[ModelField]) -> bool:
    """No body, or one the whole JSON document is validated as (not form fields, not several or
    embedded fields)."""
    if not fields:
        return True
    info = fields[0].field_info
    return (
        len(fields) == 1
        and isinstance(info, params.Body)
        and not isinstance(info, params.Form)
        and not info.embed
        and _plain(fields[0])
    )


@functools.lru_cache(maxsize=64)
def _is_json(content_type: str) -> bool:
    """FastAPI's reading of a Content-Type, once per distinct value."""
    message = email.message.Message()
    message["content-type"] = content_type
    subtype = message.get_content_subtype()
    return message.get_content_maintype() == "application" and (subtype == "json" or subtype.endswith("+json"))


async def _read_body(request: Request) -> Any:
    """The body as FastAPI reads it (strict Content-Type): parsed when it says JSON, bytes when it does
    not, Undefined when empty."""
    try:
        body = await request.body()
        if not body:
            return Undefined
        content_type = request.headers.get("content-type")
        return await request.json() if content_type and _is_json(content_type) else body
    except json.JSONDecodeError as exc:
        error = {"type": "json_invalid", "loc": ("body", exc.pos), "msg": "JSON decode error", "input": {}}
        raise RequestValidationError([{**error, "ctx": {"error": exc.msg}}], body=exc.doc) from exc
    except HTTPException:
        raise
    except Exception as exc:
        raise HTTPException(status_code=400, detail="There was an error parsing the body") from exc


def _returns_a_response(call: Callable[..., Any]) -> bool:
    try:
        returned = inspect.signature(call, eval_str=True).return_annotation
    except (NameError, TypeError, ValueError):
        return False
    return inspect.isclass(returned) and issubclass(returned, Response)


def direct_handler(dependant: Dependant, *, strict_content_type: bool = True) -> Handler | None:
    """The handler for a route whose needs are covered here; None to leave it to FastAPI."""
    if unavailable_reason() is not None:
        return None
    endpoint = dependant.call
    if not _whole_body(dependant.body_params) or not strict_content_type:
        return None
    body_field = dependant.body_params[0] if dependant.body_params else None
    if endpoint is None or not inspect.iscoroutinefunction(endpoint) or not _returns_a_response(endpoint):
        return None
    if not _takes_only_the_request(dependant, inputs=True):
        return None
    dependencies = []
    for dependency in dependant.dependencies:
        if (
            dependency.call is None
            or not _is_coroutine(dependency.call)
            or dependency.request_param_name is None
            or dependency.dependencies
            or dependency.concurrency is not None
            or not _takes_only_the_request(dependency, inputs=False)
        ):
            return None
        dependencies.append((dependency.name, dependency.request_param_name, dependency.call))
    if len({id(call) for _, _, call in dependencies}) < len(dependencies):
        return None  # FastAPI calls a dependency listed twice once a request
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
    if not all(_plain(parameter.field) and not _a_model(parameter.field) for parameter in parameters):
        return None
    request_name = dependant.request_param_name

    async def handle(request: Request) -> Response:
        # In FastAPI's order: the body is read and parsed first, validated last.
        body = await _read_body(request) if body_field is not None else Undefined
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
                    errors.append(get_missing_field_error((parameter.location, field.alias)))
                else:
                    values[parameter.name] = field.field_info.default
                continue
            value, field_errors = field.validate(raw, values, loc=(parameter.location, field.alias))
            if field_errors:
                errors.extend(field_errors)
            else:
                values[parameter.name] = value
        if body_field is not None:
            if body is not Undefined:
                value, field_errors = body_field.validate(body, values, loc=("body",))
                errors.extend(field_errors)
                values[body_field.name] = value
            elif body_field.field_info.is_required():
                errors.append(get_missing_field_error(("body",)))
            else:
                values[body_field.name] = body_field.field_info.default
        if errors:
            raise RequestValidationError(errors, body=None if body is Undefined else body)
        return await endpoint(**values)

    return handle

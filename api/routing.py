"""The route class of every API router: the one place that judges a request's query-string names.

FastAPI ignores query parameters it was not told about, so a misspelt or unsupported one
(`?entity_typ=account_id`) would silently be dropped and the default served: another entity's data.
Here each route knows the names it declares, precomputed once from its dependant (its own
parameters and its dependencies', those of an inclusion's included), and refuses with a 422:
- a name it does not declare;
- a single-valued parameter given twice, since FastAPI would use one value and drop the other;
- an alias and the name it stands for given with different values.

Aliases: `table_type` is the earlier API's name for `entity_type`, accepted by every operation that
declares `entity_type`. It is renamed here, before FastAPI reads the parameters, so the operation
declares one parameter and pays for one (FastAPI resolves each declared parameter on every request).
OpenAPI names the alias in the description of the parameter it stands for, not as a parameter of its
own: a document listing both would declare valid a request giving both with different values, which
is refused (and a client generated from it would take two arguments for one thing).

Routes that take only path and query parameters, a JSON body and the key check are handled by
`api.direct` rather than FastAPI's general handler (about a third of a single-category read's CPU
in-process), unless its fence leaves every route to FastAPI's (an unverified FastAPI version, a
private name gone, an unknown `Dependant` field).

A request without a query string pays one dictionary lookup. The docs pages (`/docs`, `/redoc`,
`/openapi.json`) are not API routes and accept any query string.
"""

import json
import weakref
from collections.abc import Callable, Coroutine
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from fastapi._compat import field_annotation_is_sequence
from fastapi.datastructures import DefaultPlaceholder
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute, _effective_route_context_var
from pydantic_core import from_json
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Match
from starlette.types import Receive, Scope, Send

from api.direct import direct_handler
from api.paths import INVALID_PARAMETERS, PathTemplate, invalid_parameters, raw_route_path
from api.responses import errors, with_request_id

MAX_REPORTED = 20
"""Most refused parameters one error lists; a query string can hold thousands."""
QUERY_ALIASES = {"table_type": "entity_type"}
"""Alias -> the parameter it stands for, on every operation that declares that parameter."""


@dataclass(frozen=True)
class QueryNames:
    declared: frozenset[str]
    single: frozenset[str]
    """Declared names that take one value (FastAPI reads a list parameter from every repetition)."""
    aliases: dict[str, str]
    """The aliases this operation accepts -> the declared name each stands for."""

    @property
    def accepted(self) -> frozenset[str]:
        return self.declared | self.aliases.keys()


def query_names(dependant: Dependant) -> QueryNames:
    declared: set[str] = set()
    single: set[str] = set()
    pending = [dependant]
    while pending:
        current = pending.pop()
        for field in current.query_params:
            declared.add(field.alias)
            if not field_annotation_is_sequence(field.field_info.annotation):
                single.add(field.alias)
        pending.extend(current.dependencies)
    aliases = {alias: name for alias, name in QUERY_ALIASES.items() if name in declared}
    single |= {alias for alias, name in aliases.items() if name in single}
    return QueryNames(frozenset(declared), frozenset(single), aliases)


def _refusal(name: str, kind: str, message: str) -> dict[str, Any]:
    return {"type": kind, "loc": ("query", name), "msg": message}


def refused_query_parameters(pairs: list[tuple[str, str]], names: QueryNames) -> list[dict[str, Any]]:
    """Field errors for every refused name in the query string's (name, value) pairs; empty when all is well."""
    given: dict[str, list[str]] = {}
    for name, value in pairs:
        given.setdefault(name, []).append(value)
    accepted = names.accepted
    unknown = sorted(name for name in given if name not in accepted)
    listed = ", ".join(sorted(accepted)) or "none"
    errors = [
        _refusal(name, "extra_forbidden", f"unknown query parameter; this operation accepts: {listed}")
        for name in unknown
    ]
    errors += [
        _refusal(name, "repeated_parameter", "given more than once; send one value")
        for name, values in sorted(given.items())
        if len(values) > 1 and name in names.single
    ]
    for alias, name in names.aliases.items():
        if alias in given and name in given and given[alias][-1] != given[name][-1]:
            errors.append(
                _refusal(
                    alias,
                    "value_error",
                    f"{name} {given[name][-1][:128]!r} and its alias {alias} {given[alias][-1][:128]!r} disagree; "
                    "give one of them",
                )
            )
    if len(errors) > MAX_REPORTED:
        errors = [*errors[:MAX_REPORTED], _refusal("...", "extra_forbidden", f"and {len(errors) - MAX_REPORTED} more")]
    return errors


def check_query(request: Request, names: QueryNames) -> Request:
    """The request to serve: as it came, or with its aliases renamed; RequestValidationError if refused."""
    params = request.query_params
    pairs = params.multi_items()
    if len(pairs) == len(params) and params.keys() <= names.declared:
        return request
    errors = refused_query_parameters(pairs, names)
    if errors:
        raise RequestValidationError(errors)
    given = params.keys()
    renamed = [
        (names.aliases.get(name, name), value)
        for name, value in pairs
        if name not in names.aliases or names.aliases[name] not in given  # an agreeing alias adds nothing
    ]
    request.scope["query_string"] = urlencode(renamed).encode("ascii")
    return Request(request.scope, request.receive)


class JSONRequest(Request):
    """A request whose JSON body is parsed by pydantic-core rather than the standard library's `json`:
    several times faster on a bulk write's body (figures: docs/performance.md, "Figures behind the code").
    Both give the same values (big integers stay integers, NaN
    and Infinity parse, a repeated key keeps its last value); a body pydantic-core refuses (a lone
    surrogate escape, a byte-order mark, invalid JSON) goes to `json` as before, so it is accepted or
    refused, and its error worded, exactly as it was."""

    async def json(self) -> Any:
        if not hasattr(self, "_json"):
            body = await self.body()
            try:
                self._json = from_json(body)
            except ValueError:
                self._json = json.loads(body)
        return self._json


ROUTES: "list[weakref.ref[StrictQueryRoute]]" = []
"""Every API route, for the `Allow` header of a 405 (the app's own route list nests its routers)."""


class StrictQueryRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        # Any operation may answer 422 now, so the document says so, in the service's envelope.
        responses = {**errors(422), **(kwargs.get("responses") or {})}
        kwargs["responses"] = with_request_id(responses, kwargs.get("status_code") or 200)
        super().__init__(path, endpoint, **kwargs)
        self.template = PathTemplate.of(self.path)
        ROUTES.append(weakref.ref(self))

    def matches(self, scope: Scope) -> tuple[Match, Scope]:
        """A path with percent-escapes is matched on its raw segments (`api.paths`), so `a%2Fb` is one
        parameter `a/b`; any other path as Starlette matches it."""
        raw_path = raw_route_path(scope) if self.template is not None and scope["type"] == "http" else None
        if raw_path is None or self.template is None:
            return super().matches(scope)
        found = self.template.match(raw_path)
        if found is None:
            return Match.NONE, {}
        values, invalid = found
        child_scope = {
            "endpoint": self.endpoint,
            "path_params": {**scope.get("path_params", {}), **values},
            "route": self,
            INVALID_PARAMETERS: invalid,
        }
        if self.methods and scope["method"] not in self.methods:
            return Match.PARTIAL, child_scope
        return Match.FULL, child_scope

    async def handle(self, scope: Scope, receive: Receive, send: Send) -> None:
        """A method this path does not serve is a 405 whose `Allow` lists every method the path serves, as
        OpenAPI does. Starlette answers with the first route matching the path, which names its own
        methods only, and one path may have routes in several routers (`/items/{entity_value}`: the
        earlier write and the deletion)."""
        if self.methods and scope["method"] not in self.methods:
            routes = [route for reference in ROUTES if (route := reference()) is not None]
            allowed = {method for route in routes if route.path == self.path for method in route.methods or ()}
            raise HTTPException(405, headers={"Allow": ", ".join(sorted(allowed))})
        await super().handle(scope, receive, send)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        """Called once for the route as declared and once for each inclusion in an app or router, which may
        add dependencies (the API-key check): FastAPI marks the inclusion being built, and the handler is
        built for it, as FastAPI's own is."""
        included = _effective_route_context_var.get()
        route = included if included is not None and included.original_route is self else self
        strict = route.strict_content_type
        strict = strict.value if isinstance(strict, DefaultPlaceholder) else strict
        handler = direct_handler(route.dependant, strict_content_type=strict) or super().get_route_handler()
        names = query_names(route.dependant)
        takes_body = self.body_field is not None

        async def checked(request: Request) -> Response:
            if request.scope.get(INVALID_PARAMETERS):
                raise RequestValidationError(invalid_parameters(request.scope))
            if request.scope["query_string"]:
                request = check_query(request, names)
            if takes_body:
                request = JSONRequest(request.scope, request.receive)
            return await handler(request)

        return checked

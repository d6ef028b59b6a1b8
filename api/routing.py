"""The route class every API router uses: a query parameter the operation does not declare is a 422.

FastAPI ignores query parameters it was not told about, so a misspelt or unsupported one
(`?entity_typ=account_id`) would silently be dropped and the default served: another entity's data.
Here each route compares the query string's names with the set it declares, precomputed once from
its dependant (its own parameters and those of its dependencies; not those added by `include_router`,
which take none here, as a test of every operation checks); a request without a query string
pays one dictionary lookup. A single-valued parameter given twice is refused too, for the same
reason: FastAPI would use one of the values and drop the other. Routes outside the API (`/docs`, `/redoc`, `/openapi.json`,
the docs' static files) are plain Starlette routes and are not checked.
"""

from collections.abc import Callable, Coroutine
from typing import Any

from fastapi._compat import field_annotation_is_sequence
from fastapi.dependencies.models import Dependant
from fastapi.exceptions import RequestValidationError
from fastapi.routing import APIRoute
from starlette.requests import Request
from starlette.responses import Response

from components.features.models import ErrorResponse

MAX_REPORTED = 20
"""Most refused parameters one error lists; a query string can hold thousands."""


def declared_query_parameters(dependant: Dependant) -> tuple[frozenset[str], frozenset[str]]:
    """The names the operation reads from the query string (its dependencies' included), and those of
    them that hold a single value (FastAPI reads a list parameter from every repetition)."""
    names: set[str] = set()
    single: set[str] = set()
    pending = [dependant]
    while pending:
        current = pending.pop()
        for field in current.query_params:
            names.add(field.alias)
            if not field_annotation_is_sequence(field.field_info.annotation):
                single.add(field.alias)
        pending.extend(current.dependencies)
    return frozenset(names), frozenset(single)


def _refusal(name: str, kind: str, message: str) -> dict[str, Any]:
    return {"type": kind, "loc": ("query", name), "msg": message}


def refused_query_parameters(
    request: Request, declared: frozenset[str], single: frozenset[str]
) -> list[dict[str, Any]]:
    """Field errors for every undeclared query parameter and repeated single-valued one; empty when all is well."""
    params = request.query_params
    errors: list[dict[str, Any]] = []
    unknown = params.keys() - declared
    if unknown:
        accepted = ", ".join(sorted(declared)) or "none"
        errors = [
            _refusal(name, "extra_forbidden", f"unknown query parameter; this operation accepts: {accepted}")
            for name in sorted(unknown)
        ]
    if len(params.multi_items()) > len(params):
        counted: dict[str, int] = {}
        for name, _value in params.multi_items():
            counted[name] = counted.get(name, 0) + 1
        errors += [
            _refusal(name, "repeated_parameter", "given more than once; send one value")
            for name, count in sorted(counted.items())
            if count > 1 and name in single
        ]
    if len(errors) > MAX_REPORTED:
        more = len(errors) - MAX_REPORTED
        errors = [*errors[:MAX_REPORTED], _refusal("...", "extra_forbidden", f"and {more} more")]
    return errors


class StrictQueryRoute(APIRoute):
    def __init__(self, path: str, endpoint: Callable[..., Any], **kwargs: Any) -> None:
        # Any operation may now answer 422, so the document says so, in the service's envelope.
        kwargs["responses"] = {422: {"model": ErrorResponse}, **(kwargs.get("responses") or {})}
        super().__init__(path, endpoint, **kwargs)

    def get_route_handler(self) -> Callable[[Request], Coroutine[Any, Any, Response]]:
        handler = super().get_route_handler()
        declared, single = declared_query_parameters(self.dependant)

        async def checked(request: Request) -> Response:
            if request.scope["query_string"]:
                errors = refused_query_parameters(request, declared, single)
                if errors:
                    raise RequestValidationError(errors)
            return await handler(request)

        return checked

"""Routes served by `api.direct` answer exactly as FastAPI's own handler answers, and only the routes
it can serve are given to it."""

import copy
import dataclasses
import importlib
import logging
import sys
from collections.abc import Callable
from typing import Annotated, Any

import fastapi
import fastapi._compat
import pytest
import schemathesis
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.dependencies.models import Dependant
from fastapi.dependencies.utils import get_dependant
from fastapi.routing import request_response
from fastapi.testclient import TestClient
from hypothesis import HealthCheck, assume, given, settings
from schemathesis import GenerationMode
from starlette.responses import Response

import api.direct
import api.routing
from api.direct import VERIFIED_FASTAPI_VERSIONS, direct_handler, unavailable_reason
from api.routing import StrictQueryRoute
from tests.api.v1.test_fuzz import TRANSPORT_ARGUMENTS, narrow
from tests.conftest import AppClient
from tests.factories import NOW, read_body, write_body

pytestmark = pytest.mark.backends("sqlite")

ITEM = "/api/v1/get/item"
GENERATED_EXAMPLES = 12
"""Requests generated per operation and mode, each sent with and without a key."""
GENERATED_ITEMS = 3
"""Most items of an array in a generated request."""
LONG = "x" * 129
JSON = {"Content-Type": "application/json"}
BULK = {
    "meta": {"source": "prediction_service"},
    "data": {
        "entity_type": "bright_uid",
        "entities": [
            {"entity_value": "user-2", "feature_list": [{"category": "user_features", "features": {"a": 1}}]},
            {"entity_value": "user-3", "feature_list": [{"category": "nonexistent", "features": {"a": 1}}]},
        ],
    },
}
REQUESTS: list[tuple[str, str, dict[str, Any]]] = [
    ("POST", "/api/v1/items", {"json": write_body("user-1", event_time=NOW)}),
    ("POST", "/api/v1/items", {"json": write_body("user-1", event_time=NOW)}),
    ("POST", "/api/v1/items?entity_typ=bright_uid", {"json": write_body("user-1")}),
    ("POST", "/api/v1/items", {"content": b'{"meta": ', "headers": JSON}),
    ("POST", "/api/v1/items", {"content": b'{"meta": "\xff"}', "headers": JSON}),
    ("POST", "/api/v1/items", {"content": b"[" * 5000 + b"]" * 5000, "headers": JSON}),
    ("POST", "/api/v1/items", {"content": b"", "headers": JSON}),
    ("POST", "/api/v1/items", {"content": b"[]", "headers": JSON}),
    ("POST", "/api/v1/items", {"content": b'{"data": 1, "meta": null}', "headers": JSON}),
    ("POST", "/api/v1/items", {"content": b'{"a": 1}', "headers": {"Content-Type": "application/merge+json"}}),
    ("POST", "/api/v1/items", {"content": b'{"a": 1}', "headers": {"Content-Type": "text/plain"}}),
    ("POST", "/api/v1/items/batch", {"json": BULK}),
    ("POST", "/api/v1/items/batch", {"json": {"meta": {"source": "prediction_service"}, "data": {"entities": []}}}),
    ("POST", "/api/v1/items/user-4", {"json": {"user_features": {"a": 1}}}),
    ("POST", "/api/v1/items/user-4", {"json": {"user_features": 1}}),
    ("GET", f"{ITEM}/user-1/user_features", {}),
    ("GET", f"{ITEM}/user-1/user_features?max_age_seconds=3600&entity_type=bright_uid", {}),
    ("GET", f"{ITEM}/nobody/user_features", {}),
    ("GET", f"{ITEM}/user-1/unknown_category", {}),
    ("GET", f"{ITEM}/user-1/{LONG}", {}),
    ("GET", f"{ITEM}/{'u' * 1100}/user_features", {}),
    ("GET", f"{ITEM}/user%01/user_features", {}),
    ("GET", f"{ITEM}/user-1/user_features?max_age_seconds=0", {}),
    ("GET", f"{ITEM}/user-1/user_features?max_age_seconds=nan", {}),
    ("GET", f"{ITEM}/user-1/user_features?max_age_seconds=abc", {}),
    ("GET", f"{ITEM}/user-1/user_features?max_age_seconds=", {}),
    ("GET", f"{ITEM}/user-1/{LONG}?max_age_seconds=-1&entity_type={LONG}", {}),
    ("GET", f"{ITEM}/user-1/user_features?entity_type=account_id", {}),
    ("GET", f"{ITEM}/user-1/user_features?table_type=bright_uid", {}),
    ("GET", f"{ITEM}/user-1/user_features?entity_typ=bright_uid", {}),
    ("POST", "/api/v1/get/items", {"json": read_body("user-1", "user_features:*", "credit_features:x")}),
    ("POST", "/api/v1/get/items", {"json": read_body("nobody", "user_features:*")}),
    ("POST", "/api/v1/get/items", {"json": {"data": {}}}),
    (
        "POST",
        "/api/v1/get/items",
        {"content": b'{"data": {"entity_value": "u", "feature_list": [1e999999]}}', "headers": JSON},
    ),
    (
        "POST",
        "/api/v1/get/items/batch",
        {"json": {"data": {"entity_values": ["user-1", "nobody"], "feature_list": ["user_features:*"]}}},
    ),
    ("POST", f"{ITEM}/user-1", {"json": {"user_features": [], "credit_features": ["x"]}}),
    ("POST", f"{ITEM}/user-1?max_age_seconds=-5", {"json": {"user_features": []}}),
    ("GET", "/api/v1/limits", {}),
    ("GET", "/api/v1/health", {}),
    ("GET", "/api/v1/live", {}),
    ("POST", "/api/v1/warmup", {}),
    ("GET", "/api/v1/admin/dead-letters?limit=0", {}),
    ("GET", "/api/v1/admin/dead-letters?limit=5&cursor=nonsense", {}),
    ("GET", "/api/v1/admin/dead-letters", {}),
    ("POST", "/api/v1/admin/dead-letters/redrive", {"json": {"all": True}}),
    ("POST", "/api/v1/admin/dead-letters/redrive", {"json": {}}),
]
VOLATILE = {"request_id", "age_seconds", "timestamp", "created_at", "updated_at", "duration_ms", "tables_available"}
"""What differs between any two requests, or names each app's own store."""
RELAY_PROGRESS = {
    "delivered",
    "pending",
    "batches",
    "publish_seconds_total",
    "last_publish_seconds",
    "oldest_pending_age_s",
}
"""What readiness says of each app's own event relay, which runs at its own pace."""
VOLATILE_HEADERS = {"x-request-id", "date", "content-length"}


def without_volatile(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: without_volatile(item) for key, item in value.items() if key not in VOLATILE | RELAY_PROGRESS}
    if isinstance(value, list):
        return [without_volatile(item) for item in value]
    return value


def comparable(response: Any) -> tuple[int, dict[str, str], Any]:
    """Status, headers and body, but what differs between any two requests."""
    headers = {name: value for name, value in response.headers.items() if name not in VOLATILE_HEADERS}
    body = response.json() if "json" in response.headers.get("content-type", "") else response.content
    return response.status_code, headers, without_volatile(body)


def key_for(method: str, path: str, api_keys: dict[str, str]) -> dict[str, str]:
    if "/admin/" in path or path.endswith("/warmup") or method == "DELETE":
        return {"X-API-Key": api_keys["operator"]}
    if method == "POST" and path.startswith("/api/v1/items"):
        return {"X-API-Key": api_keys["writer"]}
    return {"X-API-Key": api_keys["reader"]}


def through_fastapis_handler(route: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    """A copy of `route` whose requests FastAPI's own handler serves, behind the same query check."""
    copied = copy.copy(route)
    with monkeypatch.context() as patch:
        patch.setattr(api.routing, "direct_handler", lambda dependant, **options: None)
        copied.app = request_response(copied.get_route_handler())
    return copied


@pytest.fixture
def apps(make_auth_client, monkeypatch: pytest.MonkeyPatch, tmp_path) -> tuple[AppClient, AppClient]:
    """Two apps, each on a store of its own: one as served, one whose routes all go through FastAPI's handler."""
    served = make_auth_client(sqlite_path=tmp_path / "served.db")
    through_fastapi = make_auth_client(sqlite_path=tmp_path / "through_fastapi.db")
    routes = through_fastapi.app.router.routes
    routes[:] = [
        through_fastapis_handler(route, monkeypatch) if isinstance(route, StrictQueryRoute) else route
        for route in routes
    ]
    assert sum(isinstance(route, StrictQueryRoute) for route in routes) >= 15
    return served, through_fastapi


@pytest.mark.parametrize("with_key", [True, False], ids=["with_key", "without_key"])
def test_answers_match_fastapis_own_handler(
    apps: tuple[AppClient, AppClient], api_keys: dict[str, str], with_key: bool
) -> None:
    served, through_fastapi = apps
    for method, path, arguments in REQUESTS:
        headers = {**arguments.get("headers", {}), **(key_for(method, path, api_keys) if with_key else {})}
        arguments = {**arguments, "headers": headers}
        answer = comparable(served.request(method, path, **arguments))
        assert answer == comparable(through_fastapi.request(method, path, **arguments)), (method, path)


def few_items(node: Any) -> None:
    """At most `GENERATED_ITEMS` items in every array of a document requests are generated from (or its
    minimum): a bulk write of hundreds of entities takes seconds to generate and shows the handler nothing
    that a few do not."""
    if isinstance(node, dict):
        if node.get("type") == "array":
            node["maxItems"] = max(node.get("minItems", 0), min(node.get("maxItems", GENERATED_ITEMS), GENERATED_ITEMS))
        for child in node.values():
            few_items(child)
    elif isinstance(node, list):
        for child in node:
            few_items(child)


def answered_alike(apps: tuple[AppClient, AppClient], operation: Any, mode: GenerationMode, keys: list[dict]) -> None:
    """Requests generated for one operation get the same answer from both apps, sent with each of `keys`."""
    served, through_fastapi = apps

    @given(case=operation.as_strategy(mode))
    @settings(max_examples=GENERATED_EXAMPLES, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    def run(case: schemathesis.Case) -> None:
        for key in keys:
            arguments = case.as_transport_kwargs(headers=key)
            # A header value HTTP clients cannot send is no request.
            assume(all(not isinstance(value, str) or value.isascii() for value in arguments["headers"].values()))
            request = {name: arguments[name] for name in TRANSPORT_ARGUMENTS if name in arguments}
            assert comparable(served.request(**request)) == comparable(through_fastapi.request(**request)), request

    run()


@pytest.mark.slow
@pytest.mark.parametrize("mode", [GenerationMode.POSITIVE, GenerationMode.NEGATIVE], ids=["valid", "invalid"])
def test_generated_requests_are_answered_as_fastapi_answers(
    apps: tuple[AppClient, AppClient], api_keys: dict[str, str], mode: GenerationMode
) -> None:
    """Requests generated from the app's own document, each sent without a key and with one: valid ones (with
    the configured names, so that they get past the service's rules to the store) and invalid ones."""
    document = copy.deepcopy(apps[0].app.openapi())
    few_items(document)
    if mode is GenerationMode.POSITIVE:
        configured = apps[0].app.state.runtime.settings
        names = {"category": ["user_features", "credit_features"], "entity_type": sorted(configured.entity_types)}
        narrow(document, {**names, "source": ["prediction_service"]})
    schema = schemathesis.openapi.from_dict(document)
    for path, methods in document["paths"].items():
        for method, described in methods.items():
            if mode is GenerationMode.NEGATIVE and not (described.get("parameters") or described.get("requestBody")):
                continue  # nothing to make invalid
            keys = [{}, key_for(method.upper(), path, api_keys)]
            answered_alike(apps, schema[path][method.upper()], mode, keys)


def dependant(endpoint: Any) -> Any:
    return get_dependant(path="/things/{name}", call=endpoint)


async def key_check(request: Request) -> str:
    return request.headers.get("x-api-key", "")


async def with_a_yield(request: Request) -> Any:
    yield request


def test_only_what_it_serves_is_given_to_it() -> None:
    async def served(request: Request, name: str, key: Annotated[str, Depends(key_check)], n: int = 1) -> Response:
        return Response(f"{name} {key} {n}")

    async def a_header(name: str, agent: Annotated[str | None, Header()] = None) -> Response:
        return Response(name)

    async def a_list_default(name: str, tag: Annotated[list[str], Query()] = []) -> Response:  # noqa: B006
        return Response(name)

    async def a_model(name: str) -> dict:
        return {"name": name}

    def not_a_coroutine(name: str) -> Response:
        return Response(name)

    async def a_generator_dependency(name: str, held: Annotated[Any, Depends(with_a_yield)]) -> Response:
        return Response(name)

    async def a_dependency_twice(
        name: str, key: Annotated[str, Depends(key_check)], again: Annotated[str, Depends(key_check)]
    ) -> Response:
        return Response(name)

    async def a_limited_dependency(name: str, key: Annotated[str, Depends(key_check, max_concurrency=1)]) -> Response:
        return Response(name)

    assert direct_handler(dependant(served)) is not None
    endpoints = (
        a_header,
        a_list_default,
        a_model,
        not_a_coroutine,
        a_generator_dependency,
        a_dependency_twice,
        a_limited_dependency,
    )
    for endpoint in endpoints:
        assert direct_handler(dependant(endpoint)) is None, endpoint.__name__


def test_the_read_route_is_served_directly_behind_its_key_check(make_auth_client) -> None:
    client = make_auth_client()
    (route,) = [
        route
        for route in client.app.router.routes
        if getattr(route, "path", "") == f"{ITEM}/{{entity_value}}/{{category}}"
    ]
    assert direct_handler(route.dependant) is not None
    assert any(
        getattr(dependency.call, "scope", None) == "features:read" for dependency in route.dependant.dependencies
    )
    assert client.get(f"{ITEM}/user-1/user_features").status_code == 401


def test_a_router_included_with_dependencies_is_served_behind_them() -> None:
    """FastAPI builds an included route's handler again for the inclusion, whose dependencies it adds."""

    async def refuse(request: Request) -> None:
        raise HTTPException(403, "refused by the inclusion")

    router = APIRouter(route_class=StrictQueryRoute)

    @router.get("/things/{name}")
    async def thing(name: str) -> Response:
        return Response(name)

    (route,) = router.routes
    assert isinstance(route, StrictQueryRoute) and direct_handler(route.dependant) is not None
    app = FastAPI()
    app.include_router(router, dependencies=[Depends(refuse)])
    with TestClient(app) as client:
        answer = client.get("/things/a")
    assert (answer.status_code, answer.json()) == (403, {"detail": "refused by the inclusion"})


async def overridden_key_check() -> str:
    return "overridden"


def served_by_fastapi() -> bool:
    """Whether a route built now is served by FastAPI's own handler, the one that applies dependency overrides."""
    router = APIRouter(route_class=StrictQueryRoute)

    @router.get("/things/{name}")
    async def thing(name: str, key: Annotated[str, Depends(key_check)]) -> Response:
        return Response(key)

    app = FastAPI()
    app.include_router(router)
    app.dependency_overrides[key_check] = overridden_key_check
    with TestClient(app) as client:
        return client.get("/things/a").text == "overridden"


def served_directly() -> bool:
    async def served(request: Request, name: str, key: Annotated[str, Depends(key_check)]) -> Response:
        return Response(name)

    return direct_handler(dependant(served)) is not None and not served_by_fastapi()


def test_the_installed_fastapi_is_a_verified_version() -> None:
    assert fastapi.__version__ in VERIFIED_FASTAPI_VERSIONS, (
        f"FastAPI {fastapi.__version__} is installed, but api/direct.py was verified against "
        f"{sorted(VERIFIED_FASTAPI_VERSIONS)}, so FastAPI's own handler serves every route. Re-verify it against "
        "this version's source, as the comment above VERIFIED_FASTAPI_VERSIONS lists: the private names it imports "
        "(fastapi._compat: ModelField, Undefined, field_annotation_is_sequence, get_missing_field_error; and "
        "fastapi.routing._effective_route_context_var in api/routing.py), Dependant's fields (DEPENDANT_FIELDS), "
        "and the behaviours it copies from get_request_handler and solve_dependencies (the body read, the errors, "
        "their order, defaults, dependencies called once); then add the version and run this module."
    )
    assert unavailable_reason() is None
    assert served_directly()


@pytest.mark.parametrize(
    "lose",
    [
        lambda patch: patch.setitem(sys.modules, "fastapi._compat", None),
        lambda patch: patch.setitem(sys.modules, "fastapi.dependencies.models", None),
        lambda patch: patch.delattr(fastapi._compat, "get_missing_field_error"),
    ],
    ids=["a module", "another module", "a name"],
)
def test_without_its_private_names_fastapi_serves_every_route(lose: Callable[[pytest.MonkeyPatch], None]) -> None:
    try:
        with pytest.MonkeyPatch.context() as patch:
            lose(patch)
            importlib.reload(api.direct)
        assert "cannot be imported" in str(unavailable_reason())
        assert served_by_fastapi() and not served_directly()
    finally:
        importlib.reload(api.direct)
    assert served_directly()


def test_under_an_unverified_version_fastapi_serves_every_route(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fastapi, "__version__", "0.166.0")
    assert unavailable_reason() == "FastAPI 0.166.0 is not a version it was verified against (0.165.0)"
    assert served_by_fastapi() and not served_directly()


@dataclasses.dataclass
class NewerDependant(Dependant):
    response_hint: Any = None


OlderDependant = dataclasses.make_dataclass(
    "Dependant", [field.name for field in dataclasses.fields(Dependant) if field.name != "concurrency"]
)


@pytest.mark.parametrize(
    ("dependant_class", "said"),
    [(NewerDependant, "does not know (response_hint)"), (OlderDependant, "lacks ones it reads (concurrency)")],
    ids=["a field it does not know", "without a field it reads"],
)
def test_with_other_dependant_fields_fastapi_serves_every_route(
    monkeypatch: pytest.MonkeyPatch, dependant_class: type, said: str
) -> None:
    monkeypatch.setattr(api.direct, "Dependant", dependant_class)
    assert said in str(unavailable_reason())
    assert served_by_fastapi() and not served_directly()


def test_one_line_at_start_says_which_handler_serves_the_routes(
    make_client, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.INFO, logger="feature_store.routing")
    make_client()
    monkeypatch.setattr(fastapi, "__version__", "0.166.0")
    make_client()
    lines = [
        (record.levelname, record.getMessage()) for record in caplog.records if record.name == "feature_store.routing"
    ]
    assert lines == [
        ("INFO", "request handler: api.direct serves the routes it can, FastAPI's own the others"),
        (
            "WARNING",
            "request handler: FastAPI's own serves every route, api.direct is off: "
            "FastAPI 0.166.0 is not a version it was verified against (0.165.0)",
        ),
    ]

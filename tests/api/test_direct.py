"""Routes served by `api.direct` answer exactly as FastAPI's own handler answers, and only the routes
it can serve are given to it."""

import copy
from typing import Annotated, Any

import pytest
from fastapi import APIRouter, Depends, FastAPI, Header, HTTPException, Query, Request
from fastapi.dependencies.utils import get_dependant
from fastapi.routing import request_response
from fastapi.testclient import TestClient
from starlette.responses import Response

import api.routing
from api.direct import direct_handler
from api.routing import StrictQueryRoute
from tests.conftest import AppClient
from tests.factories import NOW, read_body, write_body

pytestmark = pytest.mark.backends("sqlite")

ITEM = "/api/v1/get/item"
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


def without_volatile(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: without_volatile(item) for key, item in value.items() if key not in VOLATILE}
    if isinstance(value, list):
        return [without_volatile(item) for item in value]
    return value


def comparable(response: Any) -> tuple[int, str | None, Any]:
    return response.status_code, response.headers.get("content-type"), without_volatile(response.json())


def key_for(method: str, path: str, api_keys: dict[str, str]) -> dict[str, str]:
    if "/admin/" in path or path.endswith("/warmup"):
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

    assert direct_handler(dependant(served)) is not None
    endpoints = (a_header, a_list_default, a_model, not_a_coroutine, a_generator_dependency, a_dependency_twice)
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

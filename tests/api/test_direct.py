"""Routes served by `api.direct` answer exactly as FastAPI's own handler answers, and only the routes
it can serve are given to it."""

from collections.abc import Iterator
from typing import Annotated, Any

import pytest
from fastapi import Depends, Header, Query, Request
from fastapi.dependencies.utils import get_dependant
from starlette.responses import Response

import api.routing
from api.direct import direct_handler
from tests.conftest import AppClient
from tests.factories import NOW, write_body

pytestmark = pytest.mark.backends("sqlite")

ITEM = "/api/v1/get/item"
LONG = "x" * 129
REQUESTS = [
    f"{ITEM}/user-1/user_features",
    f"{ITEM}/user-1/user_features?max_age_seconds=3600&entity_type=bright_uid",
    f"{ITEM}/nobody/user_features",
    f"{ITEM}/user-1/unknown_category",
    f"{ITEM}/user-1/{LONG}",
    f"{ITEM}/{'u' * 1100}/user_features",
    f"{ITEM}/user%01/user_features",
    f"{ITEM}/user-1/user_features?max_age_seconds=0",
    f"{ITEM}/user-1/user_features?max_age_seconds=nan",
    f"{ITEM}/user-1/user_features?max_age_seconds=abc",
    f"{ITEM}/user-1/user_features?max_age_seconds=",
    f"{ITEM}/user-1/{LONG}?max_age_seconds=-1&entity_type={LONG}",
    f"{ITEM}/user-1/user_features?entity_type=account_id",
    f"{ITEM}/user-1/user_features?table_type=bright_uid",
    f"{ITEM}/user-1/user_features?entity_typ=bright_uid",
    "/api/v1/limits",
    "/api/v1/health",
    "/api/v1/live",
    "/api/v1/admin/dead-letters?limit=0",
    "/api/v1/admin/dead-letters?limit=5&cursor=nonsense",
    "/api/v1/admin/dead-letters",
]


VOLATILE = {"request_id", "age_seconds", "timestamp"}
"""What differs between any two requests."""


def without_volatile(value: Any) -> Any:
    if isinstance(value, dict):
        return {key: without_volatile(item) for key, item in value.items() if key not in VOLATILE}
    if isinstance(value, list):
        return [without_volatile(item) for item in value]
    return value


def comparable(response: Any) -> tuple[int, str | None, Any]:
    return response.status_code, response.headers.get("content-type"), without_volatile(response.json())


@pytest.fixture
def apps(make_auth_client, monkeypatch: pytest.MonkeyPatch) -> Iterator[tuple[AppClient, AppClient]]:
    """Two apps on one store: one as served, one whose routes all go through FastAPI's handler."""
    built: list[Any] = []

    def recorded(dependant: Any) -> None:
        built.append(dependant)

    with monkeypatch.context() as patch:
        patch.setattr(api.routing, "direct_handler", recorded)
        through_fastapi = make_auth_client()
        through_fastapi.get("/nowhere")  # FastAPI builds an app's routes on its first request
    assert built, "the comparison app was built without the direct handler"
    built.clear()
    served = make_auth_client()
    served.get("/nowhere")
    yield served, through_fastapi
    assert not built


@pytest.mark.parametrize("with_key", [True, False], ids=["with_key", "without_key"])
def test_answers_match_fastapis_own_handler(
    apps: tuple[AppClient, AppClient], api_keys: dict[str, str], with_key: bool
) -> None:
    served, through_fastapi = apps
    admin = {"X-API-Key": api_keys["operator"]}
    body = write_body("user-1", event_time=NOW)
    assert served.post("/api/v1/items", json=body, headers={"X-API-Key": api_keys["writer"]}).status_code == 200
    for path in REQUESTS:
        headers = (admin if "/admin/" in path else {"X-API-Key": api_keys["reader"]}) if with_key else {}
        assert comparable(served.get(path, headers=headers)) == comparable(
            through_fastapi.get(path, headers=headers)
        ), path


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

    assert direct_handler(dependant(served)) is not None
    for endpoint in (a_header, a_list_default, a_model, not_a_coroutine, a_generator_dependency):
        assert direct_handler(dependant(endpoint)) is None, endpoint.__name__


def test_the_read_route_is_served_directly_behind_its_key_check(make_auth_client, monkeypatch) -> None:
    """The dependencies an app adds when it includes a router (the read scope's key check) are part of
    the route it serves."""
    seen: dict[str, Any] = {}

    def recording(dependant: Any) -> Any:
        handler = direct_handler(dependant)
        seen[dependant.path] = (handler is not None, [d.call for d in dependant.dependencies])
        return handler

    monkeypatch.setattr(api.routing, "direct_handler", recording)
    client = make_auth_client()
    assert client.get(f"{ITEM}/user-1/user_features").status_code == 401
    served, dependencies = seen["/api/v1/get/item/{entity_value}/{category}"]
    assert served
    assert any(getattr(call, "scope", None) == "features:read" for call in dependencies)

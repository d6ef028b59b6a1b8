"""Every operation refuses query parameters it does not declare, and a single-valued one given twice."""

import re

import pytest
from fastapi.testclient import TestClient

from api.routing import MAX_REPORTED, StrictQueryRoute, query_names
from api.v1 import earlier, registry, routes
from main import create_app
from tests.conftest import AppClient

pytestmark = pytest.mark.backends("sqlite")

ROUTERS = (routes.reads, routes.writes, routes.probes, earlier.reads, earlier.writes, registry.router)
ROUTES = [route for router in ROUTERS for route in router.routes if isinstance(route, StrictQueryRoute)]
OPERATIONS = [(method, route) for route in ROUTES for method in route.methods or ()]
BODIES = {
    "/api/v1/get/items": {"data": {"entity_value": "u", "feature_list": ["user_features:*"]}},
    "/api/v1/get/items/batch": {"data": {"entity_values": ["u"], "feature_list": ["user_features:*"]}},
    "/api/v1/items": {
        "meta": {"source": "prediction_service"},
        "data": {"entity_value": "u", "category": "user_features", "features": {"a": 1}},
    },
    "/api/v1/items/batch": {
        "meta": {"source": "prediction_service"},
        "data": {
            "entities": [{"entity_value": "u", "feature_list": [{"category": "user_features", "features": {"a": 1}}]}]
        },
    },
    "/api/v1/get/item/{entity_value}": {"user_features": []},
    "/api/v1/items/{entity_value}": {"user_features": {"a": 1}},
}


def url(route: StrictQueryRoute) -> str:
    return re.sub(r"\{entity_value\}", "u", route.path).replace("{category}", "user_features")


def test_every_api_route_is_strict(backend) -> None:
    assert ROUTES
    assert len(ROUTES) == sum(len(router.routes) for router in ROUTERS)


@pytest.mark.parametrize(("method", "route"), OPERATIONS, ids=[f"{m} {r.path}" for m, r in OPERATIONS])
def test_unknown_query_parameters_are_422_naming_them(client: AppClient, method: str, route, backend) -> None:
    body = BODIES.get(route.path)
    response = client.request(method, url(route) + "?zeta=1&alpha=2", json=body)
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["error"] == "validation_error"
    assert answer["request_id"] == response.headers["x-request-id"]
    assert [error["loc"] for error in answer["detail"]] == [["query", "alpha"], ["query", "zeta"]]
    assert all(error["type"] == "extra_forbidden" for error in answer["detail"])
    assert client.run(client.app.state.runtime.store.outbox_stats).pending == 0, "a refused request wrote"
    assert client.request(method, url(route), json=body).status_code != 422


def test_the_message_lists_what_the_operation_accepts(client: TestClient, backend) -> None:
    detail = client.get("/api/v1/get/item/u/user_features?entity=account_id").json()["detail"]
    assert detail == [
        {
            "type": "extra_forbidden",
            "loc": ["query", "entity"],
            "msg": "unknown query parameter; this operation accepts: as_of, entity_type, max_age_seconds, table_type",
        }
    ]


def test_a_repeated_single_valued_parameter_is_422(client: TestClient, backend) -> None:
    response = client.get("/api/v1/get/item/u/user_features?entity_type=account_id&entity_type=bright_uid")
    assert response.status_code == 422
    assert response.json()["detail"] == [
        {"type": "repeated_parameter", "loc": ["query", "entity_type"], "msg": "given more than once; send one value"}
    ]


def test_a_flood_of_unknown_parameters_gives_a_bounded_answer(client: TestClient, backend) -> None:
    query = "&".join(f"p{index}=1" for index in range(500))
    detail = client.get(f"/api/v1/health?{query}").json()["detail"]
    assert len(detail) == MAX_REPORTED + 1
    assert detail[-1]["msg"] == f"and {500 - MAX_REPORTED} more"


def test_blank_and_odd_names_are_refused_too(client: TestClient, backend) -> None:
    for query in ("=x", "entity_type%00=account_id", "ENTITY_TYPE=account_id", "entity_type[]=account_id"):
        assert client.get(f"/api/v1/get/item/u/user_features?{query}").status_code == 422, query


def test_the_docs_pages_ignore_query_strings(client: TestClient, backend) -> None:
    for path in ("/docs?x=1", "/redoc?x=1", "/openapi.json?x=1"):
        assert client.get(path).status_code == 200, path


def test_documented_query_parameters_are_the_enforced_ones(make_settings, api_keys, tmp_path, backend) -> None:
    """OpenAPI is generated from each operation as included in the app (with its include-time dependencies);
    the enforced set comes from the route alone: they must agree, and every operation documents the 422.
    An alias is not a parameter of its own (a request giving both it and its name, differently, is refused,
    which no parameter list can say): the description of the parameter it stands for names it."""
    for keys in ({}, {"auth_enabled": True, "api_keys_file": str(tmp_path / "keys.json")}):
        document = create_app(make_settings(**keys)).openapi()
        for method, route in OPERATIONS:
            operation = document["paths"][route.path][method.lower()]
            parameters = {param["name"]: param for param in operation.get("parameters", ()) if param["in"] == "query"}
            names = query_names(route.dependant)
            assert parameters.keys() == names.declared, (method, route.path)
            for alias, name in names.aliases.items():
                assert f"`{alias}`" in parameters[name]["description"], (method, route.path, alias)
            assert operation["responses"]["422"]["content"]["application/json"]["schema"] == {
                "$ref": "#/components/schemas/ErrorResponse"
            }


def test_the_alias_is_renamed_with_its_value_intact(client: TestClient, backend) -> None:
    response = client.get("/api/v1/get/item/u/user_features?table_type=m%C3%A9+x%2By%26z")
    assert response.status_code == 422
    assert "'mé x+y&z'" in response.json()["detail"][0]["msg"]
    assert client.get("/api/v1/get/item/u/user_features?table_type=account_id&table_type=account_id").json()[
        "detail"
    ] == [{"type": "repeated_parameter", "loc": ["query", "table_type"], "msg": "given more than once; send one value"}]


def test_operations_without_entity_type_do_not_take_the_alias(client: TestClient, backend) -> None:
    response = client.post("/api/v1/get/items?table_type=account_id", json=BODIES["/api/v1/get/items"])
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["query", "table_type"]


def test_a_405_allows_every_method_of_the_path(client: TestClient, backend) -> None:
    """`/items/{entity_value}` has routes in two routers (the earlier write, the deletion): `Allow` names both,
    as OpenAPI does; `/items/batch`, which the same pattern would match, names its own."""
    assert client.request("OPTIONS", "/api/v1/items/u1").headers["Allow"] == "DELETE, POST"
    assert client.request("PUT", "/api/v1/items/batch").headers["Allow"] == "POST"
    assert client.request("PATCH", "/api/v1/get/item/u/user_features").headers["Allow"] == "GET"

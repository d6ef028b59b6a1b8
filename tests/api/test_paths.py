"""Path parameters come from the raw request target: every value a write accepts is read and erased by its
percent-encoded path, and bytes that are not UTF-8 are refused, for every path parameter."""

from urllib.parse import quote

import pytest

from api.paths import PathTemplate
from api.routing import StrictQueryRoute
from tests.api.test_routing import BODIES, ROUTES
from tests.conftest import AppClient

pytestmark = pytest.mark.backends("sqlite")

WRITER = {"source": "prediction_service"}
VALUES = ["a/b", "/", "a%2Fb", "100%", "q?x", "h#1", "sp ace", "tab\u00a0nbsp", "ünï/码", "😀", ".", "..", "a\\b"]


def encoded(value: str) -> str:
    segment = quote(value, safe="")
    return segment.replace(".", "%2E") if not segment.strip(".") else segment


@pytest.mark.parametrize("value", VALUES)
def test_every_written_value_is_read_and_erased_by_its_encoded_path(client: AppClient, value: str) -> None:
    body = {"meta": WRITER, "data": {"entity_value": value, "category": "user_features", "features": {"a": 1}}}
    assert client.post("/api/v1/items", json=body).status_code == 200
    path = encoded(value)

    read = client.get(f"/api/v1/get/item/{path}/user_features")
    assert read.status_code == 200 and read.json()["bright_uid"] == value
    earlier = client.post(f"/api/v1/get/item/{path}", json={"user_features": []})
    assert earlier.status_code == 200, earlier.text

    deleted = client.delete(f"/api/v1/items/{path}")
    assert deleted.status_code == 200 and deleted.json()["categories_deleted"] == ["user_features"]
    assert client.get(f"/api/v1/get/item/{path}/user_features").status_code == 404


def test_an_encoded_slash_does_not_reach_another_route(client: AppClient) -> None:
    """`items%2Fbatch` is one segment: not the bulk write's path."""
    assert client.post("/api/v1/items%2Fbatch", json={}).status_code == 404
    assert client.get("/api/v1/get/item/a%2Fb").status_code == 405


def path_routes() -> list[tuple[str, StrictQueryRoute]]:
    return [(method, route) for route in ROUTES if route.param_convertors for method in route.methods or ()]


@pytest.mark.parametrize(("method", "route"), path_routes(), ids=lambda item: getattr(item, "path", item))
def test_a_parameter_that_is_not_utf8_is_a_422_naming_it(client: AppClient, method: str, route) -> None:
    for name in route.param_convertors:
        url = route.path
        for other in route.param_convertors:
            url = url.replace(f"{{{other}}}", "h%FFy" if other == name else "u")
        answer = client.request(method, url, json=BODIES.get(route.path))
        assert answer.status_code == 422, (url, answer.text)
        assert answer.json()["error"] == "validation_error"
        assert [error["loc"] for error in answer.json()["detail"]] == [["path", name]]


def test_the_replacement_character_itself_is_a_value_like_any_other(client: AppClient) -> None:
    value = "h\ufffdy"
    body = {"meta": WRITER, "data": {"entity_value": value, "category": "user_features", "features": {"a": 1}}}
    assert client.post("/api/v1/items", json=body).status_code == 200
    assert client.delete("/api/v1/items/h%FFy").status_code == 422
    assert client.get(f"/api/v1/get/item/{quote(value)}/user_features").status_code == 200


def test_a_template_splits_on_literal_slashes_only() -> None:
    template = PathTemplate.of("/api/v1/get/item/{entity_value}/{category}")
    assert template is not None
    assert template.match(b"/api/v1/get/item/a%2Fb/c") == ({"entity_value": "a/b", "category": "c"}, [])
    assert template.match(b"/api/v1/get/item/a/b/c") is None
    assert template.match(b"/api/v1/get/item//c") is None
    assert template.match(b"/api/v1/get/it%65m/x/c") == ({"entity_value": "x", "category": "c"}, [])
    assert PathTemplate.of("/files/{name}.json") is None

"""`GET /inspect/{entity_value}`: every category of an entity in its state, on every backend, including
what a read does not serve (stale, expired, erased), on the app's clock."""

from pathlib import Path

import pytest

from tests.conftest import AppClient
from tests.factories import CLOCK_START, write_body

REGISTRY = """
categories:
  user_features:
    entity_types: [bright_uid]
    max_age_seconds: 60
  credit_features: {}
  trans_features: {}
  account_features:
    entity_types: [account_id]
"""


@pytest.fixture
def client(make_client, tmp_path: Path) -> AppClient:
    path = tmp_path / "registry.yaml"
    path.write_text(REGISTRY)
    return make_client(feature_registry_file=str(path))


def write(client: AppClient, categories: dict, **meta) -> None:
    body = write_body("u1", categories, event_time=CLOCK_START.isoformat(), **meta)
    assert client.post("/api/v1/items", json=body).status_code == 200


def inspect(client: AppClient, entity_type: str = "bright_uid") -> dict:
    response = client.get("/api/v1/inspect/u1", params={"entity_type": entity_type})
    assert response.status_code == 200, response.text
    return response.json()["categories"]


def test_each_category_of_the_entity_type_is_in_its_state(client: AppClient, clock) -> None:
    write(client, {"user_features": {"age": 30}})
    write(client, {"credit_features": {"credit_score": 700}}, ttl=10)
    assert client.delete("/api/v1/items/u1", params={"category": "trans_features"}).status_code == 200
    write(client, {"trans_features": {"amount": 1}}, ttl=1000)
    assert client.delete("/api/v1/items/u1", params={"category": "trans_features"}).status_code == 200

    categories = inspect(client)
    assert sorted(categories) == ["credit_features", "trans_features", "user_features"]
    assert categories["user_features"]["state"] == "fresh"
    assert categories["user_features"]["data"] == {"age": 30}
    assert categories["user_features"]["max_age_seconds"] == 60
    assert categories["user_features"]["metadata"]["age_seconds"] == 0
    assert categories["credit_features"]["state"] == "fresh"
    assert categories["trans_features"]["state"] == "erased"
    assert categories["trans_features"]["data"] == {}
    assert "deleted_at" in categories["trans_features"]["metadata"]

    clock.now += 61
    categories = inspect(client)
    assert categories["user_features"]["state"] == "stale"
    assert categories["credit_features"]["state"] == "expired"
    assert categories["credit_features"]["data"] == {"credit_score": 700}


def test_an_unknown_entity_has_every_category_absent(client: AppClient) -> None:
    categories = inspect(client, "account_id")
    assert categories == {
        name: {"state": "absent", "max_age_seconds": None, "data": None, "metadata": None}
        for name in ("account_features", "credit_features", "trans_features")
    }


def test_without_a_registry_file_the_categories_are_those_stored(make_client) -> None:
    client = make_client()
    assert client.get("/api/v1/inspect/u1").json() == {
        "entity_type": "bright_uid",
        "entity_value": "u1",
        "listed": "store",
        "categories": {},
    }
    write(client, {"user_features": {"age": 30}, "credit_features": {"credit_score": 700}})
    assert client.delete("/api/v1/items/u1", params={"category": "credit_features"}).status_code == 200
    categories = inspect(client)
    assert sorted(categories) == ["credit_features", "user_features"], "stored categories only, not every allowed one"
    assert (categories["user_features"]["state"], categories["credit_features"]["state"]) == ("fresh", "erased")
    assert categories["user_features"]["max_age_seconds"] is None
    assert inspect(client, "account_id") == {}


def test_with_a_registry_file_the_categories_are_those_declared(client: AppClient) -> None:
    assert client.get("/api/v1/inspect/u1").json()["listed"] == "registry"


def test_an_unknown_entity_type_is_refused(client: AppClient) -> None:
    response = client.get("/api/v1/inspect/u1", params={"entity_type": "nope"})
    assert response.status_code == 422


def test_it_needs_the_read_scope(make_auth_client, api_keys: dict[str, str]) -> None:
    client = make_auth_client()
    assert client.get("/api/v1/inspect/u1").status_code == 401
    assert client.get("/api/v1/inspect/u1", headers={"X-API-Key": api_keys["operator"]}).status_code == 403
    assert client.get("/api/v1/inspect/u1", headers={"X-API-Key": api_keys["reader"]}).status_code == 200

"""`Idempotency-Key` on the writes: a request sent again with its key answers its first result and applies
nothing again; the key with another request is a 409 `idempotency_conflict`."""

from typing import Any

import pytest

from tests.conftest import AppClient
from tests.factories import write_body

KEY = {"Idempotency-Key": "0d6b5c1e-2f7a-4e0b-9a51-6f3c2d1e0b7a"}


def version(client: AppClient, value: str, category: str = "user_features") -> Any:
    return client.get(f"/api/v1/get/item/{value}/{category}").json()["features"]["metadata"]["version"]


def test_a_write_sent_again_answers_its_first_result_and_applies_nothing(client: AppClient, clock) -> None:
    first = client.post("/api/v1/items", json=write_body("u1"), headers=KEY)
    assert first.status_code == 200, first.text
    clock.now += 5
    again = client.post("/api/v1/items", json=write_body("u1"), headers=KEY)
    assert (again.status_code, again.json()) == (200, first.json()), "the first answer, its timestamp too"
    assert version(client, "u1") == 1
    fresh = client.post("/api/v1/items", json=write_body("u1"), headers={"Idempotency-Key": "another"})
    assert fresh.status_code == 200 and version(client, "u1") == 2


def test_the_key_with_another_request_is_a_409(client: AppClient) -> None:
    assert client.post("/api/v1/items", json=write_body("u1"), headers=KEY).status_code == 200
    other = client.post("/api/v1/items", json=write_body("u1", {"user_features": {"age": 31}}), headers=KEY)
    assert (other.status_code, other.json()["error"]) == (409, "idempotency_conflict")
    assert client.get("/api/v1/get/item/u1/user_features").json()["features"]["data"]["age"] == 30
    assert client.delete("/api/v1/items/u1", params={"category": "user_features"}, headers=KEY).status_code == 409


def test_keys_of_two_callers_never_meet(client: AppClient) -> None:
    """Without API keys every caller is anonymous; the key alone decides (see the keys' own suite)."""
    assert client.post("/api/v1/items", json=write_body("u1"), headers=KEY).status_code == 200
    assert client.post("/api/v1/items", json=write_body("u2"), headers=KEY).status_code == 409


def test_a_deletion_sent_again_answers_what_it_deleted(client: AppClient, write) -> None:
    write("u1")
    first = client.delete("/api/v1/items/u1", params={"category": "user_features"}, headers=KEY)
    assert first.json()["categories_deleted"] == ["user_features"]
    again = client.delete("/api/v1/items/u1", params={"category": "user_features"}, headers=KEY)
    assert again.json() == first.json()
    plain = client.delete("/api/v1/items/u1", params={"category": "user_features"})
    assert plain.json()["categories_deleted"] == []


def test_a_bulk_write_sent_again_applies_nothing_twice(client: AppClient) -> None:
    body = {
        "meta": {"source": "prediction_service"},
        "data": {
            "entity_type": "bright_uid",
            "entities": [
                {"entity_value": value, "feature_list": [{"category": "user_features", "features": {"age": 1}}]}
                for value in ("b1", "b2")
            ],
        },
    }
    first = client.post("/api/v1/items/batch", json=body, headers=KEY)
    assert first.status_code == 200 and first.json()["written"] == 2
    again = client.post("/api/v1/items/batch", json=body, headers=KEY)
    assert again.json() == first.json()
    assert (version(client, "b1"), version(client, "b2")) == (1, 1)


@pytest.mark.parametrize("key", ["", "x" * 256, "tab\there"])
def test_a_malformed_key_is_a_422(client: AppClient, key: str) -> None:
    response = client.post("/api/v1/items", json=write_body("u1"), headers={"Idempotency-Key": key})
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["header", "Idempotency-Key"]

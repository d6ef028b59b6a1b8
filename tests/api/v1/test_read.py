"""Reads: one category, many features across categories, many entities; freshness and ordering."""

import pytest
from fastapi.testclient import TestClient

from tests.factories import read_body, write_body


def get_items(client: TestClient, entity_value: str, *feature_list: str, **kwargs):
    return client.post("/api/v1/get/items", json=read_body(entity_value, *feature_list, **kwargs))


def test_read_one_category_seed_shape(client: TestClient, write) -> None:
    write(categories={"user_features": {"age": 30, "income": 60000, "city": "SF"}})
    response = client.get("/api/v1/get/item/user-123/user_features?entity_type=bright_uid")
    assert response.status_code == 200
    body = response.json()
    assert list(body) == ["bright_uid", "category", "features"]
    assert body["bright_uid"] == "user-123"
    assert body["category"] == "user_features"
    assert body["features"]["data"] == {"age": 30, "income": 60000, "city": "SF"}
    assert set(body["features"]["metadata"]) >= {"created_at", "updated_at", "source", "compute_id", "ttl"}


def test_entity_type_defaults_to_bright_uid(client: TestClient, write) -> None:
    write(categories={"user_features": {"age": 30}})
    assert client.get("/api/v1/get/item/user-123/user_features").status_code == 200


def test_read_absent_is_404(client: TestClient) -> None:
    response = client.get("/api/v1/get/item/nobody/user_features")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"


@pytest.mark.parametrize(
    "path", ["/api/v1/get/item/u/unknown_category", "/api/v1/get/item/u/user_features?entity_type=merchant"]
)
def test_read_bad_category_or_entity_type_is_422(client: TestClient, path: str) -> None:
    response = client.get(path)
    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"


def test_get_items_seed_example(client: TestClient, write) -> None:
    write(categories={"user_features": {"age": 30, "income": 60000, "city": "SF"}})
    write(categories={"transaction_features": {"total_transactions": 150, "avg_transaction_value": 250.5}})
    response = get_items(client, "user-123", "user_features:age", "user_features:income", "transaction_features:*")
    assert response.status_code == 200
    body = response.json()
    assert body["entity_value"] == "user-123"
    assert body["entity_type"] == "bright_uid"
    assert body["items"]["user_features"]["features"]["data"] == {"age": 30, "income": 60000}
    assert body["items"]["transaction_features"]["features"]["data"] == {
        "total_transactions": 150,
        "avg_transaction_value": 250.5,
    }
    assert body["items"]["user_features"]["features"]["metadata"]["compute_id"] == "compute-123"
    assert body["unavailable_feature_categories"] == []
    assert body["unavailable_features"] == []


def test_get_items_accepts_metadata_spelling(client: TestClient, write) -> None:
    write(categories={"user_features": {"age": 30}})
    body = read_body("user-123", "user_features:*")
    body["metadata"] = body.pop("meta")
    assert client.post("/api/v1/get/items", json=body).status_code == 200


def test_unavailable_categories_sorted_unique(client: TestClient, write) -> None:
    write(categories={"user_features": {"age": 30}})
    response = get_items(
        client,
        "user-123",
        "zzz_unknown:a",
        "user_features:age",
        "credit_features:*",
        "zzz_unknown:b",
        "aaa:*",
        "credit_features:x",
    )
    body = response.json()
    assert response.status_code == 200
    assert body["unavailable_feature_categories"] == ["aaa", "credit_features", "zzz_unknown"]
    assert list(body["items"]) == ["user_features"]


def test_missing_features_of_present_category(client: TestClient, write) -> None:
    write(categories={"user_features": {"age": 30}})
    body = get_items(client, "user-123", "user_features:zeta", "user_features:age", "user_features:alpha").json()
    assert body["items"]["user_features"]["features"]["data"] == {"age": 30}
    assert body["unavailable_features"] == ["user_features:alpha", "user_features:zeta"]


def test_named_features_picked_out_and_missing_ones_reported(client: TestClient, write) -> None:
    write(categories={"user_features": {"age": 30, "city": "SF", "score": 0.5}})
    body = get_items(client, "user-123", "user_features:age", "user_features:zeta", "user_features:score").json()
    assert body["items"]["user_features"]["features"]["data"] == {"age": 30, "score": 0.5}
    assert body["unavailable_features"] == ["user_features:zeta"]
    every = get_items(client, "user-123", "user_features:age", "user_features:city", "user_features:score").json()
    assert every["items"]["user_features"]["features"]["data"] == {"age": 30, "city": "SF", "score": 0.5}
    assert every["unavailable_features"] == []


def test_wildcard_wins_over_named_features(client: TestClient, write) -> None:
    write(categories={"user_features": {"age": 30, "city": "SF"}})
    body = get_items(client, "user-123", "user_features:age", "user_features:*").json()
    assert body["items"]["user_features"]["features"]["data"] == {"age": 30, "city": "SF"}


@pytest.mark.parametrize("entry", ["user_features", ":age", "user_features:", "user features:age", "a:b:c"])
def test_malformed_feature_entries_are_422(client: TestClient, entry: str) -> None:
    response = get_items(client, "user-123", entry)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "data", "feature_list", 0]


def test_feature_list_limit(make_client) -> None:
    client = make_client(max_feature_list=3)
    assert get_items(client, "u", *[f"user_features:f{i}" for i in range(3)]).status_code == 200
    response = get_items(client, "u", *[f"user_features:f{i}" for i in range(4)])
    assert response.status_code == 422
    assert "limit is 3" in response.json()["detail"][0]["msg"]


def test_default_feature_list_limit_is_1000(client: TestClient) -> None:
    assert get_items(client, "u", *[f"user_features:f{i}" for i in range(1000)]).status_code == 200
    assert get_items(client, "u", *[f"user_features:f{i}" for i in range(1001)]).status_code == 422


def test_empty_feature_list_is_422(client: TestClient) -> None:
    assert get_items(client, "u").status_code == 422


def test_batch_read_in_request_order(client: TestClient, write) -> None:
    write("user-1", categories={"user_features": {"age": 1}, "credit_features": {"score": 10}})
    write("user-2", categories={"user_features": {"age": 2}})
    body = {
        "meta": {"source": "ranker"},
        "data": {
            "entity_type": "bright_uid",
            "entity_values": ["user-2", "nobody", "user-1"],
            "feature_list": ["user_features:age", "credit_features:*"],
        },
    }
    response = client.post("/api/v1/get/items/batch", json=body)
    assert response.status_code == 200
    answer = response.json()
    assert answer["entity_type"] == "bright_uid"
    assert [result["entity_value"] for result in answer["results"]] == ["user-2", "nobody", "user-1"]
    user2, nobody, user1 = answer["results"]
    assert user2["items"]["user_features"]["features"]["data"] == {"age": 2}
    assert user2["unavailable_feature_categories"] == ["credit_features"]
    assert nobody["items"] == {}
    assert nobody["unavailable_feature_categories"] == ["credit_features", "user_features"]
    assert user1["items"]["credit_features"]["features"]["data"] == {"score": 10}
    assert user1["unavailable_feature_categories"] == []
    assert user1["error"] is None


def test_batch_entity_limit(make_client) -> None:
    client = make_client(max_batch_entities=2)
    body = {"data": {"entity_values": ["a", "b", "c"], "feature_list": ["user_features:*"]}}
    response = client.post("/api/v1/get/items/batch", json=body)
    assert response.status_code == 422
    assert "limit is 2" in response.json()["detail"][0]["msg"]


def test_ttl_expiry_reads_as_missing(client: TestClient, write, clock) -> None:
    write(categories={"user_features": {"age": 30}}, ttl=1)
    metadata = client.get("/api/v1/get/item/user-123/user_features").json()["features"]["metadata"]
    assert metadata["ttl"] == 1
    assert metadata["expires_at"] > metadata["updated_at"]
    clock.now += 1
    assert client.get("/api/v1/get/item/user-123/user_features").status_code == 404
    body = get_items(client, "user-123", "user_features:*").json()
    assert body["unavailable_feature_categories"] == ["user_features"]
    write(categories={"user_features": {"age": 31}})
    assert client.get("/api/v1/get/item/user-123/user_features").json()["features"]["metadata"]["ttl"] is None


def test_category_default_ttl(make_client) -> None:
    client = make_client(category_default_ttl_seconds={"user_features": 3600})
    client.post("/api/v1/items", json=write_body(categories={"user_features": {"a": 1}, "credit_features": {"b": 1}}))
    assert client.get("/api/v1/get/item/user-123/user_features").json()["features"]["metadata"]["ttl"] == 3600
    assert client.get("/api/v1/get/item/user-123/credit_features").json()["features"]["metadata"]["ttl"] is None


def test_event_time_orders_writes(client: TestClient) -> None:
    newer = write_body(categories={"user_features": {"v": 2}}, event_time="2026-01-02T00:00:00Z")
    older = write_body(
        categories={"user_features": {"v": 1}, "credit_features": {"v": 1}}, event_time="2026-01-01T00:00:00+00:00"
    )
    assert client.post("/api/v1/items", json=newer).json()["categories_updated"] == ["user_features"]
    answer = client.post("/api/v1/items", json=older).json()
    assert answer["categories_updated"] == ["credit_features"]
    assert answer["categories_skipped"] == ["user_features"]
    stored = client.get("/api/v1/get/item/user-123/user_features").json()["features"]
    assert stored["data"] == {"v": 2}
    assert stored["metadata"]["event_time"] == "2026-01-02T00:00:00.000000+00:00"
    again = client.post("/api/v1/items", json=newer).json()
    assert again["categories_updated"] == ["user_features"]

"""POST /api/v1/items: both request shapes, metadata rules, atomicity, type preservation."""

import re
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.factories import write_body


def read(client: TestClient, entity_value: str, category: str, entity_type: str = "bright_uid"):
    return client.get(f"/api/v1/get/item/{entity_value}/{category}", params={"entity_type": entity_type})


def test_multi_category_write(client: TestClient) -> None:
    body = write_body(categories={"user_features": {"age": 30}, "credit_features": {"credit_score": 750}})
    response = client.post("/api/v1/items", json=body)
    assert response.status_code == 200
    answer = response.json()
    assert answer["entity_value"] == "user-123"
    assert answer["entity_type"] == "bright_uid"
    assert answer["categories_updated"] == ["user_features", "credit_features"]
    assert answer["categories_skipped"] == []
    assert answer["timestamp"].endswith("+00:00") and len(answer["timestamp"]) == 32
    assert read(client, "user-123", "credit_features").json()["features"]["data"] == {"credit_score": 750}


def test_single_category_write_with_meta(client: TestClient) -> None:
    body = {
        "meta": {"source": "prediction_service", "compute_id": "job-123"},
        "data": {
            "entity_type": "bright_uid",
            "entity_value": "user-001",
            "category": "d0_unauth_features",
            "features": {"credit_score": 750, "verified": True},
        },
    }
    response = client.post("/api/v1/items", json=body)
    assert response.status_code == 200, response.text
    assert response.json()["categories_updated"] == ["d0_unauth_features"]
    stored = read(client, "user-001", "d0_unauth_features").json()
    assert stored["features"]["data"] == {"credit_score": 750, "verified": True}
    assert stored["features"]["metadata"]["compute_id"] == "job-123"


def test_categories_updated_keeps_request_order(client: TestClient) -> None:
    order = ["trans_features", "user_features", "credit_features"]
    body = write_body(categories={name: {"x": 1} for name in order})
    assert client.post("/api/v1/items", json=body).json()["categories_updated"] == order


def test_metadata_created_once_updated_each_write(client: TestClient, write) -> None:
    first = write(categories={"user_features": {"age": 30}})
    time.sleep(0.002)
    second = write(categories={"user_features": {"age": 31}}, compute_id="compute-456")
    metadata = read(client, "user-123", "user_features").json()["features"]["metadata"]
    assert metadata["created_at"] == first["timestamp"]
    assert metadata["updated_at"] == second["timestamp"]
    assert metadata["updated_at"] > metadata["created_at"]
    assert metadata["source"] == "prediction_service"
    assert metadata["compute_id"] == "compute-456"
    assert metadata["ttl"] is None


def test_data_is_replaced_as_a_whole(client: TestClient, write) -> None:
    write(categories={"user_features": {"age": 30, "city": "SF"}})
    write(categories={"user_features": {"income": 1}})
    assert read(client, "user-123", "user_features").json()["features"]["data"] == {"income": 1}


def test_other_categories_untouched(client: TestClient, write) -> None:
    write(categories={"user_features": {"age": 30}, "credit_features": {"score": 1}})
    write(categories={"user_features": {"age": 31}})
    assert read(client, "user-123", "credit_features").json()["features"]["data"] == {"score": 1}


def test_json_types_round_trip_exactly(client: TestClient, write, backend: str, expected_type) -> None:
    data: dict[str, Any] = {
        "int": 30,
        "float": 150.5,
        "float_integral": 1.0,
        "zero": 0,
        "negative_float": -0.25,
        "max_int64": 9223372036854775807,
        "min_int64": -9223372036854775808,
        "max_uint64": 18446744073709551615,
        "tiny": 1e-300,
        "true": True,
        "false": False,
        "null": None,
        "empty": "",
        "unicode": "naïve ☃ 日本",
        "list": [1, 2.5, "x", None, False, [], {}],
        "object": {"a": {"b": [1, {"c": None}]}},
    }
    write(categories={"user_features": data})
    response = read(client, "user-123", "user_features")
    returned = response.json()["features"]["data"]
    assert returned == data
    for key, value in data.items():
        assert type(returned[key]) is expected_type(value), key
    spelling = rb'"float_integral":1[,}]' if backend == "dynamodb" else rb'"float_integral":1\.0[,}]'
    assert re.search(spelling, response.content)


def test_entity_types_are_separate_tables(client: TestClient, write) -> None:
    write("acct-1", entity_type="account_id", categories={"user_features": {"a": 1}})
    answer = read(client, "acct-1", "user_features", entity_type="account_id")
    assert answer.status_code == 200
    assert answer.json()["account_id"] == "acct-1"
    assert "bright_uid" not in answer.json()
    assert read(client, "acct-1", "user_features").status_code == 404


def test_unknown_category_rejects_the_whole_write(client: TestClient) -> None:
    body = write_body(categories={"user_features": {"a": 1}, "made_up": {"b": 2}})
    response = client.post("/api/v1/items", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "data", "feature_list", 1, "category"]
    assert "made_up" in response.json()["detail"][0]["msg"]
    assert read(client, "user-123", "user_features").status_code == 404


def test_writer_not_allowed_is_403_and_writes_nothing(client: TestClient) -> None:
    response = client.post("/api/v1/items", json=write_body(source="api"))
    assert response.status_code == 403
    assert response.json()["error"] == "forbidden"
    assert read(client, "user-123", "user_features").status_code == 404


def test_allowed_writers_are_configurable(make_client) -> None:
    client = make_client(write_allowed_sources="batch_job,prediction_service")
    assert client.post("/api/v1/items", json=write_body(source="batch_job")).status_code == 200


def test_missing_source_is_422(client: TestClient) -> None:
    body = write_body()
    del body["metadata"]["source"]
    response = client.post("/api/v1/items", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "meta", "source"]


def test_malformed_request_is_422_before_authorisation(client: TestClient) -> None:
    body = write_body(source="intruder", categories={"not_allowed": {"a": 1}})
    assert client.post("/api/v1/items", json=body).status_code == 422


@pytest.mark.parametrize(
    "data",
    [
        {"entity_value": "u", "category": "user_features"},
        {"entity_value": "u", "features": {"a": 1}},
        {"entity_value": "u", "category": "user_features", "features": {"a": 1}, "feature_list": []},
        {"entity_value": "u", "feature_list": []},
        {"entity_value": "u", "category": "user_features", "features": {}},
        {"entity_value": "u", "category": "user_features", "features": {"bad name": 1}},
        {"entity_value": "u", "category": "user_features", "features": {"x" * 129: 1}},
        {"entity_value": "", "category": "user_features", "features": {"a": 1}},
        {"entity_value": "a\nb", "category": "user_features", "features": {"a": 1}},
        {"entity_value": "é" * 513, "category": "user_features", "features": {"a": 1}},
        {"entity_value": 5, "category": "user_features", "features": {"a": 1}},
        {"entity_value": "u", "category": "user_features", "features": {"a": 1}, "extra": 1},
        {"entity_type": "nobody", "entity_value": "u", "category": "user_features", "features": {"a": 1}},
        {"entity_value": "u", "feature_list": [{"category": "user_features", "features": {"a": 1}}] * 2},
        {"entity_value": "u", "category": "user_features", "features": {"a": 2**64}},
        {"entity_value": "u", "category": "user_features", "features": {"a": -(2**63) - 1}},
    ],
)
def test_invalid_writes_are_422(client: TestClient, data: dict) -> None:
    response = client.post("/api/v1/items", json={"meta": {"source": "prediction_service"}, "data": data})
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_error"
    assert isinstance(response.json()["detail"], list)


def test_entity_value_at_the_byte_limit_is_accepted(client: TestClient, write) -> None:
    write("é" * 512, categories={"user_features": {"a": 1}})


@pytest.mark.parametrize("literal", [b"NaN", b"Infinity", b"-Infinity", b"1e400"])
def test_nan_and_infinity_rejected(client: TestClient, literal: bytes) -> None:
    body = (
        b'{"meta": {"source": "prediction_service"}, "data": {"entity_value": "u", '
        b'"category": "user_features", "features": {"a": ' + literal + b"}}}"
    )
    response = client.post("/api/v1/items", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422, response.text
    assert read(client, "u", "user_features").status_code == 404


@pytest.mark.parametrize(
    "meta", [{"ttl": 0}, {"ttl": -5}, {"ttl": 1.5}, {"ttl": "60"}, {"ttl": True}, {"event_time": "yesterday"}]
)
def test_invalid_meta_is_422(client: TestClient, meta: dict) -> None:
    assert client.post("/api/v1/items", json=write_body(**meta)).status_code == 422


def test_limits_are_configurable(make_client) -> None:
    client = make_client(max_features_per_category=2, max_string_bytes=8, max_json_depth=2, max_categories_per_write=1)
    assert (
        client.post(
            "/api/v1/items", json=write_body(categories={"user_features": {"a": 1, "b": 2, "c": 3}})
        ).status_code
        == 422
    )
    assert (
        client.post("/api/v1/items", json=write_body(categories={"user_features": {"a": "x" * 9}})).status_code == 422
    )
    assert (
        client.post("/api/v1/items", json=write_body(categories={"user_features": {"a": [[[1]]]}})).status_code == 422
    )
    two = write_body(categories={"user_features": {"a": 1}, "credit_features": {"a": 1}})
    response = client.post("/api/v1/items", json=two)
    assert response.status_code == 422
    assert "at most 1 categories" in response.json()["detail"][0]["msg"]
    assert (
        client.post(
            "/api/v1/items", json=write_body(categories={"user_features": {"a": "x" * 8, "b": [[1]]}})
        ).status_code
        == 200
    )


def test_unpaired_surrogate_is_422_not_500(client: TestClient) -> None:
    body = (
        b'{"meta": {"source": "prediction_service"}, "data": {"entity_value": "u", '
        b'"category": "user_features", "features": {"a": "\\ud800"}}}'
    )
    response = client.post("/api/v1/items", content=body, headers={"content-type": "application/json"})
    assert response.status_code == 422

"""GET /api/v1/limits publishes the maxima the service enforces."""

import pytest

from tests.conftest import AppClient

pytestmark = pytest.mark.backends("sqlite")


def test_the_limits_are_the_settings(make_client) -> None:
    client: AppClient = make_client(max_batch_entities=7, max_feature_list=9, max_body_bytes=4096)
    response = client.get("/api/v1/limits")
    assert response.status_code == 200
    limits = response.json()
    assert (limits["max_batch_entities"], limits["max_feature_list"], limits["max_body_bytes"]) == (7, 9, 4096)
    assert limits["max_categories_per_write"] == client.app.state.runtime.settings.max_categories_per_write
    assert (limits["max_batch_write_entities"], limits["max_batch_write_body_bytes"]) == (500, 500 * 32 * 1024)


def test_the_event_time_bound_is_published(make_client) -> None:
    client: AppClient = make_client(max_event_time_ahead_seconds=60)
    assert client.get("/api/v1/limits").json()["max_event_time_ahead_seconds"] == 60


def test_a_batch_over_the_published_maximum_is_refused(make_client) -> None:
    client: AppClient = make_client(max_batch_entities=2)
    maximum = client.get("/api/v1/limits").json()["max_batch_entities"]
    body = {"data": {"entity_values": [f"u{n}" for n in range(maximum + 1)], "feature_list": ["user_features:*"]}}
    assert client.post("/api/v1/get/items/batch", json=body).status_code == 422
    body["data"]["entity_values"] = body["data"]["entity_values"][:maximum]
    assert client.post("/api/v1/get/items/batch", json=body).status_code == 200


def test_limits_need_the_read_scope_with_keys_on(make_auth_client, api_keys) -> None:
    client = make_auth_client()
    assert client.get("/api/v1/limits").status_code == 401
    assert client.get("/api/v1/limits", headers={"X-API-Key": api_keys["operator"]}).status_code == 403
    assert client.get("/api/v1/limits", headers={"X-API-Key": api_keys["reader"]}).status_code == 200


def test_the_bulk_write_maxima_are_published(make_client) -> None:
    client: AppClient = make_client(max_batch_write_entities=3, max_body_bytes=4096)
    limits = client.get("/api/v1/limits").json()
    assert limits["max_batch_write_entities"] == 3
    assert limits["max_batch_write_body_bytes"] == client.app.state.runtime.settings.max_batch_write_body_bytes
    entities = [
        {"entity_value": f"u{index}", "feature_list": [{"category": "user_features", "features": {"a": 1}}]}
        for index in range(4)
    ]
    meta = {"source": "prediction_service"}
    assert client.post("/api/v1/items/batch", json={"meta": meta, "data": {"entities": entities}}).status_code == 422
    three = {"meta": meta, "data": {"entities": entities[:3]}}
    assert client.post("/api/v1/items/batch", json=three).status_code == 200, (
        "the published maximum is the enforced one"
    )

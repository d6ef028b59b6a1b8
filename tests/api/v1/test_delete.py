"""DELETE /api/v1/items/{entity_value}: erasure of some or every category, `feature_deleted` events, and
the tombstone that keeps an older write from bringing the data back."""

from typing import Any

from fastapi.testclient import TestClient

from tests.components.events.kafka_helpers import consume
from tests.conftest import AppClient

T1 = "2026-01-01T00:00:00+00:00"
T2 = "2026-01-02T00:00:00+00:00"
T3 = "2026-01-03T00:00:00+00:00"


def read(client: TestClient, value: str, category: str) -> Any:
    return client.get(f"/api/v1/get/item/{value}/{category}")


def delete(client: TestClient, value: str, *categories: str, **params: Any) -> Any:
    return client.delete(f"/api/v1/items/{value}", params={"category": list(categories), **params})


def test_deleting_one_category_leaves_the_others(client: AppClient, write) -> None:
    write("u1", categories={"user_features": {"age": 30}, "credit_features": {"score": 1}})
    response = delete(client, "u1", "user_features")
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["entity_value"] == "u1" and answer["entity_type"] == "bright_uid"
    assert answer["categories_deleted"] == ["user_features"]
    assert answer["timestamp"].endswith("+00:00")
    assert read(client, "u1", "user_features").status_code == 404
    assert read(client, "u1", "credit_features").json()["features"]["data"] == {"score": 1}
    many = client.post(
        "/api/v1/get/items",
        json={"data": {"entity_value": "u1", "feature_list": ["user_features:*", "credit_features:*"]}},
    ).json()
    assert list(many["items"]) == ["credit_features"]
    assert many["unavailable_feature_categories"] == ["user_features"]


def test_deleting_every_category_and_again_is_idempotent(client: AppClient, write) -> None:
    write("u1", categories={"user_features": {"a": 1}, "credit_features": {"b": 1}, "trans_features": {"c": 1}})
    write("u2", categories={"user_features": {"a": 2}})
    first = delete(client, "u1").json()
    assert sorted(first["categories_deleted"]) == ["credit_features", "trans_features", "user_features"]
    for category in ("user_features", "credit_features", "trans_features"):
        assert read(client, "u1", category).status_code == 404
    again = delete(client, "u1")
    assert (again.status_code, again.json()["categories_deleted"]) == (200, [])
    assert delete(client, "nobody", "user_features").json()["categories_deleted"] == []
    assert read(client, "u2", "user_features").status_code == 200, "another entity was touched"
    batch = client.post(
        "/api/v1/get/items/batch",
        json={"data": {"entity_values": ["u1", "u2"], "feature_list": ["user_features:*"]}},
    ).json()["results"]
    assert [result["items"] != {} for result in batch] == [False, True]


def test_an_older_write_after_a_deletion_is_skipped_and_a_newer_one_stored(client: AppClient, write) -> None:
    write("u1", categories={"user_features": {"v": "t1"}}, event_time=T1)
    assert delete(client, "u1", "user_features", event_time=T2).json()["categories_deleted"] == ["user_features"]
    older = write("u1", categories={"user_features": {"v": "late"}}, event_time=T1)
    assert (older["categories_updated"], older["categories_skipped"]) == ([], ["user_features"])
    assert read(client, "u1", "user_features").status_code == 404
    newer = write("u1", categories={"user_features": {"v": "t3"}}, event_time=T3)
    assert newer["categories_updated"] == ["user_features"]
    stored = read(client, "u1", "user_features").json()["features"]
    assert stored["data"] == {"v": "t3"}
    assert stored["metadata"]["created_at"] == newer["timestamp"], "the category starts afresh"
    assert "deleted_at" not in stored["metadata"]


def test_an_erasure_request_before_any_data_keeps_a_late_job_out(client: AppClient, write) -> None:
    """Erasure asked for a category the job had not written yet, then again later: the job's late
    write of data computed before either is skipped."""
    assert delete(client, "u1", "user_features", event_time=T2).json()["categories_deleted"] == []
    assert delete(client, "u1", "user_features", event_time=T3).json()["categories_deleted"] == []
    late = write("u1", categories={"user_features": {"v": "late"}}, event_time=T2)
    assert (late["categories_updated"], late["categories_skipped"]) == ([], ["user_features"])
    assert read(client, "u1", "user_features").status_code == 404


def test_a_deletion_without_event_time_beats_a_late_write_of_older_data(client: AppClient, write) -> None:
    write("u1", categories={"user_features": {"v": 1}}, event_time=T1)
    delete(client, "u1", "user_features")
    assert write("u1", categories={"user_features": {"v": 2}}, event_time=T2)["categories_skipped"] == ["user_features"]
    assert write("u1", categories={"user_features": {"v": 3}})["categories_updated"] == ["user_features"]


def test_a_deletion_older_than_the_data_leaves_it(client: AppClient, write) -> None:
    write("u1", categories={"user_features": {"v": 1}, "credit_features": {"v": 1}}, event_time=T2)
    write("u1", categories={"trans_features": {"v": 1}}, event_time=T1)
    assert delete(client, "u1", event_time="2026-01-01T12:00:00Z").json()["categories_deleted"] == ["trans_features"]
    assert read(client, "u1", "user_features").status_code == 200


def test_deletions_are_announced_on_kafka(make_client, kafka_settings, kafka_broker, kafka_topic: str) -> None:
    client = make_client(**kafka_settings)
    body = {
        "meta": {"source": "prediction_service", "compute_id": "job-1"},
        "data": {
            "entity_value": "u1",
            "feature_list": [
                {"category": "user_features", "features": {"age": 30, "city": "SF"}},
                {"category": "credit_features", "features": {"score": 1}},
            ],
        },
    }
    assert client.post("/api/v1/items", json=body).status_code == 200
    deleted = delete(client, "u1").json()
    assert sorted(deleted["categories_deleted"]) == ["credit_features", "user_features"]
    received = consume(kafka_broker.bootstrap, kafka_topic, distinct=4)
    deletions = [item for item in received if item.event["event_type"] == "feature_deleted"]
    assert len({item.event["event_id"] for item in deletions}) == 2
    by_category = {item.event["resource_name"]: item for item in deletions}
    user = by_category["user_features"]
    assert user.key == "bright_uid:u1"
    assert user.event == {
        "event_id": user.event["event_id"],
        "event_type": "feature_deleted",
        "timestamp": deleted["timestamp"],
        "entity_type": "bright_uid",
        "entity_id": "u1",
        "resource_type": "feature",
        "resource_name": "user_features",
        "compute_id": "",
        "features": ["age", "city"],
        "actor": None,
        "version": 2,
        "erased_versions": 0,
    }
    assert by_category["credit_features"].event["features"] == ["score"]


def test_bad_input_is_a_422_that_deletes_nothing(client: AppClient, write) -> None:
    write("u1", categories={"user_features": {"v": 1}})
    for params in (
        {"category": ["made_up"]},
        {"category": ["user_features", "made_up"]},
        {"entity_type": "planet"},
        {"event_time": "yesterday"},
        {"event_time": "1700000000"},
        {"entity_typ": "account_id"},
    ):
        response = client.delete("/api/v1/items/u1", params=params)
        assert response.status_code == 422, (params, response.text)
    assert read(client, "u1", "user_features").status_code == 200


def test_a_key_deletes_only_what_it_may_write(make_auth_client, api_keys, backend) -> None:
    client = make_auth_client()
    writer = {"X-API-Key": api_keys["writer"]}
    body = {
        "data": {
            "entity_value": "u1",
            "feature_list": [
                {"category": "user_features", "features": {"a": 1}},
                {"category": "trans_features", "features": {"b": 1}},
            ],
        }
    }
    assert client.post("/api/v1/items", json=body, headers={"X-API-Key": api_keys["any_writer"]}).status_code == 200
    assert client.delete("/api/v1/items/u1").status_code == 401
    assert client.delete("/api/v1/items/u1", headers={"X-API-Key": api_keys["reader"]}).status_code == 403
    refused = client.delete("/api/v1/items/u1", params={"category": "trans_features"}, headers=writer)
    assert refused.status_code == 403
    everything = client.delete("/api/v1/items/u1", headers=writer)
    assert everything.status_code == 403
    assert "name them" in everything.json()["detail"]
    granted = client.delete("/api/v1/items/u1", params={"category": "user_features"}, headers=writer)
    assert granted.json()["categories_deleted"] == ["user_features"]
    whole = client.delete("/api/v1/items/u1", headers={"X-API-Key": api_keys["any_writer"]})
    assert whole.json()["categories_deleted"] == ["trans_features"]

"""A read's freshness bound (`max_age_seconds`) and the `age_seconds` every read reports, on every
backend and every read endpoint: age is measured from `event_time`, on the app's clock."""

from datetime import timedelta
from typing import Any

import pytest

from tests.conftest import AppClient
from tests.factories import CLOCK_START, read_body, write_body


def get_item(client: AppClient, query: str = "", entity_value: str = "user-123") -> Any:
    return client.get(f"/api/v1/get/item/{entity_value}/user_features{query}")


def read_items(client: AppClient, *feature_list: str, **meta: Any) -> Any:
    body = read_body("user-123", *feature_list)
    body["meta"].update(meta)
    return client.post("/api/v1/get/items", json=body)


def read_batch(client: AppClient, entity_values: list[str], *feature_list: str, **meta: Any) -> Any:
    body = {"meta": meta, "data": {"entity_values": entity_values, "feature_list": list(feature_list)}}
    return client.post("/api/v1/get/items/batch", json=body)


def write_at(client: AppClient, event_time, categories: dict[str, dict[str, Any]] | None = None, **kwargs) -> None:
    body = write_body(categories=categories, event_time=event_time.isoformat() if event_time else None, **kwargs)
    if event_time is None:
        del body["metadata"]["event_time"]
    assert client.post("/api/v1/items", json=body).status_code == 200


def test_age_seconds_is_measured_from_event_time_at_read_time(client: AppClient, clock) -> None:
    write_at(client, CLOCK_START - timedelta(seconds=10))
    clock.now = (CLOCK_START + timedelta(seconds=5, microseconds=250)).timestamp()
    metadata = get_item(client).json()["features"]["metadata"]
    assert metadata["age_seconds"] == 15.00025
    assert metadata["event_time"] == "2026-03-01T11:59:50.250000+00:00"
    clock.now += 60
    assert get_item(client).json()["features"]["metadata"]["age_seconds"] == 75.00025
    many = read_items(client, "user_features:age").json()
    assert many["items"]["user_features"]["features"]["metadata"]["age_seconds"] == 75.00025
    batch = read_batch(client, ["user-123"], "user_features:*").json()
    assert batch["results"][0]["items"]["user_features"]["features"]["metadata"]["age_seconds"] == 75.00025


def test_without_event_time_age_counts_from_the_write(client: AppClient, clock) -> None:
    write_at(client, None)
    clock.now += 2.5
    assert get_item(client).json()["features"]["metadata"]["age_seconds"] == 2.5


def test_a_future_event_time_reads_as_a_negative_age(client: AppClient, clock) -> None:
    write_at(client, CLOCK_START + timedelta(seconds=30))
    assert get_item(client).json()["features"]["metadata"]["age_seconds"] == -30.0
    assert get_item(client, "?max_age_seconds=1").status_code == 200


def test_the_single_read_bound_at_its_boundary(client: AppClient, clock) -> None:
    write_at(client, CLOCK_START - timedelta(seconds=60))
    assert get_item(client, "?max_age_seconds=60").status_code == 200
    assert get_item(client, "?max_age_seconds=60.5").status_code == 200
    answer = get_item(client, "?max_age_seconds=59.999")
    assert answer.status_code == 404
    assert answer.json()["error"] == "not_found"
    clock.now += 0.5
    assert get_item(client, "?max_age_seconds=60").status_code == 404
    assert get_item(client, "?max_age_seconds=60.5").status_code == 200
    assert get_item(client).status_code == 200, "without a bound any age is served"


def test_the_bound_uses_event_time_not_the_write_time(client: AppClient, clock) -> None:
    write_at(client, CLOCK_START - timedelta(hours=2))
    assert get_item(client, "?max_age_seconds=3600").status_code == 404
    write_at(client, CLOCK_START - timedelta(minutes=1), {"user_features": {"age": 31}})
    assert get_item(client, "?max_age_seconds=3600").json()["features"]["data"] == {"age": 31}


def test_too_old_reads_like_expired_across_categories(client: AppClient, clock) -> None:
    write_at(client, CLOCK_START - timedelta(seconds=100), {"user_features": {"age": 30}})
    write_at(client, CLOCK_START - timedelta(seconds=10), {"credit_features": {"score": 700}})
    answer = read_items(client, "user_features:age", "credit_features:*", max_age_seconds=50).json()
    assert list(answer["items"]) == ["credit_features"]
    assert answer["unavailable_feature_categories"] == ["user_features"]
    assert answer["unavailable_features"] == []
    everything = read_items(client, "user_features:age", "credit_features:*").json()
    assert sorted(everything["items"]) == ["credit_features", "user_features"]


def test_the_batch_bound_applies_to_every_entity(client: AppClient, clock) -> None:
    write_at(client, CLOCK_START - timedelta(seconds=100), {"user_features": {"age": 30}}, entity_value="old")
    write_at(client, CLOCK_START - timedelta(seconds=10), {"user_features": {"age": 40}}, entity_value="new")
    answer = read_batch(client, ["old", "new", "none"], "user_features:age", max_age_seconds=50)
    assert answer.status_code == 200
    results = answer.json()["results"]
    assert [result["entity_value"] for result in results] == ["old", "new", "none"]
    assert [result["unavailable_feature_categories"] for result in results] == [
        ["user_features"],
        [],
        ["user_features"],
    ]
    assert results[1]["items"]["user_features"]["features"]["data"] == {"age": 40}


def test_the_earlier_read_takes_the_bound_as_a_query_parameter(client: AppClient, clock) -> None:
    write_at(client, CLOCK_START - timedelta(seconds=100))
    fresh = client.post("/api/v1/get/item/user-123?max_age_seconds=200", json={"user_features": []})
    assert list(fresh.json()["items"]) == ["user_features"]
    stale = client.post("/api/v1/get/item/user-123?max_age_seconds=50", json={"user_features": []})
    assert stale.status_code == 200
    assert (stale.json()["items"], stale.json()["unavailable_feature_categories"]) == ({}, ["user_features"])


def test_an_expired_category_stays_expired_under_any_bound(client: AppClient, clock) -> None:
    write_at(client, CLOCK_START, ttl=10)
    clock.now += 10
    assert get_item(client, "?max_age_seconds=1000").status_code == 404


@pytest.mark.parametrize("value", ["0", "-1", "abc", "nan", "inf", "-inf", ""])
def test_a_bad_bound_on_the_query_is_422(client: AppClient, value: str) -> None:
    for response in (
        get_item(client, f"?max_age_seconds={value}"),
        client.post(f"/api/v1/get/item/user-123?max_age_seconds={value}", json={"user_features": []}),
    ):
        assert response.status_code == 422, value
        assert response.json()["detail"][0]["loc"] == ["query", "max_age_seconds"]


@pytest.mark.parametrize("value", [0, -1, "60", True, None, [60], {"s": 1}])
def test_a_bad_bound_in_meta_is_422(client: AppClient, value: Any) -> None:
    for path, body in (
        ("/api/v1/get/items", read_body("user-123", "user_features:*")),
        (
            "/api/v1/get/items/batch",
            {"meta": {}, "data": {"entity_values": ["u"], "feature_list": ["user_features:*"]}},
        ),
    ):
        body["meta"]["max_age_seconds"] = value
        response = client.post(path, json=body)
        if value is None:
            assert response.status_code == 200, response.text
            continue
        assert response.status_code == 422, (path, value)
        assert response.json()["detail"][0]["loc"] == ["body", "meta", "max_age_seconds"]


def test_infinity_in_meta_is_422(client: AppClient) -> None:
    response = client.post(
        "/api/v1/get/items",
        content=b'{"meta": {"max_age_seconds": 1e999}, "data": {"entity_value": "u", "feature_list": ["user_features:*"]}}',
        headers={"content-type": "application/json"},
    )
    assert response.status_code == 422

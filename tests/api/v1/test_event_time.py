"""An event_time far ahead of the server's clock is refused on every write and deletion: it would have every
later write of its categories skipped (a deletion's for as long as its tombstone lives)."""

from datetime import UTC, datetime, timedelta

import pytest

from tests.conftest import AppClient
from tests.factories import write_body

pytestmark = pytest.mark.backends("sqlite")

FAR = "2999-01-01T00:00:00Z"


def ahead(seconds: float) -> str:
    return (datetime.now(UTC) + timedelta(seconds=seconds)).isoformat()


def assert_refused_at(answer, loc: list[str | int]) -> None:
    assert answer.status_code == 422, answer.text
    body = answer.json()
    assert body["error"] == "validation_error"
    [error] = body["detail"]
    assert error["loc"] == loc and "MAX_EVENT_TIME_AHEAD_SECONDS" in error["msg"] and "300 seconds" in error["msg"]


def test_a_deletion_far_ahead_is_refused_and_later_writes_are_stored(client: AppClient) -> None:
    assert client.post("/api/v1/items", json=write_body("user-1")).status_code == 200
    refused = client.delete("/api/v1/items/user-1", params={"event_time": FAR})
    assert_refused_at(refused, ["query", "event_time"])
    written = client.post("/api/v1/items", json=write_body("user-1"))
    assert written.json()["categories_updated"] == ["user_features"]


def test_a_write_far_ahead_is_refused_and_one_within_the_limit_stored(client: AppClient) -> None:
    assert_refused_at(
        client.post("/api/v1/items", json=write_body("user-2", event_time=FAR)), ["body", "meta", "event_time"]
    )
    assert client.post("/api/v1/items", json=write_body("user-2", event_time=ahead(60))).status_code == 200
    assert client.delete("/api/v1/items/user-2", params={"event_time": ahead(60)}).status_code == 200


def test_the_earlier_write_names_its_query_parameter(client: AppClient) -> None:
    answer = client.post(
        "/api/v1/items/user-3",
        params={"source": "prediction_service", "event_time": FAR},
        json={"user_features": {"age": 1}},
    )
    assert_refused_at(answer, ["query", "event_time"])


def test_a_bulk_write_refuses_that_entity_only(client: AppClient) -> None:
    body = {
        "meta": {"source": "prediction_service"},
        "data": {
            "entities": [
                {"entity_value": "ok", "feature_list": [{"category": "user_features", "features": {"a": 1}}]},
                {
                    "entity_value": "far",
                    "meta": {"event_time": FAR},
                    "feature_list": [{"category": "user_features", "features": {"a": 1}}],
                },
            ]
        },
    }
    results = client.post("/api/v1/items/batch", json=body).json()["results"]
    assert results[0]["error"] is None
    assert results[1]["error"]["error"] == "validation_error"
    assert "MAX_EVENT_TIME_AHEAD_SECONDS" in str(results[1]["error"]["detail"])


def test_the_limit_is_a_setting(make_client) -> None:
    client = make_client(max_event_time_ahead_seconds=3600)
    assert client.post("/api/v1/items", json=write_body("user-4", event_time=ahead(1800))).status_code == 200

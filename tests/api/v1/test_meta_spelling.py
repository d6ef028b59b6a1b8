"""Bodies the document calls invalid are refused: both spellings of `meta`, and an `event_time` that is
not the ISO 8601 date-time the document promises."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from tests.factories import write_body

pytestmark = pytest.mark.backends("sqlite")

META = {"source": "prediction_service"}
READ_DATA = {"entity_value": "user-123", "feature_list": ["user_features:*"]}
BATCH_DATA = {"entity_values": ["user-123"], "feature_list": ["user_features:*"]}


def with_both(body: dict[str, Any]) -> dict[str, Any]:
    return {**body, "meta": META, "metadata": META}


@pytest.mark.parametrize(
    ("path", "body"),
    [
        ("/api/v1/items", {"data": write_body(categories={"user_features": {"age": 30}})["data"]}),
        ("/api/v1/get/items", {"data": READ_DATA}),
        ("/api/v1/get/items/batch", {"data": BATCH_DATA}),
    ],
)
def test_a_body_naming_both_spellings_is_refused(client: TestClient, path: str, body: dict[str, Any]) -> None:
    assert client.post(path, json={**body, "meta": META}).status_code == 200, "one spelling is fine"
    response = client.post(path, json=with_both(body))
    assert response.status_code == 422, response.text
    answer = response.json()
    assert answer["error"] == "validation_error"
    assert answer["detail"][0]["loc"] == ["body"]
    assert "not both" in answer["detail"][0]["msg"]


def test_the_document_says_not_both(client: TestClient) -> None:
    schemas = client.get("/openapi.json").json()["components"]["schemas"]
    for model in ("WriteRequest", "GetItemsRequest", "GetBatchRequest"):
        assert schemas[model]["not"] == {"required": ["meta", "metadata"]}, model


@pytest.mark.parametrize("event_time", [0, 1_700_000_000, "1700000000", "0", True, "yesterday"])
def test_event_time_must_be_a_date_time(client: TestClient, event_time: object) -> None:
    body = write_body(categories={"user_features": {"age": 30}}, event_time=event_time)
    response = client.post("/api/v1/items", json=body)
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["body", "metadata", "event_time"]


@pytest.mark.parametrize("event_time", ["2025-10-13T09:15:51+00:00", "2025-10-13T09:15:51.358632Z", "2025-10-13"])
def test_iso_event_times_are_accepted(client: TestClient, event_time: str) -> None:
    body = write_body(categories={"user_features": {"age": 30}}, event_time=event_time)
    assert client.post("/api/v1/items", json=body).status_code == 200


@pytest.mark.parametrize("event_time", ["0.5", "0", "1700000000"])
def test_the_earlier_writes_event_time_must_be_a_date_time_too(client: TestClient, event_time: str) -> None:
    response = client.post(
        "/api/v1/items/user-123",
        params={"source": "prediction_service", "event_time": event_time},
        json={"user_features": {"age": 30}},
    )
    assert response.status_code == 422, response.text
    assert response.json()["detail"][0]["loc"] == ["query", "event_time"]


def test_a_whole_ttl_may_be_spelt_with_a_fraction(client: TestClient) -> None:
    """JSON Schema's integers include 60.0, so the document calls it a valid `ttl`; the service agrees."""
    body = write_body(categories={"user_features": {"age": 30}}, ttl=60.0)
    assert client.post("/api/v1/items", json=body).status_code == 200
    metadata = client.get("/api/v1/get/item/user-123/user_features").json()["features"]["metadata"]
    assert metadata["ttl"] == 60 and isinstance(metadata["ttl"], int)


def test_without_keys_the_document_requires_the_writer(client: TestClient) -> None:
    """A write without `meta.source` is a 422 without API keys, so the document requires it there."""
    body = write_body(categories={"user_features": {"age": 30}})
    del body["metadata"]["source"]
    assert client.post("/api/v1/items", json=body).status_code == 422
    schema = client.get("/openapi.json").json()["components"]["schemas"]["WriteRequest"]
    assert [option["required"] for option in schema["anyOf"]] == [["meta"], ["metadata"]]
    assert all(
        option["properties"][spelling]["required"] == ["source"]
        for option, spelling in zip(schema["anyOf"], ("meta", "metadata"), strict=True)
    )

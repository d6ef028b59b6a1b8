"""POST /api/v1/items/batch: many entities per request, each written atomically on its own and answered
in request order, with its own refusal or failure; a malformed request writes nothing."""

from typing import Any

import pytest
from fastapi.testclient import TestClient

from components.features.store.sqlite.commit import GroupCommit
from core.exceptions import StoreUnavailable
from tests.components.events.kafka_helpers import consume
from tests.conftest import AppClient
from tests.factories import write_body

BATCH = "/api/v1/items/batch"


def entity(value: str, categories: dict[str, dict[str, Any]], **meta: Any) -> dict[str, Any]:
    item: dict[str, Any] = {
        "entity_value": value,
        "feature_list": [{"category": name, "features": features} for name, features in categories.items()],
    }
    if meta:
        item["meta"] = meta
    return item


def batch_body(*entities: dict[str, Any], entity_type: str = "bright_uid", **meta: Any) -> dict[str, Any]:
    shared = {"source": "prediction_service", "compute_id": "job-1", **meta}
    return {"meta": shared, "data": {"entity_type": entity_type, "entities": list(entities)}}


def read(client: TestClient, value: str, category: str, entity_type: str = "bright_uid"):
    return client.get(f"/api/v1/get/item/{value}/{category}", params={"entity_type": entity_type})


def pending_events(client: AppClient) -> int:
    return client.run(client.app.state.runtime.store.outbox_stats).pending


def test_mixed_success_and_per_entity_failures_in_request_order(client: AppClient) -> None:
    body = batch_body(
        entity("u1", {"user_features": {"age": 30}, "credit_features": {"score": 750}}),
        entity("u2", {"user_features": {"age": 1}, "made_up": {"x": 1}}),
        entity("u3", {"user_features": {"age": 2}}, source="not_a_writer"),
        entity("u4", {"user_features": {"nan": {"deep": [1]}, "big": 2**64}}),
        entity("u5", {"trans_features": {"n": 5}}, compute_id="job-override"),
    )
    response = client.post(BATCH, json=body)
    assert response.status_code == 200, response.text
    answer = response.json()
    assert answer["entity_type"] == "bright_uid"
    assert (answer["written"], answer["failed"]) == (2, 3)
    results = answer["results"]
    assert [result["entity_value"] for result in results] == ["u1", "u2", "u3", "u4", "u5"]
    assert results[0] == {
        "entity_value": "u1",
        "categories_updated": ["user_features", "credit_features"],
        "categories_skipped": [],
        "error": None,
    }
    unknown = results[1]["error"]
    assert unknown["error"] == "validation_error"
    assert unknown["detail"][0]["loc"] == ["body", "data", "entities", 1, "feature_list", 1, "category"]
    assert "made_up" in unknown["detail"][0]["msg"]
    assert results[2]["error"] == {"error": "forbidden", "detail": "source 'not_a_writer' may not write features"}
    assert results[3]["error"]["error"] == "validation_error"
    assert results[3]["error"]["detail"][0]["loc"] == [
        "body",
        "data",
        "entities",
        3,
        "feature_list",
        0,
        "features",
        "big",
    ]
    for failed in results[1:4]:
        assert (failed["categories_updated"], failed["categories_skipped"]) == ([], [])
    assert results[4]["categories_updated"] == ["trans_features"]

    assert read(client, "u1", "credit_features").json()["features"]["data"] == {"score": 750}
    assert read(client, "u2", "user_features").status_code == 404, "a refused entity wrote part of itself"
    assert read(client, "u3", "user_features").status_code == 404
    assert read(client, "u4", "user_features").status_code == 404
    metadata = read(client, "u5", "trans_features").json()["features"]["metadata"]
    assert (metadata["compute_id"], metadata["source"]) == ("job-override", "prediction_service")
    assert read(client, "u1", "user_features").json()["features"]["metadata"]["compute_id"] == "job-1"


def test_a_store_failure_fails_that_entity_whole_and_no_other(
    client: AppClient, backend: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The failing entity had one category applied before its store failed: none of it stays."""
    if backend == "sqlite":
        apply = GroupCommit.apply_one

        def failing(connection, pending):
            skipped = apply(connection, pending)
            if pending.entity_value == "bad":
                raise StoreUnavailable("embedded store unavailable")
            return skipped

        monkeypatch.setattr(GroupCommit, "apply_one", staticmethod(failing))
        bad = entity("bad", {"user_features": {"a": 1}, "credit_features": {"b": 2}})
        code = "store_unavailable"
    else:
        # A category larger than DynamoDB stores: its entity is refused whole, before anything is sent.
        large = {f"f{index}": "x" * 60_000 for index in range(8)}
        bad = entity("bad", {"user_features": {"a": 1}, "credit_features": large})
        code = "payload_too_large"
    before = pending_events(client)
    body = batch_body(entity("good-1", {"user_features": {"a": 1}}), bad, entity("good-2", {"user_features": {"a": 2}}))
    answer = client.post(BATCH, json=body).json()
    assert [result["error"] and result["error"]["error"] for result in answer["results"]] == [None, code, None]
    assert (answer["written"], answer["failed"]) == (2, 1)
    assert read(client, "bad", "user_features").status_code == 404
    assert read(client, "bad", "credit_features").status_code == 404
    assert read(client, "good-2", "user_features").json()["features"]["data"] == {"a": 2}
    assert pending_events(client) - before <= 2, "the failed entity left events behind"


def test_event_time_orders_each_entity_and_an_entity_may_override_it(client: AppClient, write) -> None:
    write("u1", categories={"user_features": {"v": "new"}}, event_time="2026-01-02T00:00:00+00:00")
    write("u2", categories={"user_features": {"v": "new"}}, event_time="2026-01-02T00:00:00+00:00")
    body = batch_body(
        entity("u1", {"user_features": {"v": "old"}, "credit_features": {"v": "old"}}),
        entity("u2", {"user_features": {"v": "newer"}}, event_time="2026-01-03T00:00:00+00:00"),
        event_time="2026-01-01T00:00:00+00:00",
    )
    results = client.post(BATCH, json=body).json()["results"]
    assert (results[0]["categories_updated"], results[0]["categories_skipped"]) == (
        ["credit_features"],
        ["user_features"],
    )
    assert (results[1]["categories_updated"], results[1]["categories_skipped"]) == (["user_features"], [])
    assert read(client, "u1", "user_features").json()["features"]["data"] == {"v": "new"}
    assert read(client, "u2", "user_features").json()["features"]["data"] == {"v": "newer"}


def test_events_per_entity_arrive_on_kafka(make_client, kafka_settings, kafka_broker, kafka_topic: str) -> None:
    client = make_client(**kafka_settings)
    body = batch_body(
        entity("u1", {"user_features": {"age": 30}, "credit_features": {"score": 1}}),
        entity("u2", {"made_up": {"x": 1}}),
        entity("u3", {"user_features": {"age": 31}}),
        compute_id="job-9",
    )
    assert client.post(BATCH, json=body).json()["written"] == 2
    received = consume(kafka_broker.bootstrap, kafka_topic, distinct=3)
    events = sorted((item.key, item.event["resource_name"], tuple(item.event["features"])) for item in received)
    assert events == [
        ("bright_uid:u1", "credit_features", ("score",)),
        ("bright_uid:u1", "user_features", ("age",)),
        ("bright_uid:u3", "user_features", ("age",)),
    ]
    assert {(item.event["event_type"], item.event["compute_id"]) for item in received} == {
        ("feature_available", "job-9")
    }


def test_a_ttl_over_the_limit_fails_the_entity_that_gave_it(client: AppClient) -> None:
    too_long = client.app.state.runtime.settings.max_ttl_seconds + 1
    body = batch_body(
        entity("u1", {"user_features": {"a": 1}}), entity("u2", {"user_features": {"a": 2}}, ttl=too_long)
    )
    results = client.post(BATCH, json=body).json()["results"]
    assert results[0]["error"] is None
    assert results[1]["error"]["detail"][0]["loc"] == ["body", "data", "entities", 1, "meta", "ttl"]
    body = batch_body(entity("u3", {"user_features": {"a": 1}}), ttl=too_long)
    error = client.post(BATCH, json=body).json()["results"][0]["error"]
    assert (error["error"], error["detail"][0]["loc"]) == ("validation_error", ["body", "meta", "ttl"])


def test_more_entities_than_the_limit_is_a_422_stating_it(make_client) -> None:
    client = make_client(max_batch_write_entities=2)
    body = batch_body(*(entity(f"u{i}", {"user_features": {"a": i}}) for i in range(3)))
    response = client.post(BATCH, json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "data", "entities"]
    assert "limit is 2" in response.json()["detail"][0]["msg"]
    assert read(client, "u0", "user_features").status_code == 404


@pytest.mark.parametrize(
    "change",
    [
        lambda body: body["data"]["entities"][1].pop("entity_value"),
        lambda body: body["data"]["entities"][1]["feature_list"].clear(),
        lambda body: body["data"]["entities"][1]["feature_list"][0]["features"].update({"bad name!": 1}),
        lambda body: body["data"].update(entity_type="planet"),
        lambda body: body["data"]["entities"].append(body["data"]["entities"][0]),
        lambda body: body["data"]["entities"][0].update(meta={"ttl": -1}),
        lambda body: body["data"]["entities"][0].update(extra=1),
        lambda body: body.update(metadata=body["meta"]),
    ],
    ids=[
        "no-entity-value",
        "empty-feature-list",
        "bad-feature-name",
        "entity-type",
        "duplicate",
        "ttl",
        "extra",
        "both-metas",
    ],
)
def test_a_malformed_request_is_a_422_and_writes_nothing(client: AppClient, change) -> None:
    body = batch_body(entity("u1", {"user_features": {"a": 1}}), entity("u2", {"user_features": {"a": 2}}))
    change(body)
    response = client.post(BATCH, json=body)
    assert response.status_code == 422, response.text
    assert read(client, "u1", "user_features").status_code == 404
    assert pending_events(client) == 0


@pytest.mark.backends("sqlite")
def test_the_body_limit_scales_and_is_refused_from_content_length(make_client, backend) -> None:
    client = make_client(max_body_bytes=2000, max_batch_write_entities=2)
    limit = client.app.state.runtime.settings.max_batch_write_body_bytes
    assert limit == 2 * 32 * 1024
    body = batch_body(entity("u1", {"user_features": {"text": "x" * 5000}}))
    assert client.post(BATCH, json=body).status_code == 200, "the single write's limit applied to the bulk write"
    assert (
        client.post("/api/v1/items", json=write_body(categories={"user_features": {"t": "x" * 5000}})).status_code
        == 413
    )
    huge = b'{"data": ' + b" " * limit + b"}"
    response = client.post(BATCH, content=huge, headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert str(limit) in response.json()["detail"]


@pytest.mark.backends("sqlite")
def test_a_keys_category_grants_are_judged_per_entity(make_auth_client, api_keys, backend) -> None:
    client = make_auth_client()
    body = batch_body(
        entity("u1", {"user_features": {"a": 1}}),
        entity("u2", {"user_features": {"a": 1}, "trans_features": {"b": 1}}),
    )
    body["meta"].pop("source")
    response = client.post(BATCH, json=body, headers={"X-API-Key": api_keys["writer"]})
    results = response.json()["results"]
    assert results[0]["error"] is None
    assert results[1]["error"] == {
        "error": "forbidden",
        "detail": "key 'writer' may not write categories ['trans_features']",
    }
    assert client.post(BATCH, json=body, headers={"X-API-Key": api_keys["reader"]}).status_code == 403
    assert client.post(BATCH, json=body).status_code == 401

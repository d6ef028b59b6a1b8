"""The earlier API (seed 001) on both backends: its three calls verbatim, `table_type`, and the earlier
write's rules and events, which must be those of the current write."""

import logging
import time
from typing import Any

import pytest
from fastapi.testclient import TestClient

from core.settings import DEFAULT_CATEGORIES
from tests.conftest import AppClient
from tests.factories import read_body, stop_clock

# Seed 001's calls, verbatim; its placeholder categories are allowed for them.
SEED_CATEGORIES = ",".join((*DEFAULT_CATEGORIES, "category1", "category2"))
SEED_READ_ONE = "/api/v1/get/item/{identifier}/{category}?table_type=bright_uid"
SEED_READ = "/api/v1/get/item/{identifier}?table_type=bright_uid"
SEED_READ_BODY = {"category1": ["feature1", "feature2"], "category2": ["feature3"]}
SEED_WRITE = "/api/v1/items/{identifier}?table_type=bright_uid"
SEED_WRITE_BODY = {"category1": {"feature1": "value1"}, "category2": {"feature2": 123}}


def key(value: str) -> dict[str, str]:
    return {"X-API-Key": value}


@pytest.fixture
def seed_client(make_client) -> AppClient:
    return make_client(allowed_categories=SEED_CATEGORIES)


def earlier_write(client: TestClient, entity_value: str, body: dict[str, Any], **params: Any):
    return client.post(f"/api/v1/items/{entity_value}", params={"source": "prediction_service", **params}, json=body)


def test_seed_calls_verbatim_with_a_writer_key(make_auth_client, api_keys: dict[str, str]) -> None:
    client = make_auth_client(allowed_categories=SEED_CATEGORIES)
    written = client.post(
        SEED_WRITE.format(identifier="user-123"), json=SEED_WRITE_BODY, headers=key(api_keys["any_writer"])
    )
    assert written.status_code == 200, written.text
    assert written.json()["categories_updated"] == ["category1", "category2"]

    reader = key(api_keys["reader"])
    one = client.get(SEED_READ_ONE.format(identifier="user-123", category="category1"), headers=reader)
    assert one.status_code == 200, one.text
    assert one.json()["bright_uid"] == "user-123"
    assert one.json()["features"]["data"] == {"feature1": "value1"}
    assert one.json()["features"]["metadata"]["source"] == "batch_job"

    many = client.post(SEED_READ.format(identifier="user-123"), json=SEED_READ_BODY, headers=reader)
    assert many.status_code == 200, many.text
    assert many.json()["items"]["category1"]["features"]["data"] == {"feature1": "value1"}
    assert many.json()["unavailable_features"] == ["category1:feature2", "category2:feature3"]
    assert client.post(SEED_READ.format(identifier="user-123"), json=SEED_READ_BODY).status_code == 401


def test_seed_calls_verbatim_without_keys(seed_client: AppClient) -> None:
    """Without API keys the earlier body names no writer: refused, saying how to name it; then it works."""
    stop_clock(seed_client)
    refused = seed_client.post(SEED_WRITE.format(identifier="user-123"), json=SEED_WRITE_BODY)
    assert refused.status_code == 403
    assert refused.json()["error"] == "forbidden"
    assert "`source` query parameter" in refused.json()["detail"]
    assert seed_client.get(SEED_READ_ONE.format(identifier="user-123", category="category1")).status_code == 404

    written = seed_client.post(
        SEED_WRITE.format(identifier="user-123") + "&source=prediction_service", json=SEED_WRITE_BODY
    )
    assert written.status_code == 200, written.text
    one = seed_client.get(SEED_READ_ONE.format(identifier="user-123", category="category2"))
    assert one.status_code == 200
    assert one.json()["features"]["data"] == {"feature2": 123}
    many = seed_client.post(SEED_READ.format(identifier="user-123"), json=SEED_READ_BODY)
    assert many.status_code == 200
    current = seed_client.post(
        "/api/v1/get/items",
        json=read_body("user-123", "category1:feature1", "category1:feature2", "category2:feature3"),
    )
    assert many.json() == current.json()


def test_earlier_read_answers_like_get_items(client: AppClient, write) -> None:
    stop_clock(client)
    write(categories={"user_features": {"age": 30, "income": 60000, "city": "SF"}})
    write(categories={"transaction_features": {"count": 150, "avg": 250.5}, "credit_features": {"score": 700}})
    body = {
        "user_features": ["age", "height"],
        "transaction_features": [],
        "credit_features": ["*"],
        "trans_features": ["x"],
        "made_up": ["y"],
    }
    earlier = client.post("/api/v1/get/item/user-123", json=body)
    assert earlier.status_code == 200, earlier.text
    feature_list = [
        "user_features:age",
        "user_features:height",
        "transaction_features:*",
        "credit_features:*",
        "trans_features:x",
        "made_up:y",
    ]
    current = client.post("/api/v1/get/items", json=read_body("user-123", *feature_list))
    assert earlier.json() == current.json()
    answer = earlier.json()
    assert answer["items"]["user_features"]["features"]["data"] == {"age": 30}
    assert answer["items"]["transaction_features"]["features"]["data"] == {"count": 150, "avg": 250.5}
    assert answer["items"]["credit_features"]["features"]["data"] == {"score": 700}
    assert answer["unavailable_feature_categories"] == ["made_up", "trans_features"]
    assert answer["unavailable_features"] == ["user_features:height"]


def test_earlier_read_sees_freshness_like_get_items(client: TestClient, write, clock) -> None:
    write(categories={"user_features": {"age": 30}}, ttl=1)
    write(categories={"credit_features": {"score": 700}})
    clock.now += 1
    answer = client.post("/api/v1/get/item/user-123", json={"user_features": [], "credit_features": []}).json()
    assert list(answer["items"]) == ["credit_features"]
    assert answer["unavailable_feature_categories"] == ["user_features"]


def test_table_type_account_id_reads_the_account_entity(client: TestClient, write) -> None:
    write(categories={"user_features": {"owner": "user"}, "credit_features": {"score": 1}})
    write(entity_type="account_id", categories={"user_features": {"owner": "account"}})

    one = client.get("/api/v1/get/item/user-123/user_features?table_type=account_id")
    assert one.status_code == 200
    assert one.json()["account_id"] == "user-123"
    assert "bright_uid" not in one.json()
    assert one.json()["features"]["data"] == {"owner": "account"}
    # Only the user entity has credit features: the account's read must not fall back to them.
    assert client.get("/api/v1/get/item/user-123/credit_features?table_type=account_id").status_code == 404

    many = client.post(
        "/api/v1/get/item/user-123?table_type=account_id", json={"user_features": [], "credit_features": []}
    )
    assert many.json()["entity_type"] == "account_id"
    assert many.json()["items"]["user_features"]["features"]["data"] == {"owner": "account"}
    assert many.json()["unavailable_feature_categories"] == ["credit_features"]


def test_table_type_names_the_written_entity(client: TestClient) -> None:
    response = earlier_write(client, "acct-9", {"user_features": {"a": 1}}, table_type="account_id")
    assert response.status_code == 200
    assert response.json()["entity_type"] == "account_id"
    assert client.get("/api/v1/get/item/acct-9/user_features?entity_type=account_id").status_code == 200
    assert client.get("/api/v1/get/item/acct-9/user_features").status_code == 404


@pytest.mark.parametrize(
    ("method", "path", "body"),
    [
        ("GET", "/api/v1/get/item/user-123/user_features", None),
        ("POST", "/api/v1/get/item/user-123", {"user_features": []}),
        ("POST", "/api/v1/items/user-123?source=prediction_service", {"user_features": {"a": 1}}),
    ],
)
def test_entity_type_and_table_type_must_agree(client: AppClient, write, method: str, path: str, body) -> None:
    stop_clock(client)
    write(categories={"user_features": {"a": 0}})
    joiner = "&" if "?" in path else "?"
    agreeing = client.request(method, f"{path}{joiner}entity_type=bright_uid&table_type=bright_uid", json=body)
    assert agreeing.status_code == 200, agreeing.text
    before = client.get("/api/v1/get/item/user-123/user_features").json()["features"]
    for query in ("entity_type=bright_uid&table_type=account_id", "table_type=bright_uid&entity_type=account_id"):
        response = client.request(method, f"{path}{joiner}{query}", json=body)
        assert response.status_code == 422
        assert response.json()["detail"][0]["loc"] == ["query", "table_type"]
        assert "disagree" in response.json()["detail"][0]["msg"]
    unknown = client.request(method, f"{path}{joiner}table_type=merchant_id", json=body)
    assert unknown.status_code == 422
    assert "merchant_id" in unknown.json()["detail"][0]["msg"]
    assert client.get("/api/v1/get/item/user-123/user_features").json()["features"] == before


@pytest.mark.parametrize(
    "path",
    [
        "/api/v1/get/item/user-123/user_features?table_typ=account_id",
        "/api/v1/get/item/user-123/user_features?entity=account_id",
        "/api/v1/get/item/user-123/user_features?entity_type=account_id&entity_type=bright_uid",
    ],
)
def test_a_misspelt_or_repeated_parameter_never_serves_another_entity(client: TestClient, write, path: str) -> None:
    write(categories={"user_features": {"a": 1}})
    response = client.get(path)
    assert response.status_code == 422
    assert response.json()["error"] == "validation_error"


def test_earlier_write_replaces_each_category_atomically(client: TestClient, write) -> None:
    write(categories={"user_features": {"age": 30, "city": "SF"}, "credit_features": {"score": 1}})
    response = earlier_write(client, "user-123", {"user_features": {"income": 5}, "trans_features": {"n": 2}})
    assert response.status_code == 200, response.text
    assert response.json()["categories_updated"] == ["user_features", "trans_features"]
    assert response.json()["categories_skipped"] == []
    read = client.get("/api/v1/get/item/user-123/user_features").json()["features"]
    assert read["data"] == {"income": 5}
    assert read["metadata"]["source"] == "prediction_service"
    assert client.get("/api/v1/get/item/user-123/credit_features").json()["features"]["data"] == {"score": 1}

    refused = earlier_write(client, "user-123", {"user_features": {"income": 6}, "made_up": {"x": 1}})
    assert refused.status_code == 422
    assert "made_up" in refused.json()["detail"][0]["msg"]
    assert client.get("/api/v1/get/item/user-123/user_features").json()["features"]["data"] == {"income": 5}


def test_earlier_write_meta_comes_from_the_query(client: TestClient) -> None:
    response = earlier_write(
        client, "user-123", {"user_features": {"a": 1}}, compute_id="job-7", ttl=60, event_time="2025-01-01T00:00:00Z"
    )
    assert response.status_code == 200, response.text
    metadata = client.get("/api/v1/get/item/user-123/user_features").json()["features"]["metadata"]
    assert metadata["compute_id"] == "job-7"
    assert metadata["ttl"] == 60
    assert metadata["expires_at"] is not None
    assert metadata["event_time"].startswith("2025-01-01T00:00:00")
    older = earlier_write(client, "user-123", {"user_features": {"a": 2}}, event_time="2024-01-01T00:00:00+00:00")
    assert older.json()["categories_updated"] == []
    assert older.json()["categories_skipped"] == ["user_features"]
    assert client.get("/api/v1/get/item/user-123/user_features").json()["features"]["data"] == {"a": 1}


@pytest.mark.parametrize(
    ("params", "body"),
    [
        ({}, {}),
        ({}, {"user_features": {}}),
        ({}, {"user_features": {"bad name": 1}}),
        ({}, {"bad:category": {"a": 1}}),
        ({}, {"user_features": {"a": 2**64}}),
        ({}, {"user_features": ["a"]}),
        ({"ttl": 0}, {"user_features": {"a": 1}}),
        ({"ttl": "soon"}, {"user_features": {"a": 1}}),
        ({"event_time": "yesterday"}, {"user_features": {"a": 1}}),
        ({"compute_id": "a\nb"}, {"user_features": {"a": 1}}),
        ({"compute_id": "x" * 257}, {"user_features": {"a": 1}}),
    ],
)
def test_invalid_earlier_writes_are_422_before_authorisation(client: AppClient, params: dict, body: Any) -> None:
    """A malformed write is a 422 whoever sends it: here with no writer named at all."""
    response = client.post("/api/v1/items/user-123", params=params, json=body)
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_error"
    assert client.run(client.app.state.runtime.store.outbox_stats).pending == 0


def test_earlier_write_keeps_the_current_limits(make_client) -> None:
    client = make_client(max_categories_per_write=2, max_features_per_category=2)
    three = {name: {"a": 1} for name in ("user_features", "credit_features", "trans_features")}
    assert earlier_write(client, "u", three).status_code == 422
    assert earlier_write(client, "u", {"user_features": {"a": 1, "b": 2, "c": 3}}).status_code == 422
    assert earlier_write(client, "u", {"user_features": {"a": 1}}, ttl=10**12).status_code == 422
    assert (
        client.post(
            "/api/v1/items/u?source=prediction_service",
            content=b'{"user_features": {"a": NaN}}',
            headers={"Content-Type": "application/json"},
        ).status_code
        == 422
    )
    not_json = client.post(
        "/api/v1/items/u?source=prediction_service", content=b"a=1", headers={"Content-Type": "text/plain"}
    )
    assert not_json.status_code == 415


def test_earlier_write_writer_rules(client: TestClient) -> None:
    assert earlier_write(client, "u", {"user_features": {"a": 1}}, source="api").status_code == 403
    assert client.get("/api/v1/get/item/u/user_features").status_code == 404


def test_earlier_write_with_keys_the_key_decides(make_auth_client, api_keys: dict[str, str]) -> None:
    client = make_auth_client()
    writer = key(api_keys["writer"])
    body = {"user_features": {"a": 1}}
    assert client.post("/api/v1/items/u", json=body).status_code == 401
    assert client.post("/api/v1/items/u", json=body, headers=key(api_keys["reader"])).status_code == 403
    assert client.post("/api/v1/items/u?source=batch_job", json=body, headers=writer).status_code == 403
    assert client.post("/api/v1/items/u", json={"trans_features": {"a": 1}}, headers=writer).status_code == 403
    assert client.post("/api/v1/items/u?source=backfill", json=body, headers=writer).status_code == 200
    stored = client.get("/api/v1/get/item/u/user_features", headers=key(api_keys["reader"])).json()
    assert stored["features"]["metadata"]["source"] == "backfill"


def published(caplog: pytest.LogCaptureFixture, count: int) -> list[dict[str, Any]]:
    deadline = time.monotonic() + 5
    while True:
        events = [record.__dict__["event"] for record in caplog.records if record.name == "feature_store.events"]
        if len(events) >= count or time.monotonic() > deadline:
            return events
        time.sleep(0.02)


def test_earlier_write_announces_each_category_written(client: TestClient, caplog) -> None:
    caplog.set_level(logging.INFO, logger="feature_store.events")
    body = {"user_features": {"age": 30, "city": "SF"}, "credit_features": {"score": 750}}
    assert earlier_write(client, "user-123", body, compute_id="job-1").status_code == 200
    events = published(caplog, 2)
    # One write's categories carry no order between them: the outbox may hand them over in any order.
    assert sorted((event["resource_name"], event["features"]) for event in events) == [
        ("credit_features", ["score"]),
        ("user_features", ["age", "city"]),
    ]
    for event in events:
        assert event["event_type"] == "feature_available"
        assert event["entity_type"] == "bright_uid"
        assert event["entity_id"] == "user-123"
        assert event["compute_id"] == "job-1"
    skipped = earlier_write(client, "user-123", {"user_features": {"age": 1}}, event_time="2000-01-01T00:00:00Z")
    assert skipped.json()["categories_skipped"] == ["user_features"]
    # A later write's event is published after any the skipped write could have left (the relay goes by
    # commit time), so once it is out, the skipped category's absence is known without waiting on a timeout.
    assert earlier_write(client, "user-456", {"user_features": {"age": 2}}).status_code == 200
    events = published(caplog, 3)
    assert [event["entity_id"] for event in events[2:]] == ["user-456"], "a skipped category was announced"


@pytest.mark.backends("sqlite")
def test_earlier_calls_have_their_own_route_templates(make_client, statsd, caplog) -> None:
    client = make_client(**statsd.settings)
    caplog.set_level(logging.INFO, logger="feature_store.access")
    assert earlier_write(client, "user-123", {"user_features": {"a": 1}}).status_code == 200
    assert client.post("/api/v1/get/item/user-123", json={"user_features": []}).status_code == 200
    routes = [record.route for record in caplog.records if record.name == "feature_store.access"]
    assert routes == ["/api/v1/items/{entity_value}", "/api/v1/get/item/{entity_value}"]
    expected = {
        "http.request.count;endpoint=-api-v1-items-entity_value;method=POST;status=200": 1,
        "http.request.count;endpoint=-api-v1-get-item-entity_value;method=POST;status=200": 1,
    }
    counters = statsd.wait_for("counters", expected)
    assert {name: counters.get(name) for name in expected} == expected


@pytest.mark.backends("sqlite")
def test_earlier_operations_are_deprecated_and_their_examples_work(client: TestClient) -> None:
    """What Swagger UI's "Try it out" sends by default: each parameter's first OpenAPI example (it ignores
    JSON Schema ones) and the body schema's first example; tests/api/test_docs.py runs it in a browser."""
    document = client.get("/openapi.json").json()
    for path in ("/api/v1/items/{entity_value}", "/api/v1/get/item/{entity_value}"):
        operation = document["paths"][path]["post"]
        assert operation["deprecated"] is True
        params = {
            (parameter["in"], parameter["name"]): next(iter(parameter["examples"].values()))["value"]
            for parameter in operation["parameters"]
            if "examples" in parameter
        }
        schema_name = operation["requestBody"]["content"]["application/json"]["schema"]["$ref"].rsplit("/", 1)[1]
        body = document["components"]["schemas"][schema_name]["examples"][0]
        url = path.replace("{entity_value}", params.pop(("path", "entity_value")))
        response = client.post(url, params={name: value for (_, name), value in params.items()}, json=body)
        assert response.status_code == 200, response.text
    assert not any(
        operation.get("deprecated")
        for path, item in document["paths"].items()
        for operation in item.values()
        if path not in ("/api/v1/items/{entity_value}", "/api/v1/get/item/{entity_value}")
    )

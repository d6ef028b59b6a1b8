"""The feature registry through the API: writes refused on every backend and every write path with
nothing stored and no event, the answer's wording, writers, entity types, default TTLs, the
`write.rejected` metric, the exported max ages, start-up refusals, and the discovery endpoints with their ETags."""

import logging
from pathlib import Path
from typing import Any

import pytest

from core.exceptions import ConfigurationError
from main import create_app
from tests.conftest import AppClient
from tests.factories import write_body

REGISTRY = """
categories:
  user_features:
    description: Demographics from the nightly profile job
    owner: profile-team
    entity_types: [bright_uid]
    default_ttl_seconds: 86400
    max_age_seconds: 129600
    writers: [prediction_service, backfill]
    mode: strict
    features:
      age: {type: int, description: Age in years}
      income: {type: float}
      verified: {type: bool}
      city: {type: string, nullable: true}
      scores: {type: "list<float>"}
      profile: {type: map}
      extra: {type: json}
  credit_features:
    owner: risk-team
    features:
      credit_score: {type: int}
  trans_features: {}
"""
VALID = {
    "age": 30,
    "income": 60000,
    "verified": True,
    "city": None,
    "scores": [0.5, 1, 2.25],
    "profile": {"tier": "gold", "since": 2019},
    "extra": [1, "two", None],
}


@pytest.fixture
def registry_file(tmp_path: Path) -> Path:
    path = tmp_path / "registry.yaml"
    path.write_text(REGISTRY)
    return path


@pytest.fixture
def client(make_client, registry_file: Path) -> AppClient:
    """The app with the registry above (this module's `client`)."""
    return make_client(feature_registry_file=str(registry_file))


def stored(client: AppClient, category: str = "user_features", entity_value: str = "user-123", **query: str):
    return client.get(f"/api/v1/get/item/{entity_value}/{category}", params=query)


def events(caplog: pytest.LogCaptureFixture) -> list[dict[str, Any]]:
    return [record.__dict__["event"] for record in caplog.records if record.name == "feature_store.events"]


def assert_nothing_written(client: AppClient, caplog: pytest.LogCaptureFixture, *categories: str) -> None:
    for category in categories:
        assert stored(client, category).status_code == 404, category
    assert client.run(client.app.state.runtime.store.outbox_stats).pending == 0
    assert events(caplog) == []


def test_a_write_of_every_declared_type_round_trips(client: AppClient, expected_type) -> None:
    response = client.post("/api/v1/items", json=write_body(categories={"user_features": VALID}))
    assert response.status_code == 200, response.text
    answer = stored(client).json()["features"]
    assert answer["data"] == VALID
    assert {name: type(value) for name, value in answer["data"].items()} == {
        name: expected_type(value) for name, value in VALID.items()
    }
    assert answer["metadata"]["ttl"] == 86400, "the registry's default TTL applies"


def test_a_type_mismatch_is_422_naming_category_feature_and_types(client: AppClient, caplog) -> None:
    caplog.set_level(logging.INFO, logger="feature_store.events")
    body = write_body(categories={"credit_features": {"credit_score": 750}, "user_features": {**VALID, "age": "30"}})
    response = client.post("/api/v1/items", json=body)
    assert response.status_code == 422
    answer = response.json()
    assert (answer["error"], answer["request_id"]) == ("validation_error", response.headers["x-request-id"])
    assert answer["detail"] == [
        {
            "type": "type_mismatch",
            "loc": ["body", "data", "feature_list", 1, "features", "age"],
            "msg": "category 'user_features', feature 'age': expected int, received string",
            "category": "user_features",
            "feature": "age",
            "expected": "int",
            "received": "string",
        }
    ]
    assert_nothing_written(client, caplog, "credit_features", "user_features")


@pytest.mark.parametrize(
    ("features", "reason", "feature", "expected", "received"),
    [
        ({"age": None}, "null", "age", "int", "null"),
        ({"age": 30.5}, "type_mismatch", "age", "int", "float"),
        ({"verified": 1}, "type_mismatch", "verified", "bool", "int"),
        ({"scores": [1.5, "2"]}, "type_mismatch", "scores", "list<float>", "list<float|string>"),
        ({"profile": ["tier"]}, "type_mismatch", "profile", "map", "list<string>"),
        ({"extra": None}, "null", "extra", "json", "null"),
        ({"age": 30, "credit_scroe": 1}, "undeclared", "credit_scroe", None, "int"),
    ],
)
def test_each_refusal_writes_nothing(
    client: AppClient, caplog, features: dict, reason: str, feature: str, expected: str | None, received: str
) -> None:
    caplog.set_level(logging.INFO, logger="feature_store.events")
    response = client.post(
        "/api/v1/items",
        json={
            "meta": {"source": "prediction_service"},
            "data": {"entity_value": "user-123", "category": "user_features", "features": features},
        },
    )
    assert response.status_code == 422, response.text
    (entry,) = response.json()["detail"]
    assert entry["loc"] == ["body", "data", "features", feature]
    assert (entry["type"], entry["feature"], entry["expected"], entry["received"]) == (
        reason,
        feature,
        expected,
        received,
    )
    assert_nothing_written(client, caplog, "user_features")


def test_an_open_category_accepts_undeclared_features_and_types_declared_ones(client: AppClient) -> None:
    body = write_body(categories={"credit_features": {"credit_score": 750, "note": "anything", "n": None}})
    assert client.post("/api/v1/items", json=body).status_code == 200
    assert stored(client, "credit_features").json()["features"]["data"] == {
        "credit_score": 750,
        "note": "anything",
        "n": None,
    }
    refused = client.post("/api/v1/items", json=write_body(categories={"credit_features": {"credit_score": 7.5}}))
    assert refused.status_code == 422
    assert refused.json()["detail"][0]["received"] == "float"
    assert stored(client, "credit_features").json()["features"]["data"]["credit_score"] == 750


def test_the_earlier_write_is_checked_too(client: AppClient, caplog) -> None:
    caplog.set_level(logging.INFO, logger="feature_store.events")
    response = client.post(
        "/api/v1/items/user-123?source=prediction_service",
        json={"trans_features": {"x": 1}, "user_features": {"age": "thirty"}},
    )
    assert response.status_code == 422
    (entry,) = response.json()["detail"]
    assert entry["loc"] == ["body", "data", "feature_list", 1, "features", "age"]
    assert (entry["category"], entry["expected"], entry["received"]) == ("user_features", "int", "string")
    assert_nothing_written(client, caplog, "trans_features", "user_features")


def test_a_category_is_written_only_for_its_entity_types(client: AppClient) -> None:
    body = write_body("acct-1", {"user_features": {"age": 30}}, entity_type="account_id")
    response = client.post("/api/v1/items", json=body)
    assert response.status_code == 422
    assert response.json()["detail"][0]["loc"] == ["body", "data", "feature_list", 0, "category"]
    assert "not declared for entity type 'account_id'" in response.json()["detail"][0]["msg"]
    ok = write_body("acct-1", {"credit_features": {"credit_score": 1}}, entity_type="account_id")
    assert client.post("/api/v1/items", json=ok).status_code == 200


def test_categories_off_the_registry_are_refused(client: AppClient) -> None:
    response = client.post("/api/v1/items", json=write_body(categories={"transaction_features": {"a": 1}}))
    assert response.status_code == 422
    assert "'transaction_features' is not allowed" in response.json()["detail"][0]["msg"]
    many = client.post(
        "/api/v1/get/items",
        json={"data": {"entity_value": "user-123", "feature_list": ["transaction_features:*"]}},
    )
    assert many.json()["unavailable_feature_categories"] == ["transaction_features"]


def test_writers_narrow_who_may_write_a_category(make_client, registry_file: Path, caplog) -> None:
    caplog.set_level(logging.INFO, logger="feature_store.events")
    client = make_client(feature_registry_file=str(registry_file), write_allowed_sources="prediction_service,batch_job")
    body = write_body(categories={"trans_features": {"x": 1}, "user_features": {"age": 30}}, source="batch_job")
    response = client.post("/api/v1/items", json=body)
    assert response.status_code == 403
    assert response.json()["detail"] == (
        "source 'batch_job' is not among the registry's writers of categories ['user_features']"
    )
    assert_nothing_written(client, caplog, "trans_features", "user_features")
    alone = write_body(categories={"trans_features": {"x": 1}}, source="batch_job")
    assert client.post("/api/v1/items", json=alone).status_code == 200
    # The registry never widens: backfill is one of its writers, but not an allowed source without keys.
    assert client.post("/api/v1/items", json=write_body(source="backfill")).status_code == 403


def test_with_keys_the_key_and_the_registry_must_both_allow(
    make_auth_client, registry_file: Path, api_keys: dict[str, str]
) -> None:
    client = make_auth_client(feature_registry_file=str(registry_file))
    writer = {"X-API-Key": api_keys["writer"]}
    body = write_body(categories={"user_features": {"age": 30}}, source="backfill")
    assert client.post("/api/v1/items", json=body, headers=writer).status_code == 200
    any_writer = {"X-API-Key": api_keys["any_writer"]}  # source batch_job, every category
    body = write_body(categories={"user_features": {"age": 31}}, source="batch_job")
    refused = client.post("/api/v1/items", json=body, headers=any_writer)
    assert refused.status_code == 403
    assert "registry's writers" in refused.json()["detail"]
    reader = {"X-API-Key": api_keys["reader"]}
    assert client.get("/api/v1/get/item/user-123/user_features", headers=reader).json()["features"]["data"] == {
        "age": 30
    }


def test_a_type_violation_is_422_before_the_writer_is_judged(client: AppClient) -> None:
    body = write_body(categories={"user_features": {"age": "x"}}, source="nobody")
    assert client.post("/api/v1/items", json=body).status_code == 422


@pytest.mark.backends("sqlite")
def test_rejected_writes_are_counted_by_category_and_reason(make_client, registry_file: Path, statsd) -> None:
    client = make_client(feature_registry_file=str(registry_file), **statsd.settings)
    for features in ({"age": "x"}, {"age": "x", "income": "y", "city": 1, "scores": None}, {"credit_scroe": 1}):
        assert client.post("/api/v1/items", json=write_body(categories={"user_features": features})).status_code == 422
    assert (
        client.post(
            "/api/v1/items", json=write_body(categories={"credit_features": {"credit_score": None}})
        ).status_code
        == 422
    )
    assert client.post("/api/v1/items", json=write_body(categories={"user_features": {"age": 1}})).status_code == 200
    expected = {
        "write.rejected;category=user_features;reason=type_mismatch": 2,
        "write.rejected;category=user_features;reason=null": 1,
        "write.rejected;category=user_features;reason=undeclared": 1,
        "write.rejected;category=credit_features;reason=null": 1,
    }
    counters = statsd.wait_for("counters", expected)
    assert {name: value for name, value in counters.items() if name.startswith("write.rejected")} == expected


@pytest.mark.backends("sqlite")
def test_declared_max_ages_are_exported_at_start(make_client, registry_file: Path, statsd) -> None:
    make_client(feature_registry_file=str(registry_file), **statsd.settings)
    gauges = statsd.wait_for("gauges", {"registry.max_age_seconds;category=user_features": 129600})
    assert {name: value for name, value in gauges.items() if name.startswith("registry.")} == {
        "registry.max_age_seconds;category=user_features": 129600
    }


@pytest.mark.backends("sqlite")
def test_bad_registries_refuse_to_start(make_settings, tmp_path: Path, api_keys: dict[str, str]) -> None:
    bad = tmp_path / "bad.yaml"
    bad.write_text("categories:\n  user_features:\n    features:\n      age: {type: integer}\n")
    with pytest.raises(ConfigurationError, match="category 'user_features', feature 'age', field 'type'"):
        create_app(make_settings(feature_registry_file=str(bad)))
    # API keys may name only the registry's categories (the `writer` key names credit_features).
    only_users = tmp_path / "users.yaml"
    only_users.write_text("categories:\n  user_features: {}\n")
    keys = {"auth_enabled": True, "api_keys_file": str(tmp_path / "keys.json")}
    with pytest.raises(
        ConfigurationError, match=r"^API_KEYS_FILE .*names categories not allowed .*\['credit_features'\]"
    ):
        create_app(make_settings(feature_registry_file=str(only_users), **keys))


# --- Discovery: storage-agnostic, so on one backend ---------------------------------------------------------


@pytest.mark.backends("sqlite")
def test_the_registry_is_served_with_defaults_filled_in(client: AppClient) -> None:
    response = client.get("/api/v1/registry")
    assert response.status_code == 200
    assert response.headers["content-type"] == "application/json"
    answer = response.json()
    assert answer["entity_types"] == ["account_id", "bright_uid"]
    assert list(answer["categories"]) == ["user_features", "credit_features", "trans_features"]
    users = answer["categories"]["user_features"]
    assert {key: value for key, value in users.items() if key != "features"} == {
        "description": "Demographics from the nightly profile job",
        "owner": "profile-team",
        "entity_types": ["bright_uid"],
        "default_ttl_seconds": 86400,
        "max_age_seconds": 129600,
        "writers": ["prediction_service", "backfill"],
        "mode": "strict",
        "history": None,
    }
    assert users["features"]["age"] == {"type": "int", "nullable": False, "description": "Age in years"}
    assert users["features"]["city"] == {"type": "string", "nullable": True, "description": None}
    assert users["features"]["scores"]["type"] == "list<float>"
    assert answer["categories"]["trans_features"] == {
        "description": None,
        "owner": None,
        "entity_types": ["account_id", "bright_uid"],
        "default_ttl_seconds": None,
        "max_age_seconds": None,
        "writers": None,
        "mode": "open",
        "history": None,
        "features": {},
    }
    one = client.get("/api/v1/registry/user_features")
    assert one.status_code == 200
    assert one.json() == users


@pytest.mark.backends("sqlite")
def test_etags_answer_304_while_nothing_changed(client: AppClient) -> None:
    for path in ("/api/v1/registry", "/api/v1/registry/credit_features"):
        first = client.get(path)
        etag = first.headers["etag"]
        assert first.headers["cache-control"] == "no-cache"
        for header in (etag, f"W/{etag}", f'"other", {etag}', "*"):
            again = client.get(path, headers={"If-None-Match": header})
            assert again.status_code == 304, header
            assert again.content == b""
            assert again.headers["etag"] == etag
        changed = client.get(path, headers={"If-None-Match": '"something-else"'})
        assert (changed.status_code, changed.content) == (200, first.content)
    assert (
        client.get("/api/v1/registry").headers["etag"] != client.get("/api/v1/registry/user_features").headers["etag"]
    )


@pytest.mark.backends("sqlite")
def test_an_unknown_category_is_404(client: AppClient) -> None:
    response = client.get("/api/v1/registry/transaction_features")
    assert response.status_code == 404
    assert response.json()["error"] == "not_found"
    assert "transaction_features" in response.json()["detail"]


@pytest.mark.backends("sqlite")
def test_without_a_file_the_registry_lists_the_allowed_categories_open(make_client) -> None:
    client = make_client(allowed_categories="a_features,b_features", category_default_ttl_seconds={"b_features": 60})
    categories = client.get("/api/v1/registry").json()["categories"]
    assert list(categories) == ["a_features", "b_features"]
    assert [(c["mode"], c["features"], c["default_ttl_seconds"]) for c in categories.values()] == [
        ("open", {}, None),
        ("open", {}, 60),
    ]


@pytest.mark.backends("sqlite")
def test_discovery_needs_the_read_scope_when_keys_are_on(
    make_auth_client, registry_file: Path, api_keys: dict[str, str]
) -> None:
    client = make_auth_client(feature_registry_file=str(registry_file))
    for path in ("/api/v1/registry", "/api/v1/registry/user_features"):
        assert client.get(path).status_code == 401
        assert client.get(path, headers={"X-API-Key": api_keys["operator"]}).status_code == 403
        assert client.get(path, headers={"X-API-Key": api_keys["reader"]}).status_code == 200

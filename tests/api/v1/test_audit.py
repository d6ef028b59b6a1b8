"""The audit trail: who wrote a category (returned on reads), who erased it (in its tombstone, with the
request id), the actor in the events decoded from Kafka, and the caller in the access log."""

import logging
from typing import Any

import pytest

from devservers import LocalIssuer
from tests.components.events.kafka_helpers import consume
from tests.conftest import AppClient
from tests.factories import write_body

ITEM = "/api/v1/get/item/user-123/user_features"


def key(value: str) -> dict[str, str]:
    return {"X-API-Key": value}


def tombstone(client: AppClient, value: str, category: str) -> dict[str, Any]:
    runtime = client.app.state.runtime
    entity_type = runtime.settings.entity_types["bright_uid"]
    found = client.run(runtime.store.read, entity_type, value, {category: None})
    return found[category].metadata


def test_a_write_records_its_writer_and_reads_return_it(make_auth_client, api_keys: dict[str, str]) -> None:
    client = make_auth_client()
    assert client.post("/api/v1/items", json=write_body(), headers=key(api_keys["writer"])).status_code == 200
    metadata = client.get(ITEM, headers=key(api_keys["reader"])).json()["features"]["metadata"]
    assert metadata["written_by"] == "key:writer"
    many = client.post(
        "/api/v1/get/items",
        json={"data": {"entity_value": "user-123", "feature_list": ["user_features:*"]}},
        headers=key(api_keys["reader"]),
    ).json()
    assert many["items"]["user_features"]["features"]["metadata"]["written_by"] == "key:writer"


def test_without_keys_the_writer_is_unknown(client: AppClient) -> None:
    assert client.post("/api/v1/items", json=write_body()).status_code == 200
    assert client.get(ITEM).json()["features"]["metadata"]["written_by"] is None


def test_an_erasure_records_who_asked_and_the_request(make_auth_client, api_keys: dict[str, str]) -> None:
    client = make_auth_client()
    assert client.post("/api/v1/items", json=write_body(), headers=key(api_keys["writer"])).status_code == 200
    response = client.delete(
        "/api/v1/items/user-123",
        params={"category": "user_features"},
        headers=key(api_keys["any_writer"]) | {"X-Request-ID": "erasure-ticket-42"},
    )
    assert response.status_code == 200, response.text
    metadata = tombstone(client, "user-123", "user_features")
    assert metadata["erased_by"] == "key:any_writer"
    assert metadata["request_id"] == "erasure-ticket-42"
    # Data written again starts afresh: the erasure's fields do not stick to it.
    assert client.post("/api/v1/items", json=write_body(), headers=key(api_keys["writer"])).status_code == 200
    metadata = tombstone(client, "user-123", "user_features")
    assert {"erased_by", "request_id", "deleted_at"}.isdisjoint(metadata)
    assert metadata["written_by"] == "key:writer"


@pytest.mark.backends("sqlite")
def test_a_token_caller_is_the_actor(make_jwt_client, oidc_issuer: LocalIssuer) -> None:
    client = make_jwt_client()
    token = oidc_issuer.token(sub="job-7", groups=["feature-writers"], client_id="airflow")
    headers = {"Authorization": f"Bearer {token}"}
    body = write_body()
    del body["metadata"]["source"]
    assert client.post("/api/v1/items", json=body, headers=headers).status_code == 200
    assert client.get(ITEM, headers=headers).json()["features"]["metadata"]["written_by"] == "sub:job-7 client:airflow"


@pytest.mark.backends("sqlite")
def test_events_carry_the_actor(make_auth_client, api_keys, kafka_settings, kafka_broker, kafka_topic) -> None:
    client = make_auth_client(**kafka_settings)
    assert client.post("/api/v1/items", json=write_body(), headers=key(api_keys["writer"])).status_code == 200
    deleted = client.delete(
        "/api/v1/items/user-123", params={"category": "user_features"}, headers=key(api_keys["any_writer"])
    )
    assert deleted.status_code == 200
    received = consume(kafka_broker.bootstrap, kafka_topic, distinct=2)
    actors = {item.event["event_type"]: item.event["actor"] for item in received}
    assert actors == {"feature_available": "key:writer", "feature_deleted": "key:any_writer"}


@pytest.mark.backends("sqlite")
def test_the_access_log_names_the_caller_and_audited_reads(make_auth_client, api_keys, caplog) -> None:
    client = make_auth_client(audit_reads=True)
    with caplog.at_level(logging.INFO, logger="feature_store.access"):
        client.get(ITEM, headers=key(api_keys["reader"]))
        client.post(
            "/api/v1/get/items/batch",
            json={
                "data": {"entity_type": "bright_uid", "entity_values": ["a", "b"], "feature_list": ["user_features:*"]}
            },
            headers=key(api_keys["reader"]),
        )
    lines = [record for record in caplog.records if record.name == "feature_store.access"]
    assert lines[0].caller == "key:reader" and lines[0].entity_id == "user-123"
    assert lines[1].entity_ids == ["a", "b"]


@pytest.mark.backends("sqlite")
def test_reads_are_not_audited_by_default(make_auth_client, api_keys, caplog) -> None:
    client = make_auth_client()
    with caplog.at_level(logging.INFO, logger="feature_store.access"):
        client.get(ITEM, headers=key(api_keys["reader"]))
    (line,) = [record for record in caplog.records if record.name == "feature_store.access"]
    assert line.caller == "key:reader" and not hasattr(line, "entity_id")

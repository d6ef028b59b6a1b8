"""API keys over HTTP: who may read, write and warm up; the key decides the writer; rate limits."""

import logging

import pytest
from fastapi.testclient import TestClient

from tests.factories import read_body, write_body

# Storage-agnostic: the embedded store serves these as well as any backend would.
pytestmark = pytest.mark.backends("sqlite")

ITEM = "/api/v1/get/item/user-123/user_features"


def key(value: str) -> dict[str, str]:
    return {"X-API-Key": value}


@pytest.fixture
def client(make_auth_client) -> TestClient:
    return make_auth_client()


def stored_source(client: TestClient, api_keys: dict[str, str], category: str = "user_features") -> str | None:
    response = client.get(f"/api/v1/get/item/user-123/{category}", headers=key(api_keys["reader"]))
    return response.json()["features"]["metadata"]["source"] if response.status_code == 200 else None


@pytest.mark.parametrize("path", ["/api/v1/health", "/api/v1/live", "/api/v1/ready"])
def test_probes_need_no_key(client: TestClient, path: str) -> None:
    assert client.get(path).status_code == 200


@pytest.mark.parametrize(
    "headers",
    [{}, {"X-API-Key": ""}, {"X-API-Key": "fs_not-a-key"}, {"Authorization": "Basic abc"}, {"X-API-Key": "k" * 5000}],
)
def test_missing_or_unknown_key_is_401(client: TestClient, api_keys: dict[str, str], headers: dict[str, str]) -> None:
    for response in (
        client.get(ITEM, headers=headers),
        client.post("/api/v1/get/items", json=read_body("user-123", "user_features:*"), headers=headers),
        client.post("/api/v1/items", json=write_body(), headers=headers),
        client.post("/api/v1/warmup", headers=headers),
    ):
        assert response.status_code == 401, response.text
        assert response.json()["error"] == "unauthorized"
        assert response.headers["www-authenticate"] == 'ApiKey realm="feature-store", header="X-API-Key"'
    assert stored_source(client, api_keys) is None


def test_reader_reads_with_either_header(client: TestClient, api_keys: dict[str, str]) -> None:
    assert client.get(ITEM, headers=key(api_keys["reader"])).status_code == 404
    assert client.get(ITEM, headers={"Authorization": f"Bearer {api_keys['reader']}"}).status_code == 404
    assert client.get(ITEM, headers={"Authorization": f"bearer {api_keys['reader']}"}).status_code == 404


def test_reader_may_not_write_or_warm_up(client: TestClient, api_keys: dict[str, str]) -> None:
    response = client.post("/api/v1/items", json=write_body(), headers=key(api_keys["reader"]))
    assert response.status_code == 403
    assert "features:write" in response.json()["detail"]
    assert client.post("/api/v1/warmup", headers=key(api_keys["reader"])).status_code == 403
    assert stored_source(client, api_keys) is None


def test_write_only_key_may_not_read(client: TestClient, api_keys: dict[str, str]) -> None:
    assert client.get(ITEM, headers=key(api_keys["any_writer"])).status_code == 403


def test_warmup_needs_the_admin_scope(client: TestClient, api_keys: dict[str, str]) -> None:
    assert client.post("/api/v1/warmup", headers=key(api_keys["writer"])).status_code == 403
    assert client.post("/api/v1/warmup", headers=key(api_keys["operator"])).status_code == 200
    assert client.get("/api/v1/warmup", headers=key(api_keys["writer"])).status_code == 403
    assert client.get("/api/v1/warmup", headers=key(api_keys["operator"])).status_code == 200


def test_writer_without_body_source_stores_its_first_source(client: TestClient, api_keys: dict[str, str]) -> None:
    body = write_body()
    del body["metadata"]["source"]
    response = client.post("/api/v1/items", json=body, headers=key(api_keys["writer"]))
    assert response.status_code == 200, response.text
    assert stored_source(client, api_keys) == "prediction_service"


def test_writer_may_name_any_of_its_sources(client: TestClient, api_keys: dict[str, str]) -> None:
    response = client.post("/api/v1/items", json=write_body(source="backfill"), headers=key(api_keys["writer"]))
    assert response.status_code == 200
    assert stored_source(client, api_keys) == "backfill"


def test_body_source_the_key_does_not_own_is_403(client: TestClient, api_keys: dict[str, str]) -> None:
    response = client.post("/api/v1/items", json=write_body(source="batch_job"), headers=key(api_keys["writer"]))
    assert response.status_code == 403
    assert "batch_job" in response.json()["detail"]
    assert stored_source(client, api_keys) is None


def test_category_outside_the_key_is_403_and_writes_nothing(client: TestClient, api_keys: dict[str, str]) -> None:
    body = write_body(categories={"user_features": {"a": 1}, "trans_features": {"b": 2}})
    response = client.post("/api/v1/items", json=body, headers=key(api_keys["writer"]))
    assert response.status_code == 403
    assert "trans_features" in response.json()["detail"]
    assert stored_source(client, api_keys) is None


def test_wildcard_key_writes_every_allowed_category(client: TestClient, api_keys: dict[str, str]) -> None:
    body = write_body(source="batch_job", categories={"trans_features": {"b": 2}})
    assert client.post("/api/v1/items", json=body, headers=key(api_keys["any_writer"])).status_code == 200
    assert stored_source(client, api_keys, "trans_features") == "batch_job"


def test_malformed_write_is_422_before_the_writer_check(client: TestClient, api_keys: dict[str, str]) -> None:
    body = write_body(source="intruder", categories={"not_allowed": {"a": 1}})
    assert client.post("/api/v1/items", json=body, headers=key(api_keys["writer"])).status_code == 422


def test_keys_never_reach_the_log(client: TestClient, api_keys: dict[str, str], caplog) -> None:
    caplog.set_level(logging.DEBUG)
    client.get(ITEM, headers=key(api_keys["reader"]))
    client.post("/api/v1/items", json=write_body(source="batch_job"), headers=key(api_keys["writer"]))
    client.get(ITEM, headers=key("fs_guessed-key"))
    logged = caplog.text
    assert api_keys["reader"] not in logged and api_keys["writer"] not in logged
    assert "fs_guessed-key" not in logged


def test_key_is_not_needed_when_auth_is_off(make_client) -> None:
    plain = make_client()
    assert plain.post("/api/v1/items", json=write_body()).status_code == 200
    assert plain.get(ITEM).status_code == 200


def test_rate_limit_answers_429_with_retry_after(make_auth_client, api_keys: dict[str, str]) -> None:
    client = make_auth_client(rate_limit_per_second=0.001, rate_limit_burst=2)
    headers = key(api_keys["reader"])
    assert [client.get(ITEM, headers=headers).status_code for _ in range(2)] == [404, 404]
    limited = client.get(ITEM, headers=headers)
    assert limited.status_code == 429
    assert limited.json()["error"] == "rate_limited"
    assert int(limited.headers["retry-after"]) >= 1
    assert client.get(ITEM, headers=key(api_keys["writer"])).status_code == 404, "buckets are per key"
    assert client.get("/api/v1/health").status_code == 200


def test_openapi_documents_the_key_scheme(client: TestClient) -> None:
    schema = client.get("/openapi.json").json()
    assert schema["components"]["securitySchemes"]["ApiKey"] == {
        "type": "apiKey",
        "in": "header",
        "name": "X-API-Key",
        "description": "Required when AUTH_ENABLED=true; `Authorization: Bearer <key>` works too.",
    }
    assert schema["components"]["securitySchemes"]["Bearer"]["scheme"] == "bearer"
    assert schema["paths"]["/api/v1/items"]["post"]["security"] == [{"ApiKey": []}, {"Bearer": []}]
    assert "security" not in schema["paths"]["/api/v1/health"]["get"]


def test_openapi_claims_no_key_when_auth_is_off(make_client) -> None:
    schema = make_client().get("/openapi.json").json()
    assert "securitySchemes" not in schema.get("components", {})
    assert all("security" not in operation for item in schema["paths"].values() for operation in item.values())

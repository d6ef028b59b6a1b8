"""HTTP-level rules: request ids, the error envelope, body size and media type."""

import pytest

from tests.conftest import AppClient
from tests.factories import write_body

# Storage-agnostic: the embedded store serves these as well as any backend would.
pytestmark = pytest.mark.backends("sqlite")


def test_generated_request_id(client: AppClient) -> None:
    first = client.get("/api/v1/health").headers["x-request-id"]
    second = client.get("/api/v1/health").headers["x-request-id"]
    assert first and second and first != second


def test_caller_request_id_is_echoed_in_header_and_error(client: AppClient) -> None:
    response = client.get("/api/v1/get/item/nobody/user_features", headers={"X-Request-ID": "abc-123"})
    assert response.headers["x-request-id"] == "abc-123"
    assert response.json()["request_id"] == "abc-123"


@pytest.mark.parametrize("header", ["x" * 200, "bad id with spaces", "<script>"])
def test_insane_request_id_is_replaced(client: AppClient, header: str) -> None:
    response = client.get("/api/v1/health", headers={"X-Request-ID": header})
    assert response.headers["x-request-id"] != header
    assert len(response.headers["x-request-id"]) == 32


def test_unknown_route_and_method_use_the_envelope(client: AppClient) -> None:
    missing = client.get("/api/v1/nope")
    assert missing.status_code == 404
    assert set(missing.json()) == {"detail", "error", "request_id"}
    wrong = client.delete("/api/v1/items")
    assert wrong.status_code == 405
    assert wrong.json()["error"] == "method_not_allowed"


def test_unexpected_exception_is_a_bare_500(client: AppClient, monkeypatch, caplog) -> None:
    def explode(*args, **kwargs):
        raise RuntimeError("secret internals")

    monkeypatch.setattr(client.app.state.runtime.store, "read", explode)
    response = client.get("/api/v1/get/item/u/user_features", headers={"X-Request-ID": "r-1"})
    assert response.status_code == 500
    assert response.json() == {"detail": "Internal server error", "error": "internal_error", "request_id": "r-1"}
    assert "secret" not in response.text
    assert response.headers["x-request-id"] == "r-1"
    [logged] = [record for record in caplog.records if record.getMessage() == "unhandled error"]
    assert logged.exc_info and logged.route == "/api/v1/get/item/{entity_value}/{category}"
    assert "/u/" not in str(vars(logged)), "the log names the route, never the entity id"


def test_store_unavailable_is_503_with_retry_after(client: AppClient, monkeypatch) -> None:
    from core.exceptions import StoreUnavailable

    def down(*args, **kwargs):
        raise StoreUnavailable("store down")

    monkeypatch.setattr(client.app.state.runtime.store, "write", down)
    response = client.post("/api/v1/items", json=write_body())
    assert response.status_code == 503
    assert response.headers["retry-after"] == "1"
    assert response.json()["error"] == "store_unavailable"


@pytest.mark.parametrize(
    "content_type", [None, "text/plain", "application/x-www-form-urlencoded", "multipart/form-data"]
)
def test_non_json_body_is_415(client: AppClient, content_type: str | None) -> None:
    headers = {"content-type": content_type} if content_type else {}
    response = client.post("/api/v1/items", content=b'{"a": 1}', headers=headers)
    assert response.status_code == 415
    assert response.json()["error"] == "unsupported_media_type"


def test_json_with_charset_is_accepted(client: AppClient) -> None:
    import json

    response = client.post(
        "/api/v1/items", content=json.dumps(write_body()), headers={"content-type": "application/json; charset=utf-8"}
    )
    assert response.status_code == 200


def test_invalid_json_is_422(client: AppClient) -> None:
    response = client.post("/api/v1/items", content=b"{not json", headers={"content-type": "application/json"})
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


def test_body_over_limit_refused_from_content_length(make_client) -> None:
    client = make_client(max_body_bytes=100)
    response = client.post("/api/v1/items", json=write_body(categories={"user_features": {"a": "x" * 200}}))
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_streamed_body_refused_when_limit_crossed(make_client) -> None:
    client = make_client(max_body_bytes=1000)

    def chunks():
        for _ in range(100):
            yield b" " * 100

    response = client.post("/api/v1/items", content=chunks(), headers={"content-type": "application/json"})
    assert response.status_code == 413
    assert response.json()["error"] == "payload_too_large"


def test_cors_allows_all_in_development(client: AppClient) -> None:
    response = client.options(
        "/api/v1/health", headers={"Origin": "http://example.test", "Access-Control-Request-Method": "GET"}
    )
    assert response.headers["access-control-allow-origin"] in ("*", "http://example.test")

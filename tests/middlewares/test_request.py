"""The request pass: what it adds to every answer, including those it gives before the app runs."""

import asyncio
from typing import Any

import pytest

from tests.conftest import AppClient

# Storage-agnostic: the embedded store serves these as well as any backend would.
pytestmark = pytest.mark.backends("sqlite")

ORIGIN = {"Origin": "http://app.example"}


def test_refused_bodies_carry_cors_headers_and_the_request_id(make_client) -> None:
    """Refused from their headers, before any route runs, yet answered as a route's error would be."""
    client = make_client(max_body_bytes=100)
    json_headers = {"content-type": "application/json", "X-Request-ID": "big-1", **ORIGIN}
    too_large = client.post("/api/v1/items", content=b"{" + b" " * 200 + b"}", headers=json_headers)
    not_json = client.post("/api/v1/items", content=b"{}", headers={"content-type": "text/plain", **ORIGIN})
    assert (too_large.status_code, too_large.json()["error"]) == (413, "payload_too_large")
    assert (not_json.status_code, not_json.json()["error"]) == (415, "unsupported_media_type")
    for response in (too_large, not_json):
        assert response.headers["access-control-allow-origin"] == "*"
        assert response.headers["access-control-expose-headers"] == "X-Request-ID, ETag"
        assert response.json()["request_id"] == response.headers["x-request-id"]
    assert too_large.headers["x-request-id"] == "big-1"


def test_preflight_gets_a_request_id(client: AppClient) -> None:
    response = client.options(
        "/api/v1/items", headers={**ORIGIN, "Access-Control-Request-Method": "POST", "X-Request-ID": "pre-1"}
    )
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "pre-1"


def call(app: Any, method: str, headers: list[tuple[bytes, bytes]]) -> tuple[int, dict[bytes, bytes], bytes]:
    """One request straight into the ASGI app, for headers no HTTP client would send."""
    scope = {
        "type": "http",
        "asgi": {"version": "3.0"},
        "http_version": "1.1",
        "method": method,
        "scheme": "http",
        "path": "/api/v1/items",
        "raw_path": b"/api/v1/items",
        "query_string": b"",
        "root_path": "",
        "headers": headers,
        "client": ("127.0.0.1", 50000),
        "server": ("127.0.0.1", 8000),
    }
    messages: list[dict[str, Any]] = []

    async def receive() -> dict[str, Any]:
        return {"type": "http.request", "body": b"{}", "more_body": False}

    async def send(message: dict[str, Any]) -> None:
        messages.append(message)

    asyncio.run(app(scope, receive, send))
    start, *bodies = messages
    return start["status"], dict(start["headers"]), b"".join(body.get("body", b"") for body in bodies)


@pytest.mark.parametrize("length", [b"abc", b"-1", b"1e3", b""])
def test_malformed_content_length_is_400_in_the_envelope(client: AppClient, length: bytes) -> None:
    headers = [(b"content-type", b"application/json"), (b"content-length", length), (b"x-request-id", b"len-1")]
    status, response_headers, body = call(client.app, "POST", headers)
    assert status == 400
    assert response_headers[b"x-request-id"] == b"len-1"
    assert body == b'{"detail":"invalid Content-Length header","error":"bad_request","request_id":"len-1"}'

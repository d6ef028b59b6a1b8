"""Hostile input: every case gets a clear 4xx in the error envelope, no internals, and writes nothing."""

import json
from typing import Any

import pytest

from tests.conftest import AppClient
from tests.factories import read_body, write_body

# Refused before any store is reached: the embedded store serves these as well as any backend. Values that
# are accepted and stored are storage-facing, and run on every backend (marked).
pytestmark = pytest.mark.backends("sqlite")

JSON = {"content-type": "application/json"}


def raw_write(features: bytes) -> bytes:
    """A single-category write of entity `u` whose `features` object is given as raw JSON text."""
    return (
        b'{"meta": {"source": "prediction_service"}, "data": {"entity_value": "u", '
        b'"category": "user_features", "features": ' + features + b"}}"
    )


def deep(depth: int, leaf: bytes = b"1") -> bytes:
    return b"[" * depth + leaf + b"]" * depth


def assert_rejected(client: AppClient, response: Any, status: int = 422) -> dict[str, Any]:
    assert response.status_code == status, response.text[:500]
    body = response.json()
    assert set(body) == {"detail", "error", "request_id"}
    assert body["request_id"] == response.headers["x-request-id"]
    assert "Traceback" not in response.text and "Error(" not in response.text
    nothing = client.get("/api/v1/get/item/u/user_features")
    assert nothing.status_code == 404, "a rejected write stored something"
    assert client.app.state.runtime.store.outbox_stats().pending == 0, "a rejected write queued an event"
    return body


@pytest.mark.parametrize(
    "body",
    [
        b"null",
        b"[]",
        b'"data"',
        b"12",
        b"{}",
        b'{"data": null}',
        b'{"data": []}',
        b'{"meta": "x", "data": {"entity_value": "u", "category": "user_features", "features": {"a": 1}}}',
        b'{"data": {"entity_value": ["u"], "category": "user_features", "features": {"a": 1}}}',
        b'{"data": {"entity_value": "u", "category": 7, "features": {"a": 1}}}',
        b'{"data": {"entity_value": "u", "category": "user_features", "features": [["a", 1]]}}',
        b'{"data": {"entity_value": "u", "feature_list": "user_features"}}',
        b'{"data": {"entity_value": "u", "feature_list": [null]}}',
        b'{"meta": {"source": "prediction_service", "ttl": 1e400}, "data": {"entity_value": "u", '
        b'"category": "user_features", "features": {"a": 1}}}',
        b'{"meta": {"source": "prediction_service", "compute_id": 5}, "data": {"entity_value": "u", '
        b'"category": "user_features", "features": {"a": 1}}}',
    ],
)
def test_wrong_types_are_422(client: AppClient, body: bytes) -> None:
    assert_rejected(client, client.post("/api/v1/items", content=body, headers=JSON))


@pytest.mark.parametrize(
    "features",
    [
        b'{"a": 18446744073709551616}',
        b'{"a": -9223372036854775809}',
        b'{"a": 1e400}',
        b'{"a": -1e400}',
        b'{"a": ' + b"9" * 5000 + b"}",
        b'{"a": NaN}',
        b'{"a": [1, Infinity]}',
        b'{"a": {"b": -Infinity}}',
    ],
)
def test_huge_numbers_and_nan_literals_are_422(client: AppClient, features: bytes) -> None:
    assert_rejected(client, client.post("/api/v1/items", content=raw_write(features), headers=JSON))


@pytest.mark.backends("sqlite", "dynamodb")
def test_a_long_decimal_fraction_is_refused_or_stored_as_a_float(client: AppClient) -> None:
    """A valid JSON number, though longer than any float: a clear 422, or it round-trips as the nearest float."""
    response = client.post("/api/v1/items", content=raw_write(b'{"a": 0.' + b"1" * 5000 + b"}"), headers=JSON)
    if response.status_code == 200:
        assert client.get("/api/v1/get/item/u/user_features").json()["features"]["data"]["a"] == pytest.approx(1 / 9)
    else:
        assert_rejected(client, response)


def test_huge_number_in_a_read_body_is_422(client: AppClient) -> None:
    body = b'{"data": {"entity_value": "u", "feature_list": [' + b"1" * 5000 + b"]}}"
    response = client.post("/api/v1/get/items", content=body, headers=JSON)
    assert response.status_code == 422
    assert response.json()["detail"][0]["type"] == "json_invalid"


@pytest.mark.parametrize(
    "features",
    [
        {"": 1},
        {"a b": 1},
        {"ä": 1},
        {"a\u0000": 1},
        {"a": "\ud800"},
        {"a": {"k\u0007": 1}},
        {"a": {"\udfff": 1}},
        {"a": {"k" * 70_000: 1}},
        {"a": "x" * 70_000},
    ],
)
def test_bad_names_and_strings_are_422(client: AppClient, features: dict) -> None:
    payload = json.dumps(
        {
            "meta": {"source": "prediction_service"},
            "data": {"entity_value": "u", "category": "user_features", "features": features},
        }
    )
    body = assert_rejected(client, client.post("/api/v1/items", content=payload.encode(), headers=JSON))
    assert all(len(str(item)) <= 128 for error in body["detail"] for item in error["loc"])


@pytest.mark.backends("sqlite", "dynamodb")
@pytest.mark.parametrize(
    "value",
    ["", "日本語 ☃", "\u200b\u200f\u202e", "🦄" * 100, "line\nbreak\ttab", "\u0000", "a" * 65_536],
)
def test_unicode_and_empty_values_round_trip(client: AppClient, value: str) -> None:
    response = client.post("/api/v1/items", json=write_body("u", {"user_features": {"v": value}}))
    assert response.status_code == 200, response.text[:300]
    data = client.get("/api/v1/get/item/u/user_features").json()["features"]["data"]
    assert data["v"] == value


@pytest.mark.parametrize("entity_value", ["", "a\u0000b", "a\nb", "\u0085", "\ud800", "é" * 513, "\u202e" * 342])
def test_bad_entity_values_are_422_everywhere(client: AppClient, entity_value: str) -> None:
    def post(path: str, body: dict) -> Any:
        return client.post(path, content=json.dumps(body).encode(), headers=JSON)  # ASCII escapes carry lone surrogates

    assert_rejected(client, post("/api/v1/items", write_body(entity_value)))
    assert post("/api/v1/get/items", read_body(entity_value, "user_features:*")).status_code == 422
    batch = {"data": {"entity_values": ["ok", entity_value], "feature_list": ["user_features:*"]}}
    assert post("/api/v1/get/items/batch", batch).status_code == 422


@pytest.mark.parametrize("path_value", ["a%00b", "a%0Ab", "%C2%85", "%C3%A9" * 513])
def test_bad_entity_values_in_the_path_are_422(client: AppClient, path_value: str) -> None:
    response = client.get(f"/api/v1/get/item/{path_value}/user_features")
    assert response.status_code == 422, response.text
    assert response.json()["error"] == "validation_error"


@pytest.mark.backends("sqlite", "dynamodb")
def test_unicode_entity_values_are_fine(client: AppClient) -> None:
    assert client.post("/api/v1/items", json=write_body("ユーザー-1", {"user_features": {"a": 1}})).status_code == 200
    assert client.get("/api/v1/get/item/ユーザー-1/user_features").status_code == 200


def test_duplicate_json_keys_last_one_wins(client: AppClient) -> None:
    body = raw_write(b'{"a": 1, "a": 2}').replace(b'"entity_value": "u"', b'"entity_value": "x", "entity_value": "u"')
    assert client.post("/api/v1/items", content=body, headers=JSON).status_code == 200
    assert client.get("/api/v1/get/item/u/user_features").json()["features"]["data"] == {"a": 2}
    assert client.get("/api/v1/get/item/x/user_features").status_code == 404


@pytest.mark.parametrize("depth", [17, 500, 5_000, 100_000])
def test_deep_nesting_is_422(client: AppClient, depth: int) -> None:
    body = assert_rejected(
        client, client.post("/api/v1/items", content=raw_write(b'{"a": ' + deep(depth) + b"}"), headers=JSON)
    )
    assert body["detail"][0]["msg"] in ("value nested deeper than 16 levels", "JSON nested too deeply")


def test_deep_nesting_anywhere_in_the_body_is_4xx(client: AppClient) -> None:
    for path in ("/api/v1/items", "/api/v1/get/items", "/api/v1/get/items/batch"):
        response = client.post(path, content=b'{"meta": ' + deep(100_000) + b"}", headers=JSON)
        assert response.status_code == 422
        assert response.json()["detail"] == [{"type": "json_invalid", "loc": ["body"], "msg": "JSON nested too deeply"}]


@pytest.mark.backends("sqlite", "dynamodb")
def test_deepest_allowed_value_is_stored(client: AppClient) -> None:
    assert client.post("/api/v1/items", content=raw_write(b'{"a": ' + deep(16) + b"}"), headers=JSON).status_code == 200


def test_ten_thousand_features_in_one_category(client: AppClient) -> None:
    features = {f"f{i}": i for i in range(10_000)}
    body = assert_rejected(client, client.post("/api/v1/items", json=write_body("u", {"user_features": features})))
    assert "the limit is 1000" in body["detail"][0]["msg"]


def test_total_features_across_a_write_is_limited(make_client) -> None:
    client = make_client(max_features_per_write=100)
    categories = {name: {f"f{i}": i for i in range(60)} for name in ("user_features", "credit_features")}
    body = assert_rejected(client, client.post("/api/v1/items", json=write_body("u", categories)))
    assert "at most 100 features" in body["detail"][0]["msg"]


def test_ten_thousand_entries_in_reads(client: AppClient) -> None:
    entries = [f"user_features:f{i}" for i in range(10_000)]
    assert client.post("/api/v1/get/items", json=read_body("u", *entries)).status_code == 422
    batch = {"data": {"entity_values": [f"u{i}" for i in range(10_000)], "feature_list": ["user_features:*"]}}
    assert client.post("/api/v1/get/items/batch", json=batch).status_code == 422


def test_fifty_megabyte_body_is_413(client: AppClient) -> None:
    huge = b'{"data": "' + b"x" * (50 * 1024 * 1024) + b'"}'
    assert_rejected(client, client.post("/api/v1/items", content=huge, headers=JSON), 413)


def test_fifty_megabytes_streamed_are_413(client: AppClient) -> None:
    """Chunked, so no Content-Length to refuse from: the limit is enforced while reading (see test_main for
    the socket-level proof that the rest is never read)."""
    chunks = (b" " * 65_536 for _ in range(50 * 16))
    assert_rejected(client, client.post("/api/v1/items", content=chunks, headers=JSON), 413)


@pytest.mark.parametrize(
    "path, params",
    [
        ("/api/v1/get/item/u/" + "c" * 5000, {}),
        ("/api/v1/get/item/u/user_features", {"entity_type": "e" * 5000}),
        ("/api/v1/get/item/u/user%00features", {}),
        ("/api/v1/get/item/u/user_features", {"entity_type": "bright_uid\u0000"}),
    ],
)
def test_hostile_path_and_query_are_422(client: AppClient, path: str, params: dict) -> None:
    response = client.get(path, params=params)
    assert response.status_code == 422
    assert len(response.content) < 2000


def test_invalid_utf8_body_is_422(client: AppClient) -> None:
    response = client.post("/api/v1/items", content=b'{"data": "\xff\xfe"}', headers=JSON)
    assert response.json()["detail"][0]["type"] == "json_invalid"
    assert_rejected(client, response)

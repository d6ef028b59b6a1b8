"""The client's own rules for bulk writes and deletion, against a scripted service (httpx.MockTransport):
entity forms, splitting at the published maxima, a part refused for some entities only, a part left
without an answer, and the deletion's query. The real service answers the same calls in test_client.py."""

import asyncio
import json
from datetime import UTC, datetime
from typing import Any

import httpx
import pytest

from feature_store_client import (
    AsyncFeatureStoreClient,
    EntityWrite,
    FeatureStoreClient,
    RetryPolicy,
)
from feature_store_client._bulk import encoded_entity
from feature_store_client._core import entity_body, split_entities
from feature_store_client.models import Limits

LIMITS = {
    "max_batch_entities": 1000,
    "max_feature_list": 1000,
    "max_categories_per_write": 25,
    "max_features_per_category": 1000,
    "max_features_per_write": 5000,
    "max_body_bytes": 1_048_576,
}


class Service:
    """Answers /limits and /items/batch like the service, refusing what the test scripts."""

    def __init__(
        self, limits: dict[str, Any], refuse: frozenset[str] = frozenset(), drop: frozenset[str] = frozenset()
    ) -> None:
        self.limits = limits
        self.refuse = refuse
        """Entity values the service cannot read: the whole request is a 422 naming them."""
        self.drop = drop
        """Entity values whose request gets no answer (the connection breaks)."""
        self.batches: list[list[str]] = []
        self.requests: list[httpx.Request] = []

    def __call__(self, request: httpx.Request) -> httpx.Response:
        self.requests.append(request)
        if request.url.path == "/api/v1/limits":
            return httpx.Response(200, json=self.limits)
        if request.url.path == "/api/v1/items/batch":
            body = json.loads(request.content)
            values = [entity["entity_value"] for entity in body["data"]["entities"]]
            self.batches.append(values)
            if self.drop & set(values):
                raise httpx.ReadError("connection reset")
            refused = [
                {
                    "type": "string_pattern_mismatch",
                    "loc": ["body", "data", "entities", index, "feature_list"],
                    "msg": "x",
                }
                for index, value in enumerate(values)
                if value in self.refuse
            ]
            if refused:
                return httpx.Response(422, json={"detail": refused, "error": "validation_error", "request_id": "r"})
            results = [
                {
                    "entity_value": value,
                    "categories_updated": [] if value.startswith("bad") else ["user_features"],
                    "categories_skipped": [],
                    "error": {"error": "forbidden", "detail": "no"} if value.startswith("bad") else None,
                }
                for value in values
            ]
            failed = sum(result["error"] is not None for result in results)
            answer = {"entity_type": body["data"]["entity_type"], "results": results}
            return httpx.Response(200, json={**answer, "written": len(values) - failed, "failed": failed})
        if request.method == "DELETE":
            value = request.url.path.rsplit("/", 1)[1]
            answer = {
                "entity_value": value,
                "entity_type": request.url.params["entity_type"],
                "categories_deleted": request.url.params.get_list("category"),
                "timestamp": "2025-10-13T09:15:51.358632+00:00",
            }
            return httpx.Response(200, json=answer)
        return httpx.Response(404, json={"detail": "no route", "error": "not_found", "request_id": "r"})


def client_of(service: Service) -> FeatureStoreClient:
    http = httpx.Client(transport=httpx.MockTransport(service), base_url="http://service")
    return FeatureStoreClient(http_client=http, retry=RetryPolicy(backoff_seconds=0.001), max_concurrency=2)


def entities(*values: str) -> list[dict[str, Any]]:
    return [{"entity_value": value, "categories": {"user_features": {"age": 1}}} for value in values]


def test_entity_forms() -> None:
    wire = {"entity_value": "u1", "feature_list": [{"category": "c", "features": {"a": 1}}]}
    assert entity_body({"entity_value": "u1", "categories": {"c": {"a": 1}}}) == wire
    assert entity_body(wire) == wire
    assert entity_body({**wire, "metadata": {"ttl": 5}}) == {**wire, "meta": {"ttl": 5}}
    when = datetime(2025, 1, 1, tzinfo=UTC)
    assert entity_body({**wire, "meta": {"event_time": when}}) == {**wire, "meta": {"event_time": when.isoformat()}}
    assert entity_body(EntityWrite("u1", {"c": {"a": 1}}, event_time="2025-01-01T00:00:00Z")) == {
        **wire,
        "meta": {"event_time": "2025-01-01T00:00:00Z"},
    }
    for bad, said in [
        ({"entity_value": "u1"}, "categories"),
        ({"entity_value": "", "categories": {"c": {"a": 1}}}, "entity_value"),
        ({"entity_value": "u1", "categories": {"c": {}}}, "non-empty"),
        ({**wire, "entity_type": "x"}, "unknown entity fields"),
        ({**wire, "meta": {"sauce": "x"}}, "unknown meta fields"),
        ({**wire, "meta": {}, "metadata": {}}, "not both"),
        ({"entity_value": "u1", "feature_list": [{"category": "c"}]}, "feature_list entry"),
        (["u1"], "object"),
    ]:
        with pytest.raises(ValueError, match=said):
            entity_body(bad)  # type: ignore[arg-type]


def test_split_at_the_published_maxima() -> None:
    bodies = [entity_body(entity) for entity in entities(*"abcde")]
    assert split_entities(bodies, Limits(**LIMITS, max_batch_write_entities=2)) == [[0, 1], [2, 3], [4]]
    assert split_entities(bodies, Limits(**LIMITS)) == [[0, 1, 2, 3, 4]], "the service's default, 500"
    size = len(json.dumps(bodies[0])) + 2
    by_bytes = Limits(**LIMITS, max_batch_write_entities=500, max_batch_write_body_bytes=4096 + 2 * size)
    assert split_entities(bodies, by_bytes) == [[0, 1], [2, 3], [4]]


def test_split_counts_the_bytes_of_text_outside_ascii() -> None:
    bodies = [entity_body({"entity_value": f"u{i}", "categories": {"c": {"name": "é" * 1000}}}) for i in range(4)]
    encoded = [encoded_entity(body) for body in bodies]
    size = len(encoded[0].encode()) + 2
    limits = Limits(**LIMITS, max_batch_write_entities=500, max_batch_write_body_bytes=4096 + 2 * size)
    assert split_entities(bodies, limits, encoded) == [[0, 1], [2, 3]], "2,000 bytes a name, not 1,000"


def test_parts_answered_in_the_order_given() -> None:
    service = Service({**LIMITS, "max_batch_write_entities": 2})
    seen: list[tuple[int, int]] = []
    with client_of(service) as client:
        result = client.write_batch(
            entities("u1", "bad1", "u3", "u4", "u5"),
            source="prediction_service",
            on_part=lambda done, failed: seen.append((done, failed)),
        )
    assert sorted(service.batches) == [["u1", "bad1"], ["u3", "u4"], ["u5"]]
    assert [entity.entity_value for entity in result.results] == ["u1", "bad1", "u3", "u4", "u5"]
    assert (result.written, result.failed) == (4, 1)
    assert [failure.error.error for failure in result.failures if failure.error] == ["forbidden"]
    assert sorted(seen) == [(1, 0), (2, 0), (2, 1)]
    bodies = [json.loads(request.content) for request in service.requests if request.url.path.endswith("/batch")]
    assert all(body["meta"] == {"source": "prediction_service"} for body in bodies)
    assert len({request.headers["X-Request-ID"] for request in service.requests[1:]}) == 1, "one request id"


def test_entities_the_service_cannot_read_fail_alone_and_the_rest_is_sent_again() -> None:
    service = Service({**LIMITS, "max_batch_write_entities": 3}, refuse=frozenset({"u2"}))
    with client_of(service) as client:
        result = client.write_batch(entities("u1", "u2", "u3", "u4"))
    assert service.batches.count(["u1", "u2", "u3"]) == 1 and ["u1", "u3"] in service.batches
    assert [entity.ok for entity in result.results] == [True, False, True, True]
    error = result.results[1].error
    assert error is not None and error.error == "validation_error"
    assert error.detail[0]["loc"] == ["body", "data", "entities", 1, "feature_list"]


def test_a_part_without_an_answer_is_sent_again_under_its_key_then_fails_its_entities() -> None:
    service = Service({**LIMITS, "max_batch_write_entities": 2}, drop=frozenset({"u3"}))
    with client_of(service) as client:
        result = client.write_batch(entities("u1", "u2", "u3", "u4"))
        attempts = client.retry.attempts
    assert service.batches.count(["u3", "u4"]) == attempts, "sent again: its key keeps it from applying twice"
    keys = {
        request.headers["Idempotency-Key"]
        for request in service.requests
        if request.url.path == "/api/v1/items/batch" and b'"u3"' in request.content
    }
    assert len(keys) == 1, "the same key on every retry of the part"
    assert [entity.error.error if entity.error else None for entity in result.results] == [
        None,
        None,
        "transport_error",
        "transport_error",
    ]
    assert (result.written, result.failed) == (2, 2)


def test_a_request_refused_as_a_whole_fails_every_entity() -> None:
    def service(request: httpx.Request) -> httpx.Response:
        if request.url.path == "/api/v1/limits":
            return httpx.Response(200, json=LIMITS)
        return httpx.Response(401, json={"detail": "no key", "error": "unauthorized", "request_id": "r"})

    http = httpx.Client(transport=httpx.MockTransport(service), base_url="http://service")
    with FeatureStoreClient(http_client=http) as client:
        result = client.write_batch(entities("u1", "u2"))
        assert result.failed == 2
        assert {entity.error.error for entity in result.failures if entity.error} == {"unauthorized"}
        with pytest.raises(ValueError):
            client.write_batch([])


def test_delete_query() -> None:
    service = Service(LIMITS)
    with client_of(service) as client:
        deleted = client.delete(
            "a b/c", ["user_features", "credit_features"], "account_id", event_time="2025-01-01T00:00:00+00:00"
        )
        everything = client.delete("u1")
        with pytest.raises(ValueError):
            client.delete("u1", "user_features")
    first, second = service.requests
    assert first.method == "DELETE" and first.url.raw_path.startswith(b"/api/v1/items/a%20b%2Fc?")
    assert first.url.params.get_list("category") == ["user_features", "credit_features"]
    assert first.url.params["event_time"] == "2025-01-01T00:00:00+00:00"
    assert deleted.categories_deleted == ["user_features", "credit_features"] and deleted.entity_type == "account_id"
    assert "category" not in second.url.params and everything.entity_value == "u1"


def test_the_async_client_follows_the_same_rules() -> None:
    service = Service({**LIMITS, "max_batch_write_entities": 2}, refuse=frozenset({"u2"}), drop=frozenset({"u5"}))

    async def scenario() -> None:
        transport = httpx.MockTransport(service)
        async with AsyncFeatureStoreClient("http://service", transport=transport) as client:
            seen: list[int] = []
            result = await client.write_batch(
                entities("u1", "u2", "u3", "bad4", "u5"), on_part=lambda done, failed: seen.append(done)
            )
            assert [entity.error.error if entity.error else None for entity in result.results] == [
                None,
                "validation_error",
                None,
                "forbidden",
                "transport_error",
            ]
            assert sorted(seen) == [1, 2, 2] and (result.written, result.failed) == (2, 3)
            deleted = await client.delete("u1", ["user_features"])
            assert deleted.categories_deleted == ["user_features"]

    asyncio.run(scenario())

"""The Prometheus exporter and `GET /metrics`: what a scrape shows after known requests, in both formats;
the scrape itself is neither logged nor counted, needs a key only when asked to, and can move."""

import logging
from collections.abc import Callable, Iterator

import pytest
from prometheus_client.parser import text_string_to_metric_families

from core.exceptions import StoreThrottled
from core.metrics import metrics
from core.metrics.prometheus import Prometheus
from devservers import LocalIssuer
from tests.factories import write_body

pytestmark = pytest.mark.backends("sqlite")

ITEM = "/api/v1/get/item/{entity_value}/{category}"
PROMETHEUS = {"metrics_exporter": "prometheus"}


def samples(text: str) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    """Every sample of a scrape: (name, labels) -> value."""
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
    }


def value(found: dict, name: str, **labels: str) -> float | None:
    return found.get((name, frozenset(labels.items())))


def test_a_scrape_shows_requests_flows_and_store_calls(make_client) -> None:
    client = make_client(**PROMETHEUS)
    assert client.post("/api/v1/items", json=write_body("u-1", {"user_features": {"age": 3}})).status_code == 200
    for _ in range(3):
        assert client.get("/api/v1/get/item/u-1/user_features").status_code == 200
    assert client.get("/api/v1/get/item/u-9/user_features").status_code == 404

    response = client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain; version=0.0.4")
    found = samples(response.text)
    requests = "feature_store_http_requests_total"
    assert value(found, requests, endpoint=ITEM, method="GET", status="200") == 3
    assert value(found, requests, endpoint=ITEM, method="GET", status="404") == 1
    duration = "feature_store_http_request_duration_seconds_count"
    assert value(found, duration, endpoint=ITEM, method="GET", status="200") == 3
    assert (
        value(
            found,
            "feature_store_operation_duration_seconds_count",
            operation="read.single_item",
            entity_type="bright_uid",
        )
        == 4
    )
    store_reads = value(
        found,
        "feature_store_store_call_duration_seconds_count",
        backend="sqlite",
        call="read",
        entity_type="bright_uid",
    )
    assert store_reads == 4
    age = value(found, "feature_store_feature_age_seconds_count", category="user_features", entity_type="bright_uid")
    assert age == 3
    assert value(found, "feature_store_unavailable_categories_total", entity_type="bright_uid") == 1
    assert value(found, "feature_store_build_info", version=client.app.version) == 1
    assert not any(name.endswith("_created") for name, _ in found), "no _created series"
    assert {dict(labels).get("endpoint") for name, labels in found if name == requests} == {ITEM, "/api/v1/items"}


def test_buckets_are_the_catalogue_s(make_client) -> None:
    client = make_client(**PROMETHEUS)
    client.get("/api/v1/get/item/u-9/user_features")
    found = samples(client.get("/metrics").text)
    buckets = {
        dict(labels)["le"]
        for name, labels in found
        if name == "feature_store_http_request_duration_seconds_bucket" and dict(labels)["endpoint"] == ITEM
    }
    assert {"0.0005", "0.005", "10.0", "+Inf"} <= buckets and len(buckets) == 15


def test_openmetrics_when_the_scraper_asks_for_it(make_client) -> None:
    client = make_client(**PROMETHEUS)
    client.get("/api/v1/get/item/u-9/user_features")
    response = client.get("/metrics", headers={"Accept": "application/openmetrics-text; version=1.0.0"})
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("application/openmetrics-text")
    assert response.text.endswith("# EOF\n")
    assert "# TYPE feature_store_http_requests counter" in response.text


def test_the_scrape_is_not_logged_nor_counted_nor_documented(make_client, caplog) -> None:
    client = make_client(**PROMETHEUS)
    with caplog.at_level(logging.INFO, logger="feature_store.access"):
        client.get("/metrics")
        client.get("/metrics")
    assert [record for record in caplog.records if record.name == "feature_store.access"] == []
    found = samples(client.get("/metrics").text)
    assert not [labels for name, labels in found if name == "feature_store_http_requests_total"]
    assert "/metrics" not in client.get("/openapi.json").json()["paths"]


def test_off_without_the_prometheus_exporter(make_client) -> None:
    assert make_client().get("/metrics").status_code == 404


def test_metrics_path_moves_it(make_client) -> None:
    client = make_client(**PROMETHEUS, metrics_path="/internal/metrics")
    assert client.get("/internal/metrics").status_code == 200
    assert client.get("/metrics").status_code == 404


def test_no_key_needed_with_api_keys_on_unless_required(make_auth_client, api_keys: dict[str, str]) -> None:
    assert make_auth_client(**PROMETHEUS).get("/metrics").status_code == 200


def test_a_required_key_needs_the_admin_scope(make_auth_client, api_keys: dict[str, str]) -> None:
    client = make_auth_client(**PROMETHEUS, metrics_require_key=True)
    assert client.get("/metrics").status_code == 401
    assert client.get("/metrics", headers={"X-API-Key": api_keys["reader"]}).status_code == 403
    answered = client.get("/metrics", headers={"Authorization": f"Bearer {api_keys['operator']}"})
    assert answered.status_code == 200
    assert "feature_store_build_info" in answered.text


def test_a_required_key_may_be_a_token_with_the_admin_grant(make_jwt_client, oidc_issuer: LocalIssuer) -> None:
    client = make_jwt_client(**PROMETHEUS, metrics_require_key=True)
    operator = oidc_issuer.token(sub="prometheus", client_id="ops-console", scope="admin")
    answered = client.get("/metrics", headers={"Authorization": f"Bearer {operator}"})
    assert answered.status_code == 200, answered.text
    assert "feature_store_build_info" in answered.text
    reader = client.get("/metrics", headers={"Authorization": f"Bearer {oidc_issuer.token()}"})
    assert reader.status_code == 403, "the ranker grant reads features, no admin"
    expired = oidc_issuer.token(sub="prometheus", client_id="ops-console", scope="admin", exp=1)
    refused = client.get("/metrics", headers={"Authorization": f"Bearer {expired}"})
    assert refused.status_code == 401
    assert 'error_description="token_expired"' in refused.headers["www-authenticate"]


def test_statsd_and_prometheus_together(make_client, statsd) -> None:
    client = make_client(**statsd.settings, metrics_exporter="statsd,prometheus")
    assert client.get("/api/v1/get/item/u-9/user_features").status_code == 404
    key = "http.request.count;endpoint=-api-v1-get-item-entity_value-category;method=GET;status=404"
    assert statsd.wait_for("counters", {key: 1})[key] == 1
    assert (
        value(
            samples(client.get("/metrics").text),
            "feature_store_http_requests_total",
            endpoint=ITEM,
            method="GET",
            status="404",
        )
        == 1
    )


@pytest.fixture
def prometheus() -> Iterator[Callable[[], dict]]:
    """The facade on a Prometheus exporter of this test's own; returns a reader of its samples."""
    exporter = Prometheus("1.0.0")
    metrics.configure(exporter)
    yield lambda: samples(exporter.exposition("")[0].decode())
    metrics.close()


def test_throttling_is_named_in_the_store_errors(prometheus) -> None:
    with pytest.raises(StoreThrottled), metrics.timer("dynamodb.get_item", entity_type="bright_uid"):
        raise StoreThrottled("DynamoDB is throttling requests")
    errors = "feature_store_store_call_errors_total"
    labels = {"backend": "dynamodb", "call": "get_item", "entity_type": "bright_uid", "error": "StoreThrottled"}
    assert value(prometheus(), errors, **labels) == 1


def test_counters_gauges_and_fixed_labels(prometheus) -> None:
    metrics.incr("write.bulk.entities", 7, entity_type="account_id")
    metrics.incr("write.bulk.failed", 2, entity_type="account_id")
    metrics.incr("kafka.publish", 5, outcome="delivered")
    metrics.gauge("outbox.backlog", 12)
    metrics.gauge("ready", 1)
    metrics.timing("dynamodb.transact_write_items", 25.0, entity_type="account_id")
    with metrics.timer("sqlite.claim_events"):
        pass
    found = prometheus()
    bulk = "feature_store_bulk_write_entities_total"
    assert value(found, bulk, entity_type="account_id", outcome="committed") == 7
    assert value(found, bulk, entity_type="account_id", outcome="failed") == 2
    assert value(found, "feature_store_events_published_total", sink="kafka", outcome="delivered") == 5
    assert value(found, "feature_store_outbox_backlog_events") == 12
    assert value(found, "feature_store_ready") == 1
    store = "feature_store_store_call_duration_seconds_sum"
    assert value(found, store, backend="dynamodb", call="transact_write_items", entity_type="account_id") == 0.025
    assert (
        value(
            found,
            "feature_store_store_call_duration_seconds_count",
            backend="sqlite",
            call="claim_events",
            entity_type="",
        )
        == 1
    )


def test_a_name_missing_from_the_catalogue_is_dropped_with_a_warning(prometheus, caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="feature_store.metrics"):
        metrics.incr("no.such.metric")
        metrics.incr("no.such.metric")
    assert caplog.text.count("no.such.metric") == 1
    assert not [name for name, _ in prometheus() if "no_such" in name]

"""The OTLP exporter: the catalogue's instruments in the OpenTelemetry SDK (read back in memory), and a
served app's metrics reaching an OTLP/HTTP receiver."""

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
from opentelemetry.proto.collector.metrics.v1.metrics_service_pb2 import ExportMetricsServiceRequest
from opentelemetry.sdk.metrics.export import InMemoryMetricReader

from core.metrics import metrics
from core.metrics.catalogue import LATENCY
from core.metrics.otlp import Otlp, otlp_problems

pytestmark = pytest.mark.backends("sqlite")


@pytest.fixture
def reader() -> Iterator[InMemoryMetricReader]:
    found = InMemoryMetricReader()
    metrics.configure(Otlp("feature-store-api", "1.0.0", reader=found))
    yield found
    metrics.close()


def exported(reader: InMemoryMetricReader) -> dict[str, Any]:
    data = reader.get_metrics_data()
    assert data is not None
    return {
        metric.name: metric
        for resource in data.resource_metrics
        for scope in resource.scope_metrics
        for metric in scope.metrics
    }


def points(metric: Any) -> dict[frozenset, Any]:
    return {frozenset(point.attributes.items()): point for point in metric.data.data_points}


def test_instruments_are_named_after_statsd_with_the_catalogue_s_labels(reader) -> None:
    metrics.request("/api/v1/get/item/{entity_value}/{category}", "GET", 200, 0.003, False)
    metrics.request("/api/v1/get/item/{entity_value}/{category}", "GET", 200, 0.004, True)
    with pytest.raises(TimeoutError), metrics.timer("sqlite.read", entity_type="bright_uid"):
        raise TimeoutError
    metrics.incr("write.bulk.failed", 3, entity_type="account_id")
    metrics.gauge("outbox.backlog", 9)
    found = exported(reader)

    http = {"endpoint": "/api/v1/get/item/{entity_value}/{category}", "method": "GET", "status": "200"}
    count = found["feature_store.http.request.count"]
    assert count.data.is_monotonic
    assert points(count)[frozenset(http.items())].value == 2
    duration = points(found["feature_store.http.request.duration"])[frozenset(http.items())]
    assert found["feature_store.http.request.duration"].unit == "s"
    assert duration.count == 2 and duration.sum == pytest.approx(0.007)
    assert list(duration.explicit_bounds) == list(LATENCY)
    assert points(found["feature_store.http.request.slow"])[frozenset(http.items())].value == 1

    store = {"backend": "sqlite", "call": "read", "entity_type": "bright_uid"}
    assert points(found["feature_store.sqlite.read"])[frozenset(store.items())].count == 1
    error = frozenset({**store, "error": "TimeoutError"}.items())
    assert points(found["feature_store.sqlite.read.error"])[error].value == 1
    bulk = frozenset({"entity_type": "account_id", "outcome": "failed"}.items())
    assert points(found["feature_store.write.bulk.failed"])[bulk].value == 3
    assert points(found["feature_store.outbox.backlog"])[frozenset()].value == 9
    assert points(found["feature_store.build_info"])[frozenset({"version": "1.0.0"}.items())].value == 1


class Receiver:
    """A local OTLP/HTTP receiver: the metric names of every export request it is sent."""

    def __init__(self) -> None:
        self.names: set[str] = set()
        self.arrived = threading.Event()
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:  # noqa: N802 (the standard library's name)
                body = self.rfile.read(int(self.headers["Content-Length"]))
                request = ExportMetricsServiceRequest.FromString(body)
                for resource in request.resource_metrics:
                    for scope in resource.scope_metrics:
                        receiver.names.update(metric.name for metric in scope.metrics)
                receiver.arrived.set()
                self.send_response(200)
                self.send_header("Content-Type", "application/x-protobuf")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *_args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


@pytest.fixture
def receiver(monkeypatch: pytest.MonkeyPatch) -> Iterator[Receiver]:
    found = Receiver()
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", raising=False)
    monkeypatch.delenv("OTEL_EXPORTER_OTLP_PROTOCOL", raising=False)
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", found.url)
    monkeypatch.setenv("OTEL_TRACES_EXPORTER", "none")
    yield found
    found.server.shutdown()


def test_a_served_app_exports_to_an_otlp_receiver(make_client, receiver: Receiver) -> None:
    client = make_client(metrics_exporter="otlp")
    assert client.get("/api/v1/get/item/u-9/user_features").status_code == 404
    client.__exit__(None, None, None)  # the shutdown exports what is recorded
    assert receiver.arrived.wait(10)
    assert {
        "feature_store.http.request.count",
        "feature_store.read.single_item",
        "feature_store.sqlite.read",
    } <= receiver.names


def test_otlp_needs_an_endpoint_and_a_known_protocol() -> None:
    assert otlp_problems({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}) == []
    assert otlp_problems({"OTEL_EXPORTER_OTLP_METRICS_ENDPOINT": "http://collector:4318/v1/metrics"}) == []
    assert "needs OTEL_EXPORTER_OTLP_METRICS_ENDPOINT" in otlp_problems({})[0]
    refused = otlp_problems(
        {"OTEL_EXPORTER_OTLP_ENDPOINT": "http://c:4318", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"}
    )
    assert refused == ["OTLP protocol 'http/json' is not supported: use one of grpc, http/protobuf"]

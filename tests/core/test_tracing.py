"""Tracing's switch (the standard OTEL_* variables), its exporters, and a trace that crosses the outbox:
from the write's request, through the event stored with it, the relay's batch and the Kafka header, to a
consumer that continues it."""

import logging
import threading
import time
import uuid
from collections.abc import Iterator
from concurrent import futures
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import grpc
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter
from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter
from opentelemetry.proto.collector.trace.v1 import trace_service_pb2, trace_service_pb2_grpc
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

from core.exceptions import ConfigurationError
from core.metrics import metrics
from core.tracing import otlp_exporter, requested_protocol, tracing
from devservers import free_port
from main import create_app
from middlewares.request import RequestMiddleware
from middlewares.tracing import TracedRequestMiddleware
from tests.factories import write_body

pytestmark = pytest.mark.backends("sqlite")


@pytest.mark.parametrize(
    ("environ", "protocol"),
    [
        ({}, None),
        ({"OTEL_SERVICE_NAME": "features"}, None),
        ({"OTEL_TRACES_EXPORTER": "otlp"}, "http/protobuf"),
        ({"OTEL_TRACES_EXPORTER": " OTLP "}, "http/protobuf"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318"}, "http/protobuf"),
        ({"OTEL_EXPORTER_OTLP_TRACES_ENDPOINT": "http://collector:4318/v1/traces"}, "http/protobuf"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4317", "OTEL_EXPORTER_OTLP_PROTOCOL": "grpc"}, "grpc"),
        (
            {
                "OTEL_TRACES_EXPORTER": "otlp",
                "OTEL_EXPORTER_OTLP_PROTOCOL": "http/protobuf",
                "OTEL_EXPORTER_OTLP_TRACES_PROTOCOL": "grpc",
            },
            "grpc",
        ),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_SDK_DISABLED": "true"}, None),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "TRUE"}, None),
        ({"OTEL_TRACES_EXPORTER": "otlp", "OTEL_SDK_DISABLED": "false"}, "http/protobuf"),
        ({"OTEL_EXPORTER_OTLP_ENDPOINT": "http://collector:4318", "OTEL_TRACES_EXPORTER": "none"}, None),
    ],
)
def test_the_standard_variables_switch_tracing(environ: dict[str, str], protocol: str | None) -> None:
    assert requested_protocol(environ) == protocol


@pytest.mark.parametrize(
    "environ",
    [
        {"OTEL_TRACES_EXPORTER": "zipkin"},
        {"OTEL_TRACES_EXPORTER": "otlp,console"},
        {"OTEL_TRACES_EXPORTER": "otlp", "OTEL_EXPORTER_OTLP_PROTOCOL": "http/json"},
    ],
)
def test_what_cannot_be_honoured_stops_start_up(environ: dict[str, str]) -> None:
    with pytest.raises(ConfigurationError):
        requested_protocol(environ)


def test_each_protocol_gets_its_exporter_which_reads_its_own_endpoint(monkeypatch) -> None:
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", "http://collector.example:4318")
    http = otlp_exporter("http/protobuf")
    assert isinstance(http, HttpExporter)
    assert http._endpoint == "http://collector.example:4318/v1/traces"
    monkeypatch.setenv("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT", "http://traces.example:4317")
    grpc = otlp_exporter("grpc")
    assert isinstance(grpc, GrpcExporter)
    assert grpc._endpoint == "traces.example:4317"
    http.shutdown()
    grpc.shutdown()


class Collector:
    """What an OpenTelemetry collector received: the span names per service name."""

    def __init__(self) -> None:
        self.requests: list[trace_service_pb2.ExportTraceServiceRequest] = []
        self.lock = threading.Lock()

    def receive(self, body: bytes) -> None:
        request = trace_service_pb2.ExportTraceServiceRequest.FromString(body)
        with self.lock:
            self.requests.append(request)

    def spans(self) -> dict[str, list[str]]:
        found: dict[str, list[str]] = {}
        with self.lock:
            for request in self.requests:
                for resource_spans in request.resource_spans:
                    attributes = {item.key: item.value.string_value for item in resource_spans.resource.attributes}
                    names = found.setdefault(attributes["service.name"], [])
                    names += [span.name for scope in resource_spans.scope_spans for span in scope.spans]
        return found


def http_collector(collector: Collector) -> tuple[str, Any]:
    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:  # noqa: N802 (http.server's naming)
            assert self.path == "/v1/traces"
            collector.receive(self.rfile.read(int(self.headers["Content-Length"])))
            answer = trace_service_pb2.ExportTraceServiceResponse().SerializeToString()
            self.send_response(200)
            self.send_header("Content-Type", "application/x-protobuf")
            self.send_header("Content-Length", str(len(answer)))
            self.end_headers()
            self.wfile.write(answer)

        def log_message(self, *_args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return f"http://127.0.0.1:{server.server_address[1]}", server.shutdown


def grpc_collector(collector: Collector) -> tuple[str, Any]:
    class Service(trace_service_pb2_grpc.TraceServiceServicer):
        def Export(self, request: Any, context: Any) -> Any:  # noqa: N802 (the service's naming)
            collector.receive(request.SerializeToString())
            return trace_service_pb2.ExportTraceServiceResponse()

    server = grpc.server(futures.ThreadPoolExecutor(max_workers=2))
    trace_service_pb2_grpc.add_TraceServiceServicer_to_server(Service(), server)
    port = server.add_insecure_port("127.0.0.1:0")
    server.start()
    return f"http://127.0.0.1:{port}", lambda: server.stop(None)


@pytest.fixture
def untouched_tracing() -> Iterator[None]:
    """Tracing as the environment configures it, with the real exporters; off again after the test."""
    yield
    tracing.close()


@pytest.mark.parametrize(("protocol", "start"), [("http/protobuf", http_collector), ("grpc", grpc_collector)])
def test_spans_reach_a_collector_over_either_protocol(
    untouched_tracing, monkeypatch, make_client, protocol: str, start: Any
) -> None:
    collector = Collector()
    endpoint, stop = start(collector)
    try:
        monkeypatch.delenv("OTEL_TRACES_EXPORTER", raising=False)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_ENDPOINT", endpoint)
        monkeypatch.setenv("OTEL_EXPORTER_OTLP_PROTOCOL", protocol)
        monkeypatch.setenv("OTEL_SERVICE_NAME", "features-under-test")
        monkeypatch.setenv("OTEL_BSP_SCHEDULE_DELAY", "50")
        client = make_client()
        assert tracing.protocol == protocol
        assert client.get("/api/v1/get/item/user-1/user_features").status_code == 404
        deadline = time.monotonic() + 10
        while "GET /api/v1/get/item/{entity_value}/{category}" not in collector.spans().get("features-under-test", []):
            assert time.monotonic() < deadline, f"the collector got {collector.spans()}"
            time.sleep(0.05)
        assert {"read.single_item", "sqlite.read"} <= set(collector.spans()["features-under-test"])
    finally:
        tracing.close()
        stop()


def test_off_by_default_leaves_the_request_path_as_it_was(monkeypatch, make_settings) -> None:
    for name in ("OTEL_TRACES_EXPORTER", "OTEL_EXPORTER_OTLP_ENDPOINT", "OTEL_EXPORTER_OTLP_TRACES_ENDPOINT"):
        monkeypatch.delenv(name, raising=False)
    app = create_app(make_settings())
    assert not tracing.enabled and tracing.provider is None
    assert [middleware.cls for middleware in app.user_middleware] == [RequestMiddleware]
    assert metrics.traced_timer is None
    assert tracing.traceparent() is None
    assert tracing.span("x") is tracing.span("y")  # one shared no-op, nothing allocated per call


def test_on_installs_the_traced_middleware_and_names_the_service(spans, monkeypatch, make_settings) -> None:
    app = create_app(make_settings())
    assert [middleware.cls for middleware in app.user_middleware] == [TracedRequestMiddleware]
    assert tracing.provider is not None
    assert tracing.provider.resource.attributes["service.name"] == "feature-store-api"
    monkeypatch.setenv("OTEL_SERVICE_NAME", "features-eu")
    create_app(make_settings(dd_service="from-datadog"))
    assert tracing.provider.resource.attributes["service.name"] == "features-eu"


def test_a_timer_starts_no_trace_of_its_own(spans: InMemorySpanExporter, make_settings) -> None:
    """The relay's idle polls are timed: outside a request or a relay batch, a timer is only a timer."""
    create_app(make_settings())
    with metrics.timer("sqlite.claim_events"):
        pass
    assert spans.get_finished_spans() == ()
    assert tracing.tracer is not None
    with tracing.tracer.start_as_current_span("parent"), metrics.timer("sqlite.read", entity_type="bright_uid"):
        pass
    child, parent = spans.get_finished_spans()
    assert (child.name, child.attributes, child.parent) == (
        "sqlite.read",
        {"entity_type": "bright_uid"},
        parent.context,
    )


def test_a_traced_timer_still_sends_its_metric(spans, statsd, make_settings) -> None:
    create_app(make_settings(**statsd.settings))
    assert tracing.tracer is not None
    with tracing.tracer.start_as_current_span("parent"), metrics.timer("store.call", entity_type="account_id"):
        pass
    with pytest.raises(TimeoutError):
        with tracing.tracer.start_as_current_span("parent"), metrics.timer("store.call", entity_type="account_id"):
            raise TimeoutError
    assert (
        len(statsd.wait_for("timers", {"store.call;entity_type=account_id": 2})["store.call;entity_type=account_id"])
        == 2
    )
    assert statsd.wait_for("counters", {"store.call.error;entity_type=account_id;error=TimeoutError": 1})
    failed = spans.get_finished_spans()[2]
    assert failed.name == "store.call" and not failed.status.is_ok


def by_name(finished: tuple[ReadableSpan, ...], name: str) -> list[ReadableSpan]:
    return [span for span in finished if span.name == name]


def wait_for_span(spans: InMemorySpanExporter, name: str, timeout: float = 10) -> ReadableSpan:
    deadline = time.monotonic() + timeout
    while not (found := by_name(spans.get_finished_spans(), name)):
        assert time.monotonic() < deadline, f"no {name} span in time"
        time.sleep(0.02)
    return found[0]


def consume_one(bootstrap: str, topic: str, timeout: float = 20) -> tuple[dict[str, bytes], bytes]:
    """The first message of the topic: its headers and key, read from the broker as any consumer would."""
    consumer = Consumer(
        {"bootstrap.servers": bootstrap, "group.id": f"test-{uuid.uuid4()}", "enable.auto.commit": False}
    )
    try:
        partitions = consumer.list_topics(topic, timeout=5).topics[topic].partitions
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING) for partition in partitions])
        deadline = time.monotonic() + timeout
        while True:
            assert time.monotonic() < deadline, "no event arrived"
            message = consumer.poll(0.2)
            if message is None:
                continue
            assert message.error() is None, message.error()
            key = message.key()
            assert isinstance(key, bytes)
            headers = message.headers() or []
            assert isinstance(headers, list)
            return {name: value for name, value in headers if isinstance(value, bytes)}, key
    finally:
        consumer.close()


@pytest.mark.backends("sqlite", "dynamodb")
def test_a_trace_crosses_the_outbox_to_a_kafka_consumer(
    spans: InMemorySpanExporter, make_client, kafka_settings, kafka_broker, kafka_topic, backend: str
) -> None:
    client = make_client(**kafka_settings)
    response = client.post("/api/v1/items", json=write_body("user-7"))
    assert response.status_code == 200

    relay = wait_for_span(spans, "outbox.relay")
    request = wait_for_span(spans, "POST /api/v1/items")
    (write,) = by_name(spans.get_finished_spans(), "write.multi_category")
    assert write.parent is not None and write.parent.span_id == request.context.span_id
    assert write.context.trace_id == request.context.trace_id

    # The relay's batch is a trace of its own, linked to the write whose event it carried.
    assert relay.kind is SpanKind.PRODUCER
    assert relay.context.trace_id != request.context.trace_id
    assert [(link.context.trace_id, link.context.span_id) for link in relay.links] == [
        (write.context.trace_id, write.context.span_id)
    ]
    assert relay.attributes is not None and relay.attributes["messaging.system"] == "kafka"
    assert (relay.attributes["outbox.delivered"], relay.attributes["outbox.failed"]) == (1, 0)
    assert relay.status.is_ok
    deleted = by_name(
        spans.get_finished_spans(), f"{backend}.{'delete_events' if backend == 'sqlite' else 'outbox_delete'}"
    )
    assert [span.parent.span_id for span in deleted if span.parent] == [relay.context.span_id]

    # A consumer continues the write's trace from the message's header.
    headers, key = consume_one(kafka_broker.bootstrap, kafka_topic)
    assert key == b"bright_uid:user-7"
    carrier = {"traceparent": headers["traceparent"].decode()}
    continued = TraceContextTextMapPropagator().extract(carrier)
    assert tracing.tracer is not None
    with tracing.tracer.start_as_current_span("consume", context=continued, kind=SpanKind.CONSUMER) as consumer_span:
        assert trace.get_current_span() is consumer_span
    consumed = wait_for_span(spans, "consume")
    assert consumed.context.trace_id == request.context.trace_id
    assert consumed.parent is not None and consumed.parent.span_id == write.context.span_id


def test_without_kafka_the_events_log_line_names_the_write_trace(spans, make_client, caplog) -> None:
    client = make_client()
    with caplog.at_level(logging.INFO, logger="feature_store.events"):
        assert client.post("/api/v1/items", json=write_body("user-9")).status_code == 200
        relay = wait_for_span(spans, "outbox.relay")
    (write,) = by_name(spans.get_finished_spans(), "write.multi_category")
    (logged,) = [record for record in caplog.records if record.getMessage() == "feature_available"]
    version, trace_id, span_id, flags = logged.traceparent.split("-")
    assert (version, trace_id, span_id) == ("00", f"{write.context.trace_id:032x}", f"{write.context.span_id:016x}")
    assert int(flags, 16) & 1, "sampled"
    assert relay.attributes is not None and relay.attributes["messaging.system"] == "log"


def test_a_batch_kafka_did_not_take_is_an_error_span(spans: InMemorySpanExporter, make_client) -> None:
    client = make_client(
        kafka_broker_url=f"127.0.0.1:{free_port()}",
        schema_registry="mock://nobroker",
        kafka_message_timeout_ms=300,
        outbox_max_backoff_seconds=30,
    )
    assert client.post("/api/v1/items", json=write_body("user-10")).status_code == 200
    relay = wait_for_span(spans, "outbox.relay")
    assert relay.attributes is not None
    assert (relay.attributes["outbox.delivered"], relay.attributes["outbox.failed"]) == (0, 1)
    assert relay.status.status_code is StatusCode.ERROR
    assert by_name(spans.get_finished_spans(), "sqlite.retry_events")


def test_without_tracing_events_carry_no_header(make_client, kafka_settings, kafka_broker, kafka_topic) -> None:
    client = make_client(**kafka_settings)
    assert client.post("/api/v1/items", json=write_body("user-8")).status_code == 200
    headers, _ = consume_one(kafka_broker.bootstrap, kafka_topic)
    assert headers == {}

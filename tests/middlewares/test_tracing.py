"""A server span per request, named by its route template, continuing the caller's trace, with the store's
calls as its children; and the request's log lines carrying its trace and span ids."""

import io
import json
import logging

import pytest
from opentelemetry.sdk.trace import ReadableSpan
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import SpanKind, StatusCode

from core.exceptions import StoreUnavailable
from core.logging import HANDLER_NAME
from tests.factories import read_body, write_body

ITEM_ROUTE = "/api/v1/get/item/{entity_value}/{category}"
CALLER_TRACE = "0af7651916cd43dd8448eb211c80319c"
CALLER_SPAN = "b7ad6b7169203331"


def log_stream() -> io.StringIO:
    """Where the service's own handler writes from now on."""
    handler = next(handler for handler in logging.getLogger().handlers if handler.get_name() == HANDLER_NAME)
    assert isinstance(handler, logging.StreamHandler)
    stream = io.StringIO()
    handler.setStream(stream)
    return stream


def named(spans: InMemorySpanExporter, name: str) -> ReadableSpan:
    (span,) = [span for span in spans.get_finished_spans() if span.name == name]
    return span


def children(spans: InMemorySpanExporter, parent: ReadableSpan) -> list[str]:
    return sorted(
        span.name
        for span in spans.get_finished_spans()
        if span.parent and span.parent.span_id == parent.context.span_id
    )


def test_a_read_is_a_server_span_with_the_store_call_beneath(spans, make_client, backend: str) -> None:
    client = make_client()
    assert client.post("/api/v1/items", json=write_body("user-1")).status_code == 200
    spans.clear()
    response = client.get("/api/v1/get/item/user-1/user_features", headers={"X-Request-ID": "req-42"})
    assert response.status_code == 200

    server = named(spans, f"GET {ITEM_ROUTE}")
    assert server.kind is SpanKind.SERVER
    assert server.parent is None
    assert server.attributes == {
        "http.request.method": "GET",
        "http.route": ITEM_ROUTE,
        "http.response.status_code": 200,
        "request_id": "req-42",
    }
    assert server.status.status_code is StatusCode.UNSET
    flow = named(spans, "read.single_item")
    assert children(spans, server) == ["read.single_item"]
    store_call = "sqlite.read" if backend == "sqlite" else "dynamodb.get_item"
    assert children(spans, flow) == [store_call]
    assert named(spans, store_call).attributes == {"entity_type": "bright_uid"}


@pytest.mark.backends("dynamodb")
def test_a_dynamodb_write_shows_its_transaction(spans, make_client) -> None:
    client = make_client()
    assert client.post("/api/v1/items", json=write_body("user-2")).status_code == 200
    server = named(spans, "POST /api/v1/items")
    write = named(spans, "write.multi_category")
    assert children(spans, server) == ["write.multi_category"]
    transactions = [span for span in spans.get_finished_spans() if span.name == "dynamodb.transact_write_items"]
    assert transactions and all(span.parent and span.parent.span_id == write.context.span_id for span in transactions)


@pytest.mark.backends("sqlite")
def test_the_callers_traceparent_is_continued(spans, make_client) -> None:
    client = make_client()
    traceparent = f"00-{CALLER_TRACE}-{CALLER_SPAN}-01"
    response = client.post(
        "/api/v1/get/items", json=read_body("nobody", "user_features:*"), headers={"traceparent": traceparent}
    )
    assert response.status_code == 200
    server = named(spans, "POST /api/v1/get/items")
    assert format(server.context.trace_id, "032x") == CALLER_TRACE
    assert server.parent is not None and format(server.parent.span_id, "016x") == CALLER_SPAN
    assert server.parent.is_remote


@pytest.mark.backends("sqlite")
@pytest.mark.parametrize(
    "traceparent",
    ["garbage", "00-" + "0" * 32 + "-" + "0" * 16 + "-01", "ff-x-y-z", "00-" + "g" * 32 + "-" + "1" * 16 + "-01"],
)
def test_a_malformed_traceparent_starts_a_new_trace(spans, make_client, traceparent: str) -> None:
    client = make_client()
    headers = {"traceparent": traceparent, "tracestate": "=,,x=" + "y" * 600}
    response = client.get("/api/v1/get/item/user-1/user_features", headers=headers)
    assert response.status_code == 404
    server = named(spans, f"GET {ITEM_ROUTE}")
    assert server.parent is None and server.context.trace_id != 0


@pytest.mark.backends("sqlite")
def test_unmatched_requests_are_named_by_method_and_errors_marked(spans, make_client, monkeypatch) -> None:
    client = make_client()
    assert client.get("/api/v1/no/such/path").status_code == 404
    server = named(spans, "GET")
    assert server.attributes is not None and "http.route" not in server.attributes
    assert server.attributes["http.response.status_code"] == 404
    assert client.request("BREW", "/api/v1/items").status_code == 405
    brew = named(spans, "HTTP /api/v1/items")
    assert brew.attributes is not None and brew.attributes["http.request.method"] == "_OTHER"

    spans.clear()

    async def unavailable(*_args: object) -> None:
        raise StoreUnavailable("down")

    monkeypatch.setattr(client.app.state.runtime.store, "read", unavailable)
    assert client.get("/api/v1/get/item/user-1/user_features").status_code == 503
    server = named(spans, f"GET {ITEM_ROUTE}")
    assert server.status.status_code is StatusCode.ERROR
    assert named(spans, "read.single_item").status.status_code is StatusCode.ERROR


@pytest.mark.backends("sqlite")
def test_log_lines_carry_the_trace_and_span_ids(spans, make_client) -> None:
    client = make_client(log_format="json")
    stream = log_stream()
    response = client.get("/api/v1/get/item/user-1/user_features")
    assert response.status_code == 404
    server = named(spans, f"GET {ITEM_ROUTE}")
    (access,) = [
        line for line in map(json.loads, stream.getvalue().splitlines()) if line["logger"] == "feature_store.access"
    ]
    assert access["request_id"] == response.headers["x-request-id"]
    assert access["trace_id"] == format(server.context.trace_id, "032x")
    assert access["span_id"] == format(server.context.span_id, "016x")


@pytest.mark.backends("sqlite")
def test_without_tracing_log_lines_have_no_trace_ids(make_client) -> None:
    client = make_client(log_format="json")
    stream = log_stream()
    assert client.get("/api/v1/get/item/user-1/user_features").status_code == 404
    lines = [json.loads(line) for line in stream.getvalue().splitlines()]
    assert lines and all("trace_id" not in line and "span_id" not in line for line in lines)


@pytest.mark.backends("sqlite")
def test_a_request_left_out_by_the_sampler_records_nothing(spans, make_client, monkeypatch) -> None:
    monkeypatch.setenv("OTEL_TRACES_SAMPLER", "always_off")
    client = make_client()
    assert client.post("/api/v1/items", json=write_body("user-3")).status_code == 200
    assert client.get("/api/v1/get/item/user-3/user_features").status_code == 200
    assert spans.get_finished_spans() == ()

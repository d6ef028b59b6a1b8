"""OpenTelemetry tracing: off unless the standard `OTEL_*` variables ask for it, decided once at start-up.

On when `OTEL_TRACES_EXPORTER` names `otlp`, or when `OTEL_EXPORTER_OTLP_TRACES_ENDPOINT` or
`OTEL_EXPORTER_OTLP_ENDPOINT` is set; off with `OTEL_SDK_DISABLED=true` or `OTEL_TRACES_EXPORTER=none`,
whatever else is set. The protocol (`OTEL_EXPORTER_OTLP_TRACES_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`,
else `http/protobuf` as the specification says) picks the exporter; everything else is read by the SDK
itself: the exporter reads its endpoint, headers, certificates, compression and timeout, the batch
processor its `OTEL_BSP_*` limits, the provider its sampler (`OTEL_TRACES_SAMPLER`), the resource
`OTEL_SERVICE_NAME` and `OTEL_RESOURCE_ATTRIBUTES`. Like the SDK, these come from the process
environment only, never from the service's env files.

What is traced, all through the one process-wide `tracing` object:
- a server span per request (`middlewares/tracing.py`), continuing the caller's W3C `traceparent`;
- every `metrics.timer` block (store calls, flows) as a child span, named like its timer: timers and
  spans say the same thing. A timer never starts a trace of its own (the relay's idle polls would);
- one span per relay batch, linked to the writes whose events it carries: each event keeps the W3C
  `traceparent` of the write that committed it, the relay hands those to `relay_span`, and the Kafka sink
  sends each as a message header, so a consumer continues the write's trace.

Off, nothing of this exists: the plain request middleware is installed, `metrics.timer` is what it
was, `traceparent()` returns None and `span()` a shared no-op context manager; the SDK is not imported.
"""

import logging
import os
import time
from collections.abc import Iterator, Mapping, Sequence
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any

from opentelemetry import context as otel_context
from opentelemetry import trace
from opentelemetry.trace import Link, SpanKind, Status, StatusCode
from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator
from starlette.types import Scope

from core.exceptions import ConfigurationError
from core.metrics import Timer, metrics
from core.request_context import request_id_var

if TYPE_CHECKING:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SpanExporter, SpanProcessor


PROTOCOLS = ("grpc", "http/protobuf")
DEFAULT_PROTOCOL = "http/protobuf"
DEFAULT_SERVICE_NAME = "feature-store-api"
TRACEPARENT = "traceparent"
_HEADERS = {b"traceparent": "traceparent", b"tracestate": "tracestate"}
_KNOWN_METHODS = frozenset({"GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS", "CONNECT", "TRACE"})
_W3C = TraceContextTextMapPropagator()
_NOOP: AbstractContextManager[None] = nullcontext()


def requested_protocol(environ: Mapping[str, str]) -> str | None:
    """The OTLP protocol to export spans with, or None when the environment leaves tracing off.
    Raises ConfigurationError for what this service cannot honour, so it does not start half-traced."""
    if environ.get("OTEL_SDK_DISABLED", "").strip().lower() == "true":
        return None
    exporters = {name.strip().lower() for name in environ.get("OTEL_TRACES_EXPORTER", "").split(",") if name.strip()}
    if "none" in exporters:
        return None
    unsupported = exporters - {"otlp"}
    if unsupported:
        raise ConfigurationError(
            f"OTEL_TRACES_EXPORTER={','.join(sorted(unsupported))}: only otlp (or none) is supported"
        )
    endpoint = environ.get("OTEL_EXPORTER_OTLP_TRACES_ENDPOINT") or environ.get("OTEL_EXPORTER_OTLP_ENDPOINT")
    if not exporters and not endpoint:
        return None
    protocol = (
        environ.get("OTEL_EXPORTER_OTLP_TRACES_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or DEFAULT_PROTOCOL
    ).strip()
    if protocol not in PROTOCOLS:
        raise ConfigurationError(f"OTLP protocol {protocol!r} is not supported: use one of {', '.join(PROTOCOLS)}")
    return protocol


def otlp_exporter(protocol: str) -> "SpanExporter":
    """The SDK's OTLP span exporter for `protocol`; it reads its endpoint, headers, TLS, compression and
    timeout from the `OTEL_EXPORTER_OTLP_*` variables itself. Only the chosen protocol's module is imported."""
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter as GrpcExporter

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.trace_exporter import OTLPSpanExporter as HttpExporter

    return HttpExporter()


def span_processor(exporter: "SpanExporter") -> "SpanProcessor":
    """Spans leave in batches from a thread of the SDK's, never on the request's path (`OTEL_BSP_*`)."""
    from opentelemetry.sdk.trace.export import BatchSpanProcessor

    return BatchSpanProcessor(exporter)


def service_resource(service_name: str, version: str) -> Any:
    """The SDK's resource (`OTEL_SERVICE_NAME`, `OTEL_RESOURCE_ATTRIBUTES`), shared by traces and metrics."""
    from opentelemetry.sdk.resources import SERVICE_NAME, Resource

    resource = Resource.create({"service.version": version})
    if str(resource.attributes.get(SERVICE_NAME, "")).startswith("unknown_service"):
        resource = resource.merge(Resource({SERVICE_NAME: service_name}))
    return resource


def _span_context(traceparent: str | None) -> trace.SpanContext | None:
    if not traceparent:
        return None
    span_context = trace.get_current_span(_W3C.extract({TRACEPARENT: traceparent})).get_span_context()
    return span_context if span_context.is_valid else None


class TraceFilter(logging.Filter):
    """Adds `trace_id` and `span_id` (hex, as trace backends show them) to lines written inside a span."""

    def filter(self, record: logging.LogRecord) -> bool:
        span_context = trace.get_current_span().get_span_context()
        if span_context.is_valid:
            record.trace_id = format(span_context.trace_id, "032x")
            record.span_id = format(span_context.span_id, "016x")
        return True


class TracedTimer:
    """A `metrics.timer` block while tracing is on: a child span named like the timer, tagged like it,
    and the timer's metrics when those are on too."""

    __slots__ = ("_span", "_timer")

    def __init__(self, tracer: trace.Tracer, name: str, tags: dict[str, Any]) -> None:
        self._timer = Timer(metrics, name, tags) if metrics.enabled else None
        self._span = (
            tracer.start_as_current_span(name, attributes=tags) if trace.get_current_span().is_recording() else None
        )

    def __enter__(self) -> None:
        if self._span is not None:
            self._span.__enter__()
        if self._timer is not None:
            self._timer.__enter__()

    def __exit__(self, exc_type: Any, exc: Any, tb: Any) -> None:
        if self._timer is not None:
            self._timer.__exit__(exc_type, exc, tb)
        if self._span is not None:
            self._span.__exit__(exc_type, exc, tb)


class Tracing:
    def __init__(self) -> None:
        self.enabled = False
        self.tracer: trace.Tracer | None = None
        self.provider: TracerProvider | None = None
        self.protocol: str | None = None
        """The OTLP protocol spans are exported with, while tracing is on."""

    def configure(
        self,
        service_name: str = DEFAULT_SERVICE_NAME,
        version: str = "",
        environ: Mapping[str, str] = os.environ,
    ) -> None:
        """Switch tracing on or off as `environ` says; called once by `main.create_app`."""
        self.close()
        protocol = requested_protocol(environ)
        if protocol is None:
            return
        from opentelemetry.sdk.trace import TracerProvider

        provider = TracerProvider(resource=service_resource(service_name, version))
        provider.add_span_processor(span_processor(otlp_exporter(protocol)))
        self.provider = provider
        self.tracer = provider.get_tracer("feature_store", version)
        self.protocol = protocol
        self.enabled = True
        tracer = self.tracer
        metrics.traced_timer = lambda name, tags: TracedTimer(tracer, name, tags)

    def flush(self, timeout_seconds: float = 2.0) -> None:
        """Export what is still buffered (at shutdown)."""
        if self.provider is not None:
            self.provider.force_flush(int(timeout_seconds * 1000))

    def close(self) -> None:
        provider = self.provider
        self.enabled = False
        self.tracer = self.provider = self.protocol = None
        metrics.traced_timer = None
        if provider is not None:
            provider.shutdown()

    def span(self, name: str) -> AbstractContextManager[Any]:
        """A child span of the current one, or a shared no-op when tracing is off. An exception leaving it
        is not marked an error: for the call it wraps, the caller decides (a cancelled DynamoDB
        transaction is part of the write protocol); the enclosing timer's span records real failures."""
        if self.tracer is None:
            return _NOOP
        return self.tracer.start_as_current_span(name, record_exception=False, set_status_on_exception=False)

    def traceparent(self) -> str | None:
        """The current span's W3C `traceparent`, kept with the events a write commits; None when off."""
        if self.tracer is None:
            return None
        carrier: dict[str, str] = {}
        _W3C.inject(carrier)
        return carrier.get(TRACEPARENT)

    @contextmanager
    def server_span(self, scope: Scope) -> Iterator[trace.Span]:
        """The request's span, continuing the caller's `traceparent`; named `METHOD route template` once
        the router has matched, as the semantic conventions name HTTP server spans."""
        assert self.tracer is not None
        carrier = {_HEADERS[name]: value.decode("latin-1") for name, value in scope["headers"] if name in _HEADERS}
        # A method of the client's invention is `_OTHER` (span `HTTP`), as the conventions say: names stay a small set.
        method = scope["method"] if scope["method"] in _KNOWN_METHODS else "_OTHER"
        name = method if method != "_OTHER" else "HTTP"
        with self.tracer.start_as_current_span(
            name,
            context=_W3C.extract(carrier) if carrier else None,
            kind=SpanKind.SERVER,
            attributes={"http.request.method": method},
        ) as span:
            try:
                yield span
            finally:
                route = getattr(scope.get("route"), "path_format", None)
                if route is not None:
                    span.update_name(f"{name} {route}")
                    span.set_attribute("http.route", route)
                if span_status_of(span, 500) >= 500:  # no response at all is the middleware's 500
                    span.set_status(Status(StatusCode.ERROR))

    def relay_span(
        self, system: str, traceparents: Sequence[str | None], start_time_ns: int
    ) -> AbstractContextManager[Any]:
        """One relay batch: a trace of its own (the relay serves no request), linked to each write whose
        event it carries, given as the W3C `traceparent` each event kept (None: untraced); from the moment
        the claim began."""
        if self.tracer is None:
            return _NOOP
        links = [Link(context) for context in map(_span_context, traceparents) if context]
        return self.tracer.start_as_current_span(
            "outbox.relay",
            context=otel_context.Context(),
            kind=SpanKind.PRODUCER,
            links=links,
            start_time=start_time_ns,
            attributes={
                "messaging.system": system,
                "messaging.operation.type": "send",
                "messaging.batch.message_count": len(traceparents),
            },
        )

    def record_delivery(self, delivered: int, failed: int) -> None:
        """What the current relay batch delivered; a batch with failures is an error span."""
        if self.tracer is None:
            return
        span = trace.get_current_span()
        span.set_attribute("outbox.delivered", delivered)
        span.set_attribute("outbox.failed", failed)
        if failed:
            span.set_status(Status(StatusCode.ERROR, f"{failed} events not delivered, retried later"))

    def now_ns(self) -> int:
        """A span's start time (epoch nanoseconds); 0 while off, when nothing reads it."""
        return time.time_ns() if self.tracer is not None else 0


def span_status_of(span: trace.Span, default: int) -> int:
    """The HTTP status the middleware recorded on the span (see `record_response`), else `default`."""
    attributes = getattr(span, "attributes", None) or {}
    status = attributes.get("http.response.status_code")
    return status if isinstance(status, int) else default


def record_response(span: trace.Span, status: int) -> None:
    """The response started: its status, and the request id (the middleware has bound it by now)."""
    span.set_attribute("http.response.status_code", status)
    span.set_attribute("request_id", request_id_var.get())


tracing = Tracing()
"""The process's one switch; `main.create_app` configures it from the environment."""

"""The OTLP exporter: the catalogue's instruments in the OpenTelemetry SDK, pushed to a collector.

The same SDK and `OTEL_*` settings as tracing (`core.tracing`), with a metrics exporter of its own: the
endpoint is `OTEL_EXPORTER_OTLP_METRICS_ENDPOINT` or `OTEL_EXPORTER_OTLP_ENDPOINT`, the protocol
`OTEL_EXPORTER_OTLP_METRICS_PROTOCOL`, else `OTEL_EXPORTER_OTLP_PROTOCOL`, else `http/protobuf`; the
SDK's reader exports every `OTEL_METRIC_EXPORT_INTERVAL` ms (60 s by default) from a thread of its own.
Each StatsD name is an instrument `feature_store.<name>`, its labels (as the catalogue computes them for
Prometheus) its attributes; counters are monotonic sums, durations and ages histograms with the
catalogue's buckets, in seconds.
"""

import logging
import os
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from core.metrics.catalogue import BUILD_INFO, Instrument, entry_for, otlp_name

if TYPE_CHECKING:
    from opentelemetry.sdk.metrics.export import MetricExporter, MetricReader

logger = logging.getLogger("feature_store.metrics")

PROTOCOLS = ("grpc", "http/protobuf")
DEFAULT_PROTOCOL = "http/protobuf"
ENDPOINT_VARIABLES = ("OTEL_EXPORTER_OTLP_METRICS_ENDPOINT", "OTEL_EXPORTER_OTLP_ENDPOINT")
SHUTDOWN_TIMEOUT_MS = 2000


def metrics_protocol(environ: Mapping[str, str]) -> str:
    return (
        environ.get("OTEL_EXPORTER_OTLP_METRICS_PROTOCOL")
        or environ.get("OTEL_EXPORTER_OTLP_PROTOCOL")
        or DEFAULT_PROTOCOL
    ).strip()


def otlp_problems(environ: Mapping[str, str]) -> list[str]:
    """Why `METRICS_EXPORTER=otlp` cannot export with this environment, if it cannot."""
    problems = []
    if not any(environ.get(variable) for variable in ENDPOINT_VARIABLES):
        problems.append(f"METRICS_EXPORTER=otlp needs {' or '.join(ENDPOINT_VARIABLES)}")
    protocol = metrics_protocol(environ)
    if protocol not in PROTOCOLS:
        problems.append(f"OTLP protocol {protocol!r} is not supported: use one of {', '.join(PROTOCOLS)}")
    return problems


def otlp_metric_exporter(protocol: str) -> "MetricExporter":
    """The SDK's OTLP metric exporter for `protocol`; it reads its endpoint, headers, TLS, compression and
    timeout from the `OTEL_EXPORTER_OTLP_*` variables itself."""
    if protocol == "grpc":
        from opentelemetry.exporter.otlp.proto.grpc.metric_exporter import OTLPMetricExporter as GrpcExporter

        return GrpcExporter()
    from opentelemetry.exporter.otlp.proto.http.metric_exporter import OTLPMetricExporter as HttpExporter

    return HttpExporter()


class _Dropped:
    def record(self, _value: float, _attributes: Any = None) -> None:
        pass


class Otlp:
    def __init__(self, service_name: str, version: str, reader: "MetricReader | None" = None) -> None:
        """`reader`: where the SDK's instruments are read; the periodic OTLP export when not given."""
        from opentelemetry.sdk.metrics import MeterProvider
        from opentelemetry.sdk.metrics.export import PeriodicExportingMetricReader

        from core.tracing import service_resource

        self.enabled = True
        if reader is None:
            reader = PeriodicExportingMetricReader(otlp_metric_exporter(metrics_protocol(os.environ)))
        self.provider = MeterProvider(metric_readers=[reader], resource=service_resource(service_name, version))
        self.meter = self.provider.get_meter("feature_store", version)
        self._instruments: dict[str, Any] = {}
        self._bound: dict[tuple[Any, ...], tuple[Any, dict[str, str]]] = {}
        build_info = self.meter.create_gauge(otlp_name("build_info"), "1", BUILD_INFO.help)
        build_info.set(1, {"version": version})

    def close(self) -> None:
        """Export what is recorded, then stop the reader's thread."""
        self.enabled = False
        self.provider.shutdown(timeout_millis=SHUTDOWN_TIMEOUT_MS)

    def _record(self, name: str, tags: Mapping[str, Any]) -> tuple[Any, dict[str, str]]:
        """The bound `add`/`record`/`set` of the name's instrument and the attributes of these tags."""
        key = (name, *tags.items())
        found = self._bound.get(key)
        if found is None:
            entry = entry_for(name)
            if entry is None:
                logger.warning("metric %r is not in the catalogue: not exported over OTLP", name)
                found = (_Dropped().record, {})
            else:
                record = self._instrument(name, entry.instrument)
                found = (record, dict(zip(entry.instrument.labels, entry.label_values(name, tags), strict=True)))
            self._bound[key] = found
        return found

    def _instrument(self, name: str, instrument: Instrument) -> Any:
        record = self._instruments.get(name)
        if record is None:
            full, unit, description = otlp_name(name), instrument.unit, instrument.help
            if instrument.kind == "counter":
                record = self.meter.create_counter(full, unit, description).add
            elif instrument.kind == "histogram":
                histogram = self.meter.create_histogram(
                    full, unit, description, explicit_bucket_boundaries_advisory=instrument.buckets
                )
                record = histogram.record
            else:
                record = self.meter.create_gauge(full, unit, description).set
            self._instruments[name] = record
        return record

    def incr(self, name: str, value: float, tags: Mapping[str, Any]) -> None:
        record, attributes = self._record(name, tags)
        record(value, attributes)

    gauge = observe = timing = incr

    def timed(self, name: str, seconds: float, tags: Mapping[str, Any], error: str | None) -> None:
        self.incr(name, seconds, tags)
        if error is not None:
            self.incr(f"{name}.error", 1, {**tags, "error": error})

    def observe_many(self, name: str, samples: Sequence[tuple[float, Mapping[str, Any]]]) -> None:
        for value, tags in samples:
            self.incr(name, value, tags)

    def request(self, endpoint: str, method: str, status: int, seconds: float, slow: bool) -> None:
        tags = {"endpoint": endpoint, "method": method, "status": status}
        self.incr("http.request.count", 1, tags)
        self.incr("http.request.duration", seconds, tags)
        if slow:
            self.incr("http.request.slow", 1, tags)

"""Every metric the service records, under each exporter: the one home of the names.

Call sites name a metric as StatsD always has (`read.single_item`, `sqlite.read`, `outbox.backlog`) and
tag it; `entry_for` maps that name to the Prometheus instrument it feeds (`feature_store_` prefix, base
units, `_total` counters, histograms with buckets chosen for what they measure) and turns the name and
its tags into the instrument's label values. OTLP instruments carry the same labels as attributes, named
`feature_store.` + the StatsD name. Label values come from small server-side sets only (route templates,
configured entity types and categories, status codes, exception class names).
"""

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal

LATENCY = (0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10)
"""A request or a flow, in seconds: sub-millisecond cache-warm reads up to a timed-out store."""
STORE = (0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5)
"""One store call, in seconds: an embedded SQLite read takes tens of microseconds."""
AGE = (1, 10, 60, 300, 900, 1800, 3600, 7200, 21600, 43200, 86400, 172800, 604800, 2592000)
"""How old data is, in seconds: from a second to the 30 days of a monthly job."""

Kind = Literal["counter", "histogram", "gauge"]
MultiprocessMode = Literal["", "max", "livemin"]
"""How prometheus-client combines a gauge's values from several worker processes ("": not a gauge)."""


@dataclass(frozen=True)
class Instrument:
    """One Prometheus metric (and its OTLP counterpart's kind, unit and labels)."""

    name: str
    kind: Kind
    help: str
    labels: tuple[str, ...] = ()
    buckets: tuple[float, ...] = ()
    unit: str = "1"
    """The OTLP unit: `s` for durations and ages, `1` for counts."""
    multiprocess_mode: MultiprocessMode = ""


@dataclass(frozen=True)
class Entry:
    """How one StatsD name feeds its instrument: `label_values(name, tags)` in the order of its labels."""

    instrument: Instrument
    label_values: Callable[[str, Mapping[str, Any]], tuple[str, ...]]


def _tagged(instrument: Instrument) -> Entry:
    """Labels named like the call site's tags; a missing tag is an empty label."""
    labels = instrument.labels
    return Entry(instrument, lambda _name, tags: tuple(str(tags.get(label, "")) for label in labels))


def _with(instrument: Instrument, **fixed: str) -> Entry:
    """Labels from the tags, some of them fixed by the name (`write.bulk.failed`: `outcome="failed"`)."""
    labels = instrument.labels
    return Entry(
        instrument, lambda _name, tags: tuple(fixed.get(label) or str(tags.get(label, "")) for label in labels)
    )


HTTP_LABELS = ("endpoint", "method", "status")
HTTP_REQUESTS = Instrument("feature_store_http_requests_total", "counter", "Requests served.", HTTP_LABELS)
HTTP_DURATION = Instrument(
    "feature_store_http_request_duration_seconds",
    "histogram",
    "Time to the last byte of the response.",
    HTTP_LABELS,
    LATENCY,
    "s",
)
HTTP_SLOW = Instrument(
    "feature_store_http_slow_requests_total", "counter", "Requests slower than SLOW_REQUEST_MS.", HTTP_LABELS
)
CONNECTIONS_REFUSED = Instrument(
    "feature_store_http_connections_refused_total",
    "counter",
    "Requests refused by the server before any route ran.",
    ("error",),
)
CONNECTIONS_IDLE_CLOSED = Instrument(
    "feature_store_http_connections_idle_closed_total",
    "counter",
    "Connections closed for sending no request within HTTP_HEADER_TIMEOUT_SECONDS.",
)
OPERATION_DURATION = Instrument(
    "feature_store_operation_duration_seconds",
    "histogram",
    "A read, write or delete flow, store calls included.",
    ("operation", "entity_type"),
    LATENCY,
    "s",
)
OPERATION_ERRORS = Instrument(
    "feature_store_operation_errors_total",
    "counter",
    "Flows that raised, by exception class.",
    ("operation", "entity_type", "error"),
)
FEATURE_AGE = Instrument(
    "feature_store_feature_age_seconds",
    "histogram",
    "Age of each category served: now minus its event_time, or its write time.",
    ("category", "entity_type"),
    AGE,
    "s",
)
WRITE_EVENT_LAG = Instrument(
    "feature_store_write_event_lag_seconds",
    "histogram",
    "How late a write's data arrives: write time minus its event_time.",
    ("entity_type",),
    AGE,
    "s",
)
BULK_ENTITIES = Instrument(
    "feature_store_bulk_write_entities_total",
    "counter",
    "Entities of bulk writes, committed or reported failed.",
    ("entity_type", "outcome"),
)
DELETED_CATEGORIES = Instrument(
    "feature_store_deleted_categories_total", "counter", "Categories erased.", ("entity_type",)
)
UNAVAILABLE_CATEGORIES = Instrument(
    "feature_store_unavailable_categories_total",
    "counter",
    "Categories answered as missing, expired or older than the read's max_age_seconds.",
    ("entity_type",),
)
WRITE_REJECTIONS = Instrument(
    "feature_store_write_rejections_total",
    "counter",
    "Writes refused by the feature registry, once per reason found in a category.",
    ("category", "reason"),
)
STORE_LABELS = ("backend", "call", "entity_type")
STORE_CALL_DURATION = Instrument(
    "feature_store_store_call_duration_seconds",
    "histogram",
    "One call of the online store or its outbox.",
    STORE_LABELS,
    STORE,
    "s",
)
STORE_CALL_ERRORS = Instrument(
    "feature_store_store_call_errors_total",
    "counter",
    "Store calls that raised, by exception class (StoreThrottled: DynamoDB throttling).",
    (*STORE_LABELS, "error"),
)
EVENTS_PUBLISHED = Instrument(
    "feature_store_events_published_total",
    "counter",
    "Events handed to the sink, by outcome.",
    ("sink", "outcome"),
)
OUTBOX_BACKLOG = Instrument(
    "feature_store_outbox_backlog_events",
    "gauge",
    "Events waiting to be published (the shared outbox: every replica reports the same).",
    multiprocess_mode="max",
)
OUTBOX_OLDEST_AGE = Instrument(
    "feature_store_outbox_oldest_pending_age_seconds",
    "gauge",
    "Age of the oldest event waiting to be published.",
    unit="s",
    multiprocess_mode="max",
)
OUTBOX_DEAD_LETTERS = Instrument(
    "feature_store_outbox_dead_letters",
    "gauge",
    "Events kept as dead letters, awaiting a re-drive.",
    multiprocess_mode="max",
)
READY = Instrument(
    "feature_store_ready",
    "gauge",
    "1 when the last readiness check passed, else 0.",
    multiprocess_mode="livemin",
)
CATEGORY_MAX_AGE = Instrument(
    "feature_store_category_max_age_seconds",
    "gauge",
    "Each category's registry max_age_seconds, set at start: the freshness alert's threshold.",
    ("category",),
    unit="s",
    multiprocess_mode="max",
)
JWKS_REFRESH_FAILURES = Instrument(
    "feature_store_auth_jwks_refresh_failures_total",
    "counter",
    "Failed fetches of the identity provider's signing keys (the cached keys stay in use).",
)
CONFIG_RELOAD_FAILURES = Instrument(
    "feature_store_config_reload_failures_total",
    "counter",
    "Changed configuration files refused as invalid (the previous one stays in force).",
    ("file",),
)
PAUSES = (0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 1)
"""A pause of the whole process, in seconds: a young collection takes tens of microseconds."""
EVENT_LOOP_LAG = Instrument(
    "feature_store_event_loop_lag_seconds",
    "histogram",
    "How late the event loop ran a timer: the worst of each tenth of a second (the wait before a new request runs).",
    (),
    PAUSES,
    "s",
)
GC_PAUSE = Instrument(
    "feature_store_gc_pause_seconds",
    "histogram",
    "Garbage collection pauses, by generation: no request runs meanwhile.",
    ("generation",),
    PAUSES,
    "s",
)
BUILD_INFO = Instrument(
    "feature_store_build_info", "gauge", "Always 1: the running version.", ("version",), multiprocess_mode="max"
)
"""Prometheus and OTLP only: set once by each exporter."""

INSTRUMENTS = (
    HTTP_REQUESTS,
    HTTP_DURATION,
    HTTP_SLOW,
    CONNECTIONS_REFUSED,
    CONNECTIONS_IDLE_CLOSED,
    OPERATION_DURATION,
    OPERATION_ERRORS,
    FEATURE_AGE,
    WRITE_EVENT_LAG,
    BULK_ENTITIES,
    DELETED_CATEGORIES,
    UNAVAILABLE_CATEGORIES,
    WRITE_REJECTIONS,
    STORE_CALL_DURATION,
    STORE_CALL_ERRORS,
    EVENTS_PUBLISHED,
    OUTBOX_BACKLOG,
    OUTBOX_OLDEST_AGE,
    OUTBOX_DEAD_LETTERS,
    READY,
    CATEGORY_MAX_AGE,
    JWKS_REFRESH_FAILURES,
    CONFIG_RELOAD_FAILURES,
    EVENT_LOOP_LAG,
    GC_PAUSE,
    BUILD_INFO,
)

OPERATIONS = frozenset(
    {"read.single_item", "read.multi_category", "read.batch", "write.multi_category", "write.bulk", "delete"}
)
STORE_BACKENDS = frozenset({"sqlite", "dynamodb"})
EVENT_SINKS = frozenset({"kafka", "log"})

ENTRIES: dict[str, Entry] = {
    "http.request.count": _tagged(HTTP_REQUESTS),
    "http.request.duration": _tagged(HTTP_DURATION),
    "http.request.slow": _tagged(HTTP_SLOW),
    "http.connection.refused": _tagged(CONNECTIONS_REFUSED),
    "http.connection.idle_closed": _tagged(CONNECTIONS_IDLE_CLOSED),
    "read.feature_age_seconds": _tagged(FEATURE_AGE),
    "write.event_lag_seconds": _tagged(WRITE_EVENT_LAG),
    "write.bulk.entities": _with(BULK_ENTITIES, outcome="committed"),
    "write.bulk.failed": _with(BULK_ENTITIES, outcome="failed"),
    "delete.categories": _tagged(DELETED_CATEGORIES),
    "read.unavailable_category": _tagged(UNAVAILABLE_CATEGORIES),
    "write.rejected": _tagged(WRITE_REJECTIONS),
    "outbox.backlog": _tagged(OUTBOX_BACKLOG),
    "outbox.oldest_pending_age_seconds": _tagged(OUTBOX_OLDEST_AGE),
    "outbox.dead_letters": _tagged(OUTBOX_DEAD_LETTERS),
    "ready": _tagged(READY),
    "registry.max_age_seconds": _tagged(CATEGORY_MAX_AGE),
    "auth.jwks_refresh_failed": _tagged(JWKS_REFRESH_FAILURES),
    "config.reload_failed": _tagged(CONFIG_RELOAD_FAILURES),
    "event_loop.lag_seconds": _tagged(EVENT_LOOP_LAG),
    "gc.pause_seconds": _tagged(GC_PAUSE),
}
"""The names that map one to one; operations, store calls, their errors and event sinks follow rules below."""


def _operation(name: str, tags: Mapping[str, Any]) -> tuple[str, ...]:
    return name, str(tags.get("entity_type", ""))


def _operation_error(name: str, tags: Mapping[str, Any]) -> tuple[str, ...]:
    return name.removesuffix(".error"), str(tags.get("entity_type", "")), str(tags.get("error", ""))


def _store_call(name: str, tags: Mapping[str, Any]) -> tuple[str, ...]:
    backend, _, call = name.partition(".")
    return backend, call, str(tags.get("entity_type", ""))


def _store_call_error(name: str, tags: Mapping[str, Any]) -> tuple[str, ...]:
    return (*_store_call(name.removesuffix(".error"), tags), str(tags.get("error", "")))


def _published(name: str, tags: Mapping[str, Any]) -> tuple[str, ...]:
    return name.partition(".")[0], str(tags.get("outcome", ""))


def entry_for(name: str) -> Entry | None:
    """The instrument a StatsD name feeds and how its labels are found; None for a name not catalogued."""
    entry = ENTRIES.get(name)
    if entry is not None:
        return entry
    base, _, last = name.rpartition(".")
    if name in OPERATIONS:
        return Entry(OPERATION_DURATION, _operation)
    if last == "error" and base in OPERATIONS:
        return Entry(OPERATION_ERRORS, _operation_error)
    backend, _, call = name.partition(".")
    if backend in STORE_BACKENDS and call:
        if last == "error" and "." in call:
            return Entry(STORE_CALL_ERRORS, _store_call_error)
        if "." not in call:
            return Entry(STORE_CALL_DURATION, _store_call)
    if backend in EVENT_SINKS and call == "publish":
        return Entry(EVENTS_PUBLISHED, _published)
    return None


def otlp_name(name: str) -> str:
    """The OTLP instrument of a StatsD name."""
    return f"feature_store.{name}"

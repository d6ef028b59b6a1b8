"""Observability settings: the readiness probe's deadline, the metric exporters (StatsD and its tags,
Prometheus' scrape endpoint), and the logs."""

import re
from typing import Annotated, Literal

from pydantic import Field, field_validator
from pydantic_settings import NoDecode

from core.settings.base import CommaSeparated, Environment, EnvironmentSettings, split_csv

_TAG_KEY = re.compile(r"[A-Za-z][A-Za-z0-9_./-]{0,99}")
_TAG_VALUE = re.compile(r"[A-Za-z0-9_./-]{1,200}")
"""Characters every tag style carries unchanged (none of `,:|#=;` or spaces, which separate tags)."""
METRIC_EXPORTERS = ("statsd", "prometheus", "otlp")


class ObservabilitySettings(EnvironmentSettings):
    ready_timeout_seconds: float = Field(1.0, gt=0)
    """`/ready` answers within this, whatever the store does: a store check still running then is a 503."""

    statsd_host: str = ""
    statsd_port: int = 8125
    statsd_prefix: str = "feature_store"
    statsd_tag_style: Literal["dogstatsd", "influx", "graphite", "none"] = "dogstatsd"
    """How tags are written: `name:1|c|#k:v` (Datadog agent, Telegraf, statsd_exporter), `name,k=v:1|c`
    (Telegraf, statsd_exporter), `name;k=v:1|c` (Graphite), or not at all."""
    statsd_constant_tags: CommaSeparated = ()
    """`key:value` pairs, comma-separated, added to every metric in the tag style above."""
    statsd_timer_type: Literal["ms", "distribution"] = "ms"
    """`ms`: StatsD timers, summarised by each agent; `distribution`: DogStatsD `|d`, aggregated across hosts."""
    dd_env: str = ""
    """Datadog's unified service tags: each one set becomes the constant tag `env`, `service` or `version`."""
    dd_service: str = ""
    dd_version: str = ""

    metrics_exporter: Annotated[tuple[str, ...], NoDecode] = ()
    """Comma-separated `statsd`, `prometheus`, `otlp`; empty: `statsd` when STATSD_HOST is set, else none."""
    metrics_path: str = Field("/metrics", pattern=r"^/[A-Za-z0-9_.~/-]*$")
    """Where Prometheus scrapes, on the service's own port, outside /api/v1."""
    metrics_require_key: bool = False
    """Scrapes need an API key with the `admin` scope (AUTH_ENABLED=true)."""
    metrics_multiproc_dir: str = ""
    """With WEB_CONCURRENCY > 1, where the workers keep their Prometheus values (emptied at start); empty:
    a new temporary directory."""

    log_level: str = "INFO"
    log_format: str = ""
    """`json` or `console`; empty picks console in development and json elsewhere."""
    slow_request_ms: float = Field(500.0, gt=0)
    """Requests slower than this are logged as a warning and counted as `http.request.slow`."""

    @field_validator("statsd_constant_tags")
    @classmethod
    def _check_constant_tags(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        for tag in value:
            key, _, tag_value = tag.partition(":")
            if not (_TAG_KEY.fullmatch(key) and _TAG_VALUE.fullmatch(tag_value)):
                raise ValueError(f"{tag!r} is not key:value (a letter first; letters, digits and _ . / - in each part)")
        return value

    @field_validator("metrics_exporter", mode="before")
    @classmethod
    def _parse_exporters(cls, value: object) -> object:
        return tuple(name.lower() for name in split_csv(value)) if isinstance(value, str) else value

    @field_validator("metrics_exporter")
    @classmethod
    def _check_exporters(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        unknown = sorted(set(value) - set(METRIC_EXPORTERS))
        if unknown:
            raise ValueError(
                f"unknown METRICS_EXPORTER {', '.join(unknown)}: choose from {', '.join(METRIC_EXPORTERS)}"
            )
        return value

    @property
    def metrics_exporters(self) -> frozenset[str]:
        if self.metrics_exporter:
            return frozenset(self.metrics_exporter)
        return frozenset({"statsd"} if self.statsd_host else ())

    @field_validator("dd_env", "dd_service", "dd_version")
    @classmethod
    def _check_tag_value(cls, value: str) -> str:
        if value and not _TAG_VALUE.fullmatch(value):
            raise ValueError(f"{value!r} cannot be a tag value: letters, digits and _ . / - only")
        return value

    @field_validator("log_format")
    @classmethod
    def _check_log_format(cls, value: str) -> str:
        if value not in ("", "json", "console"):
            raise ValueError("LOG_FORMAT must be 'json' or 'console'")
        return value

    @property
    def log_as_json(self) -> bool:
        if self.log_format:
            return self.log_format == "json"
        return self.environment != Environment.DEVELOPMENT

    @property
    def statsd_tags(self) -> dict[str, str]:
        """Tags on every metric: `STATSD_CONSTANT_TAGS`, then `env`, `service` and `version` from `DD_ENV`,
        `DD_SERVICE` and `DD_VERSION` where set and not already named there."""
        tags = dict(tag.split(":", 1) for tag in self.statsd_constant_tags)
        for key, value in (("env", self.dd_env), ("service", self.dd_service), ("version", self.dd_version)):
            if value:
                tags.setdefault(key, value)
        return tags

"""The checks that span sections: what one section allows depends on another, and what each environment
demands of all of them."""

import os
from collections.abc import Callable
from typing import Self

from pydantic import model_validator

from core.settings.base import Environment, EnvironmentSettings
from core.settings.identity import IdentitySettings
from core.settings.kafka import KafkaSettings
from core.settings.limits import LimitsSettings
from core.settings.observability import ObservabilitySettings
from core.settings.server import ServerSettings
from core.settings.store import DYNAMODB_MAX_VALUE_DEPTH, StoreBackend, StoreSettings


class CheckedSettings(
    IdentitySettings,
    ServerSettings,
    ObservabilitySettings,
    KafkaSettings,
    LimitsSettings,
    StoreSettings,
    EnvironmentSettings,
):
    """Every section, checked as a whole. pydantic takes fields and checks from the last base first: the
    environment's and the store's come first, each section's own checks run before these."""

    @model_validator(mode="after")
    def _check_store_limits(self) -> Self:
        if self.store_backend == StoreBackend.DYNAMODB and self.max_json_depth > DYNAMODB_MAX_VALUE_DEPTH:
            raise ValueError(
                f"MAX_JSON_DEPTH may be at most {DYNAMODB_MAX_VALUE_DEPTH} on DynamoDB (32 nesting levels, "
                "two of them features.data)"
            )
        return self

    @model_validator(mode="after")
    def _check_metrics(self) -> Self:
        from core.metrics.otlp import otlp_problems  # the OTLP exporter's own reading of the OTEL_* variables

        problems = []
        if "statsd" in self.metrics_exporters and not self.statsd_host:
            problems.append("METRICS_EXPORTER=statsd needs STATSD_HOST")
        if "otlp" in self.metrics_exporters:
            problems += otlp_problems(os.environ)
        if self.metrics_require_key and not self.auth_enabled:
            problems.append("METRICS_REQUIRE_KEY=true needs AUTH_ENABLED=true (a key with the admin scope)")
        if self.metrics_path == "/api" or self.metrics_path.startswith("/api/"):
            problems.append("METRICS_PATH must be outside /api")
        if problems:
            raise ValueError("invalid metrics settings:\n- " + "\n- ".join(problems))
        return self

    @model_validator(mode="after")
    def _refuse_unsafe_production(self) -> Self:
        if self.environment == Environment.PRODUCTION:
            problems = [problem for problem, found in PRODUCTION_REFUSALS if found(self)]
            if problems:
                raise ValueError("unsafe settings for ENVIRONMENT=production:\n- " + "\n- ".join(problems))
        return self

    @model_validator(mode="after")
    def _require_api_keys(self) -> Self:
        """A self-declared `source` is not access control: outside development, API keys are mandatory."""
        if self.environment != Environment.DEVELOPMENT and not self.auth_enabled:
            raise ValueError(
                f"ENVIRONMENT={self.environment.value} requires AUTH_ENABLED=true and API_KEYS_FILE "
                "(create keys with `python -m core.auth new-key`; see docs/security.md)"
            )
        if self.auth_enabled and not (self.api_keys_file or self.auth_jwt_issuer):
            raise ValueError(
                "AUTH_ENABLED=true requires API_KEYS_FILE (the file of hashed API keys) or AUTH_JWT_ISSUER"
            )
        if self.auth_jwt_issuer and not (self.auth_jwt_audience and self.auth_jwt_grants_file):
            raise ValueError("AUTH_JWT_ISSUER requires AUTH_JWT_AUDIENCE and AUTH_JWT_GRANTS_FILE")
        return self


PRODUCTION_REFUSALS: tuple[tuple[str, Callable[[CheckedSettings], bool]], ...] = (
    ("CORS_ORIGINS='*' is refused in production: list the allowed origins", lambda s: "*" in s.cors_origins),
    ("DYNAMODB_CREATE_TABLES=true: create tables with infrastructure code", lambda s: s.dynamodb_create_tables),
    ("SCHEMA_REGISTRY is mock://: consumers cannot resolve it", lambda s: s.schema_registry.startswith("mock:")),
)
"""What ENVIRONMENT=production refuses to start with: (the problem, the check that finds it).
Missing API keys are refused in staging too, by `CheckedSettings._require_api_keys`."""

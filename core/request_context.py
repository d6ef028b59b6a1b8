"""Per-request values that logs and error bodies read without passing them around."""

from contextvars import ContextVar
from typing import Any

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

idempotency_var: ContextVar[tuple[str, str] | None] = ContextVar("idempotency", default=None)
"""The write's `Idempotency-Key` and a fingerprint of the request it came with; None without one."""

request_log_fields_var: ContextVar[dict[str, Any] | None] = ContextVar("request_log_fields", default=None)
"""Fields the request's log line adds; a dict the middleware creates, so a threadpool route's
additions reach the middleware (the thread runs in a copy of the context holding the same dict)."""


def annotate_request(**fields: Any) -> None:
    """Add fields to this request's log line (entity type, categories: never feature values)."""
    current = request_log_fields_var.get()
    if current is not None:
        current.update(fields)

"""Per-request values that logs and error bodies read without passing them around."""

from contextvars import ContextVar

request_id_var: ContextVar[str] = ContextVar("request_id", default="-")

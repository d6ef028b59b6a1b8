"""One exception per error code of the service's envelope (`{"detail", "error", "request_id"}`), and
the transport's own failures. Every error raised by the client derives from `FeatureStoreError`."""

from typing import Any

import httpx


class FeatureStoreError(Exception):
    """An error answer of the service, or no answer at all (`TransportError`).

    `request_id` is the `X-Request-ID` of the call: quote it when asking the service's operators."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int | None = None,
        error: str | None = None,
        detail: Any = None,
        request_id: str | None = None,
    ) -> None:
        super().__init__(message)
        self.message = message
        self.status_code = status_code
        self.error = error
        self.detail = detail
        self.request_id = request_id

    def __str__(self) -> str:
        parts = [self.message]
        if self.status_code is not None:
            parts.append(f"status {self.status_code}")
        if self.request_id:
            parts.append(f"request_id {self.request_id}")
        return " | ".join(parts)


class BadRequest(FeatureStoreError):
    """400: a request the service could not read at all."""


class Unauthorized(FeatureStoreError):
    """401: no API key, or one the service does not know."""


class Forbidden(FeatureStoreError):
    """403: the key lacks the scope, or the writer may not write that source or category."""


class NotFound(FeatureStoreError):
    """404: nothing (fresh) in that category for the entity, or no such registry category."""


class PayloadTooLarge(FeatureStoreError):
    """413: the body is over the service's `max_body_bytes`, or a store's item limit."""


class UnsupportedMediaType(FeatureStoreError):
    """415: the body was not JSON."""


class ValidationError(FeatureStoreError):
    """422: malformed input, an unknown entity type or category, a value the registry refuses, a limit exceeded.

    `errors` holds the field errors: `{"type", "loc", "msg"}`, plus `category`, `feature`, `expected`
    and `received` for a registry refusal."""

    @property
    def errors(self) -> list[dict[str, Any]]:
        return [item for item in self.detail if isinstance(item, dict)] if isinstance(self.detail, list) else []


class RetryableError(FeatureStoreError):
    """Refused for now; `retry_after` is the seconds the service asked to wait (None when it said nothing)."""

    def __init__(self, message: str, *, retry_after: float | None = None, **kwargs: Any) -> None:
        super().__init__(message, **kwargs)
        self.retry_after = retry_after


class RateLimited(RetryableError):
    """429: the key spent its request budget."""


class ServiceUnavailable(RetryableError):
    """503: the service or its store cannot serve now."""


class StoreUnavailable(ServiceUnavailable):
    """503 `store_unavailable`: the online store cannot serve now."""


class ServerError(FeatureStoreError):
    """500 or another status the service does not document: a fault on the service's side."""


class TransportError(FeatureStoreError):
    """No answer: the connection failed or broke. Reads are retried; writes never are, since a write
    may have been applied without its answer arriving."""


class Timeout(TransportError):
    """No answer within the client's timeout."""


BY_CODE: dict[str, type[FeatureStoreError]] = {
    "bad_request": BadRequest,
    "unauthorized": Unauthorized,
    "forbidden": Forbidden,
    "not_found": NotFound,
    "payload_too_large": PayloadTooLarge,
    "unsupported_media_type": UnsupportedMediaType,
    "validation_error": ValidationError,
    "rate_limited": RateLimited,
    "service_unavailable": ServiceUnavailable,
    "store_unavailable": StoreUnavailable,
    "internal_error": ServerError,
}
BY_STATUS: dict[int, type[FeatureStoreError]] = {
    400: BadRequest,
    401: Unauthorized,
    403: Forbidden,
    404: NotFound,
    413: PayloadTooLarge,
    415: UnsupportedMediaType,
    422: ValidationError,
    429: RateLimited,
    503: ServiceUnavailable,
}


def retry_after_seconds(response: httpx.Response) -> float | None:
    """`Retry-After` in seconds; None when absent or not a number of seconds (the service sends seconds)."""
    value = response.headers.get("Retry-After")
    if value is None:
        return None
    try:
        seconds = float(value)
    except ValueError:
        return None
    return seconds if seconds >= 0 else None


def error_from_response(response: httpx.Response, request_id: str | None) -> FeatureStoreError:
    """The exception for an error answer: by its envelope's `error` code, else by its status."""
    try:
        body = response.json()
    except ValueError:
        body = None
    envelope = body if isinstance(body, dict) else {}
    code = envelope.get("error") if isinstance(envelope.get("error"), str) else None
    detail = envelope.get("detail", response.text[:1000] if body is None else body)
    request_id = envelope.get("request_id") or response.headers.get("X-Request-ID") or request_id
    cls = BY_CODE.get(code or "") or BY_STATUS.get(response.status_code) or ServerError
    message = detail if isinstance(detail, str) else f"{code or 'error'}: {_summary(detail)}"
    kwargs: dict[str, Any] = {
        "status_code": response.status_code,
        "error": code,
        "detail": detail,
        "request_id": request_id,
    }
    if issubclass(cls, RetryableError):
        return cls(message, retry_after=retry_after_seconds(response), **kwargs)
    return cls(message, **kwargs)


def _summary(detail: Any) -> str:
    if isinstance(detail, list):
        messages = [
            f"{'.'.join(str(part) for part in item.get('loc', ()))}: {item.get('msg', '')}"
            for item in detail
            if isinstance(item, dict)
        ]
        return "; ".join(messages[:5]) + (f" (and {len(messages) - 5} more)" if len(messages) > 5 else "")
    return str(detail)[:500]

"""The service's one error hierarchy; each error carries its HTTP status and code, which
`core/error_envelope.py` turns into a response (`api/errors.py` registers that for the routes)."""

from collections.abc import Sequence
from typing import Any

MAX_LOC_CHARS = 128
"""Error locations can hold the client's own object keys; longer ones are cut."""


class FeatureStoreError(Exception):
    """Base of every error the service raises on purpose; carries its HTTP status and code."""

    status_code = 500
    error = "internal_error"
    retry_after: int | None = None
    """Seconds after which a retry may succeed; sent as `Retry-After` when set."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message

    @property
    def detail(self) -> Any:
        return self.message


class ConfigurationError(FeatureStoreError):
    """The service cannot start with its settings or bundled files (e.g. the event schema)."""

    error = "configuration_error"


class InvalidRequest(FeatureStoreError):
    """Input that passed pydantic but breaks a rule of the contract; reported like a field error."""

    status_code = 422
    error = "validation_error"

    def __init__(self, message: str, loc: Sequence[str | int] = ("body",), kind: str = "value_error") -> None:
        super().__init__(message)
        self.loc = tuple(item[:MAX_LOC_CHARS] if isinstance(item, str) else item for item in loc)
        self.kind = kind

    @property
    def detail(self) -> Any:
        return [{"type": self.kind, "loc": list(self.loc), "msg": self.message}]


class SourceRequired(InvalidRequest):
    """A write without API keys that does not name its writer."""


class BadRequest(FeatureStoreError):
    """A request the HTTP layer cannot read at all (e.g. a malformed Content-Length header)."""

    status_code = 400
    error = "bad_request"


class NotFound(FeatureStoreError):
    status_code = 404
    error = "not_found"


class Unauthorized(FeatureStoreError):
    """No API key, or one that matches no configured key."""

    status_code = 401
    error = "unauthorized"


class Forbidden(FeatureStoreError):
    """A known caller asking for something it may not do (scope, writer, category)."""

    status_code = 403
    error = "forbidden"


class PayloadTooLarge(FeatureStoreError):
    status_code = 413
    error = "payload_too_large"


class UnsupportedMediaType(FeatureStoreError):
    status_code = 415
    error = "unsupported_media_type"


class RequestTimeout(FeatureStoreError):
    """The client did not send its request (head or body) within the time allowed; the connection is closed."""

    status_code = 408
    error = "request_timeout"


class UriTooLong(FeatureStoreError):
    """The request target (path and query string) is longer than the server reads."""

    status_code = 414
    error = "uri_too_long"


class HeadersTooLarge(FeatureStoreError):
    """The request's header fields together are larger than the server reads."""

    status_code = 431
    error = "headers_too_large"


class RetryLater(FeatureStoreError):
    """Refused for now; the client may retry after `retry_after` seconds."""

    retry_after: int

    def __init__(self, message: str, retry_after: int = 1) -> None:
        super().__init__(message)
        self.retry_after = retry_after


class RateLimited(RetryLater):
    """The caller's key spent its request budget."""

    status_code = 429
    error = "rate_limited"


class ServiceUnavailable(RetryLater):
    """A dependency cannot serve now."""

    status_code = 503
    error = "service_unavailable"


class Overloaded(ServiceUnavailable):
    """This process is already handling as many requests as it may at once."""

    error = "overloaded"


class StoreUnavailable(ServiceUnavailable):
    error = "store_unavailable"


class OutcomeUnknown(ServiceUnavailable):
    """The store did not answer in time, even to the same transaction sent again: the change may or may not
    have been applied. Unlike `StoreUnavailable` (nothing written), retrying with the same
    `Idempotency-Key` is the way to learn the outcome without applying anything twice."""

    error = "outcome_unknown"


IDEMPOTENCY_CONFLICT = "this Idempotency-Key was used for another request: use a new key for a new request"


class IdempotencyConflict(FeatureStoreError):
    """An `Idempotency-Key` used before (within IDEMPOTENCY_TTL_SECONDS) for a different request."""

    status_code = 409
    error = "idempotency_conflict"


class StoreThrottled(StoreUnavailable):
    """The store refuses for throttling (DynamoDB's capacity); the same answer as any unavailable store,
    a class of its own so that metrics name it (`error="StoreThrottled"`)."""


class StoreFull(StoreUnavailable):
    """The embedded store's disk is full: nothing more can be written until space is freed."""

    error = "store_full"


ERROR_CODES = (
    "bad_request",
    "configuration_error",
    "forbidden",
    "headers_too_large",
    "idempotency_conflict",
    "internal_error",
    "method_not_allowed",
    "not_found",
    "outcome_unknown",
    "overloaded",
    "payload_too_large",
    "rate_limited",
    "request_timeout",
    "service_unavailable",
    "store_full",
    "store_unavailable",
    "unauthorized",
    "unsupported_media_type",
    "uri_too_long",
    "validation_error",
)
"""Every `error` an error response can carry: the codes of the hierarchy above, and
`method_not_allowed` for a path asked with a method it does not serve. OpenAPI lists them as an enum."""

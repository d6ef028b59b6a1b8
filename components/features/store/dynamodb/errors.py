"""DynamoDB's errors in the service's terms (`core.exceptions`), as the embedded store translates its own:
what DynamoDB can never hold is the client's (413, `PayloadTooLarge`); throttling, outages, missing
tables and credentials are ours to retry (503, `StoreUnavailable` with `Retry-After`; throttling as its
subclass `StoreThrottled`, which metrics name); anything else DynamoDB rejects is a bug of ours (500,
`FeatureStoreError`). Clients see the error's code only; the log keeps DynamoDB's own words (endpoints,
table names, error codes): every message here is fixed text."""

import logging
from collections.abc import Iterator
from contextlib import contextmanager

from core.dynamodb_client import DynamoDBError, DynamoDBServiceError, InvalidParameters
from core.exceptions import FeatureStoreError, OutcomeUnknown, PayloadTooLarge, StoreThrottled, StoreUnavailable

logger = logging.getLogger("feature_store.dynamodb")

SIZE_ERRORS = ("item size", "size has exceeded", "cannot exceed 4 mb", "transaction request cannot exceed")
THROTTLED_REASONS = {"ThrottlingError", "ProvisionedThroughputExceeded", "RequestLimitExceeded"}
"""A cancelled transaction's per-action reasons that mean throttling."""
ITEM_TOO_LARGE = "a category of this write is larger than DynamoDB stores (400 KB an item, 4 MB a write)"
CONDITION_FAILED = "ConditionalCheckFailedException"
TRANSACTION_CANCELLED = "TransactionCanceledException"


def is_size_error(message: str) -> bool:
    lowered = message.lower()
    return any(marker in lowered for marker in SIZE_ERRORS)


def translate_error(exc: DynamoDBError, action: str) -> FeatureStoreError:
    """Every non-200 answer (and no answer at all) as the service's own error."""
    logger.warning("DynamoDB %s failed: %s", action, exc)
    if isinstance(exc, DynamoDBServiceError):
        code, message = exc.code, exc.message
        if code == "ValidationException" and is_size_error(message):
            return PayloadTooLarge(ITEM_TOO_LARGE)
        if code in ("ValidationException", "SerializationException"):
            return FeatureStoreError("DynamoDB rejected the request")
        if "Throttl" in code or "LimitExceeded" in code or "ThroughputExceeded" in code:
            return StoreThrottled("DynamoDB is throttling requests", retry_after=1)
        return StoreUnavailable("DynamoDB could not serve the request", retry_after=2)
    if isinstance(exc, InvalidParameters):
        return FeatureStoreError("invalid DynamoDB request")
    return StoreUnavailable("DynamoDB is unreachable", retry_after=2)


OUTCOME_UNKNOWN = (
    "DynamoDB did not answer in time, even to the same transaction sent again: the write may or may not "
    "have been applied; send it again with the same Idempotency-Key to learn which"
)


def write_error(exc: DynamoDBError, action: str) -> FeatureStoreError:
    """A transaction's failure: `OutcomeUnknown` when an attempt may have reached DynamoDB unanswered (the
    client sent them all with one `ClientRequestToken`, so DynamoDB applied it at most once, but nothing says
    whether it did); otherwise as `translate_error`, which for an outage means nothing was written."""
    if exc.maybe_applied:
        logger.warning("DynamoDB %s outcome unknown: %s", action, exc)
        return OutcomeUnknown(OUTCOME_UNKNOWN, retry_after=2)
    return translate_error(exc, action)


@contextmanager
def translated(action: str) -> Iterator[None]:
    try:
        yield
    except DynamoDBError as exc:
        raise translate_error(exc, action) from exc


def cancellation(code: str, message: str) -> bool:
    """One reason a transaction was cancelled: True for a conflict worth retrying; raise the service's
    error for anything else."""
    if code == "TransactionConflict":
        return True
    if code in THROTTLED_REASONS:
        raise StoreThrottled("DynamoDB is throttling writes", retry_after=1)
    if code == "ValidationError" and is_size_error(message):
        raise PayloadTooLarge(ITEM_TOO_LARGE)
    logger.warning("DynamoDB cancelled a write: %s: %s", code, message)
    raise FeatureStoreError("DynamoDB cancelled the write")

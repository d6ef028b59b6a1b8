"""What the DynamoDB client raises: an answer DynamoDB gave (any non-200), or no answer at all.

`DynamoDBServiceError` reads the JSON 1.0 error body the way botocore's JSON parser does: the code is
`__type` after its last `#` (the HTTP status when the body has none), the message is `message` or
`Message`, and every other field of the body (`CancellationReasons`, a failed condition's `Item`) is
kept. Its `response` has the shape of botocore's `ClientError.response`, so code written against a
`ClientError` (`exc.response["Error"]["Code"]`, `exc.response.get("CancellationReasons")`) reads it
unchanged. Attribute values inside it are the wire's: binary values are base64 text, not bytes.
"""

from typing import Any

import orjson

THROTTLING_CODES = frozenset(
    {
        "Throttling",
        "ThrottlingException",
        "ThrottledException",
        "RequestThrottledException",
        "TooManyRequestsException",
        "ProvisionedThroughputExceededException",
        "TransactionInProgressException",
        "RequestLimitExceeded",
        "BandwidthLimitExceeded",
        "LimitExceededException",
        "RequestThrottled",
        "SlowDown",
        "PriorRequestNotComplete",
        "EC2ThrottledException",
    }
)
"""Codes botocore's standard retry mode treats as throttling (retried, with the long backoff)."""

TRANSIENT_CODES = frozenset(
    {"RequestTimeout", "RequestTimeoutException", "PriorRequestNotComplete", "ReplicatedWriteConflictException"}
)
"""Codes retried with the short backoff: botocore's transient codes and DynamoDB's modelled retryable error."""

TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})


class DynamoDBError(Exception):
    """Base of everything the DynamoDB client raises."""

    maybe_applied = False
    """Set on the error a call ends with when one of its attempts may have reached DynamoDB without an answer
    (a timeout or a broken connection once the request was sent, a 5xx): a write may have been applied."""


class DynamoDBServiceError(DynamoDBError):
    """DynamoDB answered a call with an error."""

    retry_after_ms: str | None = None
    """DynamoDB's `x-amz-retry-after` header, when it sent one."""

    def __init__(self, operation: str, status: int, body: dict[str, Any], request_id: str | None = None) -> None:
        raw_code = body.get("__type")
        code = str(raw_code) if raw_code else str(status)
        code = code.split(":", 1)[0].rsplit("#", 1)[-1]
        message = str(body.get("message", body.get("Message", "")))
        super().__init__(f"An error occurred ({code}) when calling the {operation} operation: {message}")
        self.operation = operation
        self.code = code
        self.message = message
        self.status = status
        metadata: dict[str, Any] = {"HTTPStatusCode": status}
        if request_id:
            metadata["RequestId"] = request_id
        fields = {key: value for key, value in body.items() if key not in ("__type", "message", "Message")}
        self.response: dict[str, Any] = {
            **fields,
            "Error": {"Code": code, "Message": message},
            "ResponseMetadata": metadata,
        }

    @classmethod
    def from_body(cls, operation: str, status: int, raw: bytes, request_id: str | None) -> "DynamoDBServiceError":
        """An error from its raw body; a body that is not a JSON object becomes the message, as in botocore."""
        try:
            body = orjson.loads(raw) if raw else {}
        except orjson.JSONDecodeError:
            body = {"message": raw.decode("utf-8", "replace")}
        if not isinstance(body, dict):
            body = {"message": raw.decode("utf-8", "replace")}
        return cls(operation, status, body, request_id)

    @property
    def cancellation_reasons(self) -> list[dict[str, Any]]:
        """Per action of a cancelled transaction, in order: `{"Code": ..., "Message": ..., "Item": ...}`."""
        return list(self.response.get("CancellationReasons") or [])

    @property
    def throttling(self) -> bool:
        return self.code in THROTTLING_CODES or self.status == 429

    @property
    def transient(self) -> bool:
        return self.code in TRANSIENT_CODES or self.status in TRANSIENT_STATUSES


class InvalidParameters(DynamoDBError):
    """The call's parameters cannot be sent (a value JSON cannot carry); nothing was sent."""


class DynamoDBUnreachable(DynamoDBError):
    """No answer: the connection could not be made or broke, or the answer could not be read."""

    def __init__(self, message: str, *, sent: bool = True) -> None:
        super().__init__(message)
        self.sent = sent
        """False when no connection was made: the request never left."""


class DynamoDBTimeout(DynamoDBUnreachable):
    """No answer within the connect or read timeout."""


class ChecksumMismatch(DynamoDBUnreachable):
    """The answer's body does not match its `x-amz-crc32` checksum: damaged on the way."""


class NoCredentials(DynamoDBError):
    """The credentials chain found no credentials, or the provider that holds them failed to refresh them."""

"""What the sync and async clients share, sans I/O: each operation as a `Call` (request and parser,
`_calls`), the retry rules (`_retries`), bulk writes' checks, splitting and results (`_bulk`), request
ids, and the clients' defaults. Neither client does any HTTP work here; each sends the calls its own way
and asks `Attempts` whether, and after how long, to send again."""

from feature_store_client._bulk import (
    DEFAULT_BATCH_WRITE_ENTITIES,
    PartWrite,
    batch_write_result,
    entity_body,
    split_entities,
)
from feature_store_client._calls import (
    Call,
    delete_call,
    limits_call,
    merge_batches,
    merge_rollbacks,
    new_request_id,
    read_batch_call,
    read_category_call,
    read_features_call,
    ready_call,
    registry_call,
    registry_category_call,
    request_headers,
    rollback_call,
    rollback_parts,
    split_batch,
    write_call,
    write_headers,
    write_meta,
)
from feature_store_client._retries import Attempts, RetryPolicy

DEFAULT_ENTITY_TYPE = "bright_uid"
DEFAULT_TIMEOUT = 10.0
DEFAULT_CONCURRENCY = 8

__all__ = [
    "DEFAULT_BATCH_WRITE_ENTITIES",
    "DEFAULT_CONCURRENCY",
    "DEFAULT_ENTITY_TYPE",
    "DEFAULT_TIMEOUT",
    "Attempts",
    "Call",
    "PartWrite",
    "RetryPolicy",
    "batch_write_result",
    "delete_call",
    "entity_body",
    "limits_call",
    "merge_batches",
    "merge_rollbacks",
    "new_request_id",
    "read_batch_call",
    "read_category_call",
    "read_features_call",
    "ready_call",
    "registry_call",
    "registry_category_call",
    "request_headers",
    "rollback_call",
    "rollback_parts",
    "split_batch",
    "split_entities",
    "write_call",
    "write_headers",
    "write_meta",
]

"""Typed Python client of the Feature Store API: `FeatureStoreClient` (blocking) and
`AsyncFeatureStoreClient` (asyncio), with the same methods."""

from feature_store_client._core import RetryPolicy
from feature_store_client._version import __version__
from feature_store_client.aio import AsyncFeatureStoreClient
from feature_store_client.client import FeatureStoreClient
from feature_store_client.errors import (
    BadRequest,
    FeatureStoreError,
    Forbidden,
    NotFound,
    PayloadTooLarge,
    RateLimited,
    RetryableError,
    ServerError,
    ServiceUnavailable,
    StoreUnavailable,
    Timeout,
    TransportError,
    Unauthorized,
    UnsupportedMediaType,
    ValidationError,
)
from feature_store_client.models import (
    BatchResult,
    CategoryResult,
    EntityFeatures,
    FeaturesResult,
    Limits,
    Readiness,
    Registry,
    RegistryCategory,
    WriteResult,
)

__all__ = [
    "__version__",
    "AsyncFeatureStoreClient",
    "BadRequest",
    "BatchResult",
    "CategoryResult",
    "EntityFeatures",
    "FeatureStoreClient",
    "FeatureStoreError",
    "FeaturesResult",
    "Forbidden",
    "Limits",
    "NotFound",
    "PayloadTooLarge",
    "RateLimited",
    "Readiness",
    "Registry",
    "RegistryCategory",
    "RetryPolicy",
    "RetryableError",
    "ServerError",
    "ServiceUnavailable",
    "StoreUnavailable",
    "Timeout",
    "TransportError",
    "Unauthorized",
    "UnsupportedMediaType",
    "ValidationError",
    "WriteResult",
]

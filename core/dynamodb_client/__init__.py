"""An asyncio DynamoDB client: DynamoDB's JSON protocol over aiohttp, with botocore's credentials
chain, SigV4 signing, endpoint resolution and retry modes. See `client` for what comes from where."""

from core.dynamodb_client.client import DynamoDBClient, get_client, get_client_async
from core.dynamodb_client.config import ClientConfig, resolve
from core.dynamodb_client.errors import (
    ChecksumMismatch,
    DynamoDBError,
    DynamoDBServiceError,
    DynamoDBTimeout,
    DynamoDBUnreachable,
    InvalidParameters,
    NoCredentials,
)

__all__ = [
    "ChecksumMismatch",
    "ClientConfig",
    "DynamoDBClient",
    "DynamoDBError",
    "DynamoDBServiceError",
    "DynamoDBTimeout",
    "DynamoDBUnreachable",
    "InvalidParameters",
    "NoCredentials",
    "get_client",
    "get_client_async",
    "resolve",
]

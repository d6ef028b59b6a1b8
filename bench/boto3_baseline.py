"""The DynamoDB path the store used before its asyncio client, kept as the benchmarks' baseline: a
boto3 client configured as the store configured it (one per process, thread-safe), and the value
converter it used on boto3's parsed answers (binary values as bytes)."""

import threading
from decimal import Decimal
from typing import Any

import boto3
from botocore.config import Config

from core.settings import Settings

FLOAT_TAG = b"float:"
MIN_MAGNITUDE = 1e-130
MAX_MAGNITUDE = 1e126

_lock = threading.Lock()
_clients: dict[tuple[Any, ...], Any] = {}


def get_client(settings: Settings) -> Any:
    """The shared boto3 client for this configuration, created on the first call."""
    key = (settings.aws_region, settings.dynamodb_endpoint_url, settings.dynamodb_max_connections)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                config = Config(
                    connect_timeout=settings.dynamodb_connect_timeout_seconds,
                    read_timeout=settings.dynamodb_read_timeout_seconds,
                    retries={
                        "mode": settings.dynamodb_retry_mode,
                        "total_max_attempts": settings.dynamodb_max_attempts,
                    },
                    max_pool_connections=settings.dynamodb_max_connections,
                    tcp_keepalive=True,
                )
                client = _clients[key] = boto3.session.Session().client(
                    "dynamodb",
                    region_name=settings.aws_region,
                    endpoint_url=settings.dynamodb_endpoint_url or None,
                    config=config,
                )
    return client


def encode(value: Any) -> dict[str, Any]:
    if isinstance(value, str):
        return {"S": value}
    if isinstance(value, bool):
        return {"BOOL": value}
    if value is None:
        return {"NULL": True}
    if isinstance(value, int):
        return {"N": str(value)}
    if isinstance(value, float):
        if value == 0 or MIN_MAGNITUDE <= abs(value) < MAX_MAGNITUDE:
            return {"N": str(Decimal(repr(value)))}
        return {"B": FLOAT_TAG + repr(value).encode()}
    if isinstance(value, dict):
        return {"M": encode_map(value)}
    if isinstance(value, (list, tuple)):
        return {"L": [encode(item) for item in value]}
    raise TypeError(f"cannot store a {type(value).__name__} in DynamoDB")


def encode_map(values: dict[str, Any]) -> dict[str, Any]:
    return {key: encode(value) for key, value in values.items()}


def number(text: str) -> int | float:
    """Digits only: an int (exact, any size); anything with a point or an exponent: a float."""
    try:
        return int(text)
    except ValueError:
        return float(text)


def decode(attribute: dict[str, Any]) -> Any:
    ((kind, value),) = attribute.items()
    if kind == "S":
        return value
    if kind == "N":
        return number(value)
    if kind == "M":
        return decode_map(value)
    if kind == "L":
        return [decode(item) for item in value]
    if kind == "BOOL":
        return value
    if kind == "NULL":
        return None
    if kind == "B":
        return _binary(value)
    if kind == "SS":
        return list(value)
    if kind == "NS":
        return [number(item) for item in value]
    if kind == "BS":
        return [_binary(item) for item in value]
    raise ValueError(f"unknown DynamoDB attribute type {kind!r}")


def decode_map(values: dict[str, Any]) -> dict[str, Any]:
    return {key: decode(value) for key, value in values.items()}


def _binary(value: bytes) -> Any:
    if value.startswith(FLOAT_TAG):
        return float(value[len(FLOAT_TAG) :].decode())
    return value.hex()

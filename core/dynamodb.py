"""The process-wide DynamoDB client: built lazily on first use, once per configuration, shared by all threads.

A boto3 *client* is thread-safe (resources and the default session are not), so one client whose
connection pool matches the worker threads serves the whole process. This module is the only place
a boto3 client is built; nothing builds one per request.
"""

import threading
from typing import Any

import boto3
from botocore.config import Config

from core.settings import Settings

_lock = threading.Lock()
_clients: dict[tuple[Any, ...], Any] = {}


def client_config(settings: Settings) -> Config:
    """Timeouts and retries bound every call; the pool holds a connection for every thread that may call."""
    return Config(
        connect_timeout=settings.dynamodb_connect_timeout_seconds,
        read_timeout=settings.dynamodb_read_timeout_seconds,
        retries={"mode": settings.dynamodb_retry_mode, "total_max_attempts": settings.dynamodb_max_attempts},
        max_pool_connections=settings.threadpool_size + settings.dynamodb_batch_threads,
        tcp_keepalive=True,
    )


def _key(settings: Settings) -> tuple[Any, ...]:
    return (
        settings.aws_region,
        settings.dynamodb_endpoint_url,
        settings.dynamodb_connect_timeout_seconds,
        settings.dynamodb_read_timeout_seconds,
        settings.dynamodb_retry_mode,
        settings.dynamodb_max_attempts,
        settings.threadpool_size + settings.dynamodb_batch_threads,
    )


def get_client(settings: Settings) -> Any:
    """The shared low-level client for this configuration, created on the first call (thread-safe)."""
    key = _key(settings)
    client = _clients.get(key)
    if client is None:
        with _lock:
            client = _clients.get(key)
            if client is None:
                # A session of our own: boto3's default session must not be shared between threads.
                client = boto3.session.Session().client(
                    "dynamodb",
                    region_name=settings.aws_region,
                    endpoint_url=settings.dynamodb_endpoint_url or None,
                    config=client_config(settings),
                )
                _clients[key] = client
    return client

"""Where and how the DynamoDB client connects, resolved once as a botocore client built from the
same settings would resolve it."""

from dataclasses import dataclass
from urllib.parse import urlsplit

import botocore.session
from botocore.credentials import Credentials
from botocore.exceptions import BotoCoreError
from botocore.httpsession import get_cert_path
from botocore.utils import get_environ_proxies

from core.dynamodb_client.errors import DynamoDBError
from core.settings import Settings

SERVICE = "dynamodb"


@dataclass(frozen=True)
class ClientConfig:
    """Everything a client needs but its credentials, resolved once."""

    endpoint_url: str
    region: str
    connect_timeout: float = 1.0
    read_timeout: float = 2.0
    retry_mode: str = "standard"
    max_attempts: int = 3
    pool_size: int = 64
    ca_bundle: str | None = None
    """CA file for https endpoints (botocore's `AWS_CA_BUNDLE` / `ca_bundle`, else certifi's)."""
    proxy: str | None = None


def resolve(settings: Settings) -> tuple[ClientConfig, Credentials | None]:
    """Region, endpoint, CA bundle, proxy and the credentials provider, as a botocore client built
    from these settings would have them. Blocking: credentials providers may make network calls."""
    try:
        session = botocore.session.Session()
        credentials = session.get_credentials()
        probe = session.create_client(
            SERVICE,
            region_name=settings.aws_region or None,
            endpoint_url=settings.dynamodb_endpoint_url or None,
        )
        endpoint_url, region = probe.meta.endpoint_url, probe.meta.region_name
        probe.close()
        ca_bundle = get_cert_path(session.get_config_variable("ca_bundle") or True)
    except BotoCoreError as exc:
        raise DynamoDBError(f"cannot configure the DynamoDB client: {exc}") from exc
    scheme = urlsplit(endpoint_url).scheme
    config = ClientConfig(
        endpoint_url=endpoint_url,
        region=region,
        connect_timeout=settings.dynamodb_connect_timeout_seconds,
        read_timeout=settings.dynamodb_read_timeout_seconds,
        retry_mode=settings.dynamodb_retry_mode,
        max_attempts=settings.dynamodb_max_attempts,
        pool_size=settings.dynamodb_max_connections,
        ca_bundle=ca_bundle if scheme == "https" else None,
        proxy=get_environ_proxies(endpoint_url).get(scheme),
    )
    return config, credentials

"""Create the DynamoDB tables the service needs (one per entity type, and the outbox), with TTL on
`expires_at`, at the endpoint and with the names the settings give (environment or `.env`).

    DYNAMODB_ENDPOINT_URL=http://127.0.0.1:8001 make dynamodb-tables

Idempotent: existing tables are left as they are.
"""

import asyncio
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from components.features.store.dynamodb import create_tables  # noqa: E402
from components.features.store.dynamodb.errors import translated  # noqa: E402
from core.dynamodb_client import DynamoDBClient  # noqa: E402
from core.exceptions import FeatureStoreError  # noqa: E402
from core.settings import Settings  # noqa: E402


async def create(settings: Settings) -> list[str]:
    """With the service's own DynamoDB client, closed when done."""
    with translated("client creation"):
        client = DynamoDBClient.from_settings(settings)
    try:
        return await create_tables(client, settings)
    finally:
        await client.close()


def main() -> int:
    settings = Settings()
    where = settings.dynamodb_endpoint_url or f"AWS region {settings.aws_region}"
    try:
        actions = asyncio.run(create(settings))
    except FeatureStoreError as exc:
        print(f"could not create the tables at {where}: {exc.message}", file=sys.stderr)
        return 1
    for action in actions or ["all tables already exist"]:
        print(f"{where}: {action}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

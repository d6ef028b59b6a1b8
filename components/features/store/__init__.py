"""Online stores: the embedded SQLite default and DynamoDB for production, behind one interface."""

from components.features.store.base import OnlineStore
from core.settings import Settings, StoreBackend


def create_store(settings: Settings) -> OnlineStore:
    """Build the configured store; no connection is opened until it is first used."""
    if settings.store_backend == StoreBackend.SQLITE:
        from components.features.store.sqlite import SQLiteStore

        return SQLiteStore(settings.sqlite_path, settings.sqlite_synchronous)
    from components.features.store.dynamodb import DynamoDBStore

    return DynamoDBStore(settings)

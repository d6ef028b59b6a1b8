"""The DynamoDB online store, split by concern: `store` (reads and writes), `items` (the item layout,
values and sizes), `errors` (DynamoDB's errors in the service's terms), `outbox` (the outbox table),
`tables` (creating the tables)."""

from components.features.store.dynamodb.errors import translate_error
from components.features.store.dynamodb.store import DynamoDBStore
from components.features.store.dynamodb.tables import create_tables

__all__ = ["DynamoDBStore", "create_tables", "translate_error"]

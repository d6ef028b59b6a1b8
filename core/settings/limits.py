"""Limits settings: how much one request may ask for or carry, how long data may live, and how often
each API key may call. Each limit is answered with a 4xx and nothing written."""

from pydantic import BaseModel, Field

BATCH_BODY_BYTES_PER_ENTITY = 32 * 1024
"""Body bytes a bulk write may spend per entity it may hold: 16 MiB for the default 500 entities."""


class LimitsSettings(BaseModel):
    max_body_bytes: int = Field(1_048_576, gt=0)
    max_feature_list: int = Field(1000, gt=0)
    """Most `category:feature` entries in one read request."""
    max_batch_entities: int = Field(1000, gt=0)
    max_batch_write_entities: int = Field(500, gt=0)
    """Most entities in one bulk write (`POST /api/v1/items/batch`); its body may hold
    `BATCH_BODY_BYTES_PER_ENTITY` bytes per entity (never less than MAX_BODY_BYTES)."""
    max_categories_per_write: int = Field(25, gt=0)
    max_features_per_category: int = Field(1000, gt=0)
    max_features_per_write: int = Field(5000, gt=0)
    """Most features across all categories of one write."""
    max_string_bytes: int = Field(65_536, gt=0)
    """Longest string value a feature may hold, in UTF-8 bytes."""
    max_json_depth: int = Field(16, gt=0, le=128)
    """Deepest nesting of lists and objects inside one feature value (orjson stores at most 254 levels)."""
    max_ttl_seconds: int = Field(10 * 365 * 24 * 3600, gt=0)
    delete_tombstone_seconds: int = Field(7 * 24 * 3600, gt=0)
    idempotency_ttl_seconds: int = Field(24 * 3600, gt=0)
    """How long a write's `Idempotency-Key` answers its first result again."""
    """How long a deleted category is remembered, so a write with an older `event_time` cannot bring
    its data back."""
    max_event_time_ahead_seconds: int = Field(300, gt=0)
    """How far ahead of the server's clock a write's or a deletion's `event_time` may be: one far in the
    future would make every later write of its categories skipped."""

    rate_limit_per_second: float = Field(0.0, ge=0)
    """Requests a second each API key may make on average, per process; 0 = no limit."""
    rate_limit_burst: int = Field(20, gt=0)
    """Requests a key may make at once before the per-second rate applies."""

    @property
    def max_batch_write_body_bytes(self) -> int:
        """The bulk write's body limit: it scales with MAX_BATCH_WRITE_ENTITIES."""
        return max(self.max_body_bytes, self.max_batch_write_entities * BATCH_BODY_BYTES_PER_ENTITY)

"""The data set and the requests the benchmark sends.

Every seeded entity (`bench-0` ...) has 5 categories of 20 float features, on both backends. Request
templates hold `{id}` where an entity value goes (see bench/load.py).
"""

import json
from dataclasses import dataclass

CATEGORIES = ["user_features", "credit_features", "transaction_features", "trans_features", "d0_unauth_features"]
FEATURES = [f"feature_{index:02d}" for index in range(20)]
HISTORY_CATEGORY = "history_features"
"""A category of its own that keeps history (docs/history.md), written by `write_1x20_history` only."""
HISTORY_ENV = {
    "ALLOWED_CATEGORIES": ",".join([*CATEGORIES, HISTORY_CATEGORY]),
    "CATEGORY_HISTORY": json.dumps({HISTORY_CATEGORY: {"versions": 10, "retention_seconds": 604800}}),
}
"""The service's open registry in the benchmark: the seeded categories, and the one with history."""


def features(seed: int) -> dict[str, float]:
    return {name: (seed + index) * 1.5 + 0.25 for index, name in enumerate(FEATURES)}


def write_body(categories: list[str]) -> str:
    feature_list = [{"category": name, "features": features(7)} for name in categories]
    body = {
        "meta": {"source": "prediction_service", "compute_id": "bench"},
        "data": {"entity_type": "bright_uid", "entity_value": "{id}", "feature_list": feature_list},
    }
    return json.dumps(body)


def read_body(feature_list: list[str]) -> str:
    data = {"entity_type": "bright_uid", "entity_value": "{id}", "feature_list": feature_list}
    return json.dumps({"meta": {"source": "bench"}, "data": data})


def batch_read_body(entities: int, feature_list: list[str]) -> str:
    """`entities` distinct entities x the features of `feature_list`."""
    data = {"entity_type": "bright_uid", "entity_values": ["{id}"] * entities, "feature_list": feature_list}
    return json.dumps({"meta": {"source": "bench"}, "data": data})


ONE_CATEGORY_NAMED = [f"{CATEGORIES[0]}:{name}" for name in FEATURES]
"""The 20 features of one category, each named: a read that projects."""
EVERY_CATEGORY_WHOLE = [f"{name}:*" for name in CATEGORIES]
"""The 5 categories, each whole: what a ranking model reads for each candidate."""


def bulk_write_body(entities: int, categories: list[str]) -> str:
    """`entities` distinct entities, each with `categories` of 20 features, in one bulk write."""
    feature_list = [{"category": name, "features": features(7)} for name in categories]
    data = {
        "entity_type": "bright_uid",
        "entities": [{"entity_value": "{id}", "feature_list": feature_list} for _ in range(entities)],
    }
    return json.dumps({"meta": {"source": "prediction_service", "compute_id": "bench"}, "data": data})


@dataclass(frozen=True)
class Scenario:
    method: str
    path: str
    body: str | None = None
    events: int = 0
    """Events a request leaves in the outbox (one per category written)."""
    entities: int = 1
    """Entities a request writes or reads."""
    idempotency_keys: bool = False
    """Each request sends an `Idempotency-Key` of its own (a new request, never a replay)."""


BULK_ENTITIES = 100
CLIENT_BATCH_ENTITIES = 500
"""What the client and the CLI send per request: the service's published `max_batch_write_entities`."""


def bulk_scenario(entities: int) -> Scenario:
    """A bulk write of `entities` entities x 5 categories x 20 features."""
    body = bulk_write_body(entities, CATEGORIES)
    return Scenario("POST", "/api/v1/items/batch", body, events=len(CATEGORIES) * entities, entities=entities)


SCENARIOS = {
    "read_single": Scenario("GET", "/api/v1/get/item/{id}/user_features"),
    "read_multi": Scenario("POST", "/api/v1/get/items", read_body(EVERY_CATEGORY_WHOLE)),
    "read_batch_50": Scenario("POST", "/api/v1/get/items/batch", batch_read_body(50, ONE_CATEGORY_NAMED)),
    "read_batch_50x5": Scenario("POST", "/api/v1/get/items/batch", batch_read_body(50, EVERY_CATEGORY_WHOLE)),
    "read_batch_500": Scenario("POST", "/api/v1/get/items/batch", batch_read_body(500, ONE_CATEGORY_NAMED)),
    "write_1x20": Scenario("POST", "/api/v1/items", write_body(CATEGORIES[:1]), events=1),
    "write_1x20_keyed": Scenario("POST", "/api/v1/items", write_body(CATEGORIES[:1]), events=1, idempotency_keys=True),
    "write_1x20_history": Scenario("POST", "/api/v1/items", write_body([HISTORY_CATEGORY]), events=1),
    "write_5x20": Scenario("POST", "/api/v1/items", write_body(CATEGORIES), events=5),
    "bulk_100x5": bulk_scenario(BULK_ENTITIES),
    "bulk_500x5": bulk_scenario(CLIENT_BATCH_ENTITIES),
}
"""Reads first: the writes' events, relayed in the background, must not load a read's measurement."""

CPU_RATIO_BOUNDS = {"read_single": 2.5, "read_multi": 2.0, "read_batch_50": 2.5, "write_1x20": 2.5}
"""Targets: the service's CPU per request on DynamoDB at most this many times the embedded store's."""

TAIL_LATENCY_BOUNDS_MS = {"read_single": 2.0, "read_multi": 4.0, "read_batch_50": 15.0, "write_1x20": 20.0}
"""Targets on the embedded store: p99 at 70% of the scenario's maximum throughput, a constant rate."""

KEYED_VERSUS = {"write_1x20_keyed": "write_1x20"}
"""A scenario sending `Idempotency-Key`s -> the same writes without."""
KEYED_CPU_BOUND = 1.15
"""Target: a write with an `Idempotency-Key` costs the service at most this many times the CPU of one without."""

HISTORY_VERSUS = {"write_1x20_history": "write_1x20"}
"""A write of a category with history -> the same write of a category without."""
HISTORY_CPU_BOUND = 1.5
"""Target: a write of a category with history costs the service at most this many times the CPU of one without."""

BULK_VERSUS = {"bulk_100x5": "write_5x20", "bulk_500x5": "write_5x20"}
"""A bulk write scenario -> the single-entity write of the same entities it is compared with."""
BULK_SPEEDUP_BOUND = 5.0
"""Target: a bulk write writes at least this many times as many entities a second as single-entity
writes on the same backend."""

LABELS = {
    "read_single": "read 1 category (20 features)",
    "read_multi": "read 5 categories (`cat:*`)",
    "read_batch_50": "batch read 50 entities x 20 features",
    "read_batch_50x5": "batch read 50 entities x 5 categories (`cat:*`)",
    "read_batch_500": "batch read 500 entities x 20 features",
    "write_1x20": "write 1 category x 20",
    "write_1x20_keyed": "write 1 category x 20, with an Idempotency-Key",
    "write_1x20_history": "write 1 category x 20 that keeps history",
    "write_5x20": "write 5 categories x 20",
    "bulk_100x5": "bulk write 100 entities x 5 categories x 20",
    "bulk_500x5": "bulk write 500 entities x 5 categories x 20 (the client's batch)",
}

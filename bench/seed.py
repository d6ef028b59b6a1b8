"""Seeds the benchmark data set through the product's own write path, and times raw boto3 reads.

Run in a child process configured by environment variables, like the service it prepares for.
"""

import logging
import statistics
import time
from concurrent.futures import ThreadPoolExecutor

from bench.scenarios import CATEGORIES, features
from components.runtime import Runtime
from core.settings import Settings


def seed(entities: int) -> None:
    """Write `entities` x 5 categories x 20 features with the relay running, as the service does,
    and leave the outbox empty so the seeding events do not load the measurements."""
    logging.disable(logging.INFO)
    settings = Settings()
    runtime = Runtime(settings)
    runtime.warmup()
    runtime.start()
    entity_type = settings.entity_types["bright_uid"]
    categories = {name: features(index) for index, name in enumerate(CATEGORIES)}

    def write(index: int) -> None:
        runtime.flows.write(
            entity_type,
            f"bench-{index}",
            categories,
            source="prediction_service",
            compute_id="seed",
            ttl=None,
            event_time=None,
        )

    with ThreadPoolExecutor(max_workers=8) as pool:
        list(pool.map(write, range(entities)))
    runtime.relay.stop(timeout=300)
    pending = runtime.store.outbox_stats().pending
    if pending:
        raise RuntimeError(f"{pending} seeding events still in the outbox")
    runtime.store.close()


def raw_get_item_p50(requests: int, entities: int) -> float:
    """Median milliseconds of GetItem on the service's own warm boto3 client, one call at a time."""
    from core.dynamodb import get_client

    settings = Settings()
    client = get_client(settings)
    entity_type = settings.entity_types["bright_uid"]
    timings = []
    for index in range(requests):
        key = {entity_type.key_attribute: {"S": f"bench-{index % entities}"}, "category": {"S": "user_features"}}
        started = time.perf_counter()
        client.get_item(TableName=entity_type.table, Key=key)
        timings.append((time.perf_counter() - started) * 1000)
    return statistics.median(timings)

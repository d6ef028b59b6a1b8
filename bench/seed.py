"""Seeds the benchmark data set through the product's own write path, and times raw boto3 reads.

Run in a child process configured by environment variables, like the service it prepares for.
"""

import asyncio
import logging
import statistics
import time

from bench.scenarios import CATEGORIES, HISTORY_CATEGORY, features
from components.features.records import CategoryInput, EntityInput, Provenance
from components.runtime import Runtime
from core.settings import Settings


def seed(entities: int) -> None:
    """Write `entities` x 6 categories x 20 features (the one with history too, so its writes replace values
    as the others do) with the relay running, as the service does,
    and leave the outbox empty so the seeding events do not load the measurements."""
    asyncio.run(_seed(entities))


async def _seed(entities: int, concurrency: int = 8) -> None:
    logging.disable(logging.INFO)
    settings = Settings()
    runtime = Runtime(settings)
    await runtime.warmup()
    await runtime.start()
    entity_type = settings.entity_types["bright_uid"]
    categories = [
        CategoryInput(name, features(index), ()) for index, name in enumerate([*CATEGORIES, HISTORY_CATEGORY])
    ]
    provenance = Provenance("prediction_service", "seed", None, None)
    next_index = iter(range(entities))

    async def writer() -> None:
        for index in next_index:
            await runtime.flows.write(entity_type, EntityInput(f"bench-{index}", categories, provenance))

    await asyncio.gather(*(writer() for _ in range(concurrency)))
    await runtime.relay.stop(timeout=300)
    pending = (await runtime.store.outbox_stats()).pending
    if pending:
        raise RuntimeError(f"{pending} seeding events still in the outbox")
    await runtime.store.close()


def raw_get_item_p50(requests: int, entities: int) -> float:
    """Median milliseconds of GetItem on the service's own warm boto3 client, one call at a time."""
    from bench.boto3_baseline import get_client

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

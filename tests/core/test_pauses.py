"""The event loop's lag and the garbage collector's pauses, as the Prometheus exporter reports them."""

import asyncio
import gc
import time
from collections.abc import Callable, Iterator

import pytest

from core.metrics import metrics
from core.metrics.prometheus import Prometheus
from core.pauses import GC_PAUSES, EventLoopLag
from tests.core.test_metrics_prometheus import samples

pytestmark = pytest.mark.backends("sqlite")


@pytest.fixture
def scrape() -> Iterator[Callable[[], dict]]:
    exporter = Prometheus("1.0.0")
    metrics.configure(exporter)
    yield lambda: samples(exporter.exposition("")[0].decode())
    metrics.close()


def count(found: dict, name: str, **labels: str) -> float:
    return sum(value for (metric, tags), value in found.items() if metric == name and set(labels.items()) <= set(tags))


def test_a_collection_is_timed_and_reported_from_the_loop(scrape) -> None:
    GC_PAUSES.install()
    GC_PAUSES.drain()
    gc.collect(1)
    assert any(generation == 1 for generation, _ in GC_PAUSES.pending)
    GC_PAUSES.drain()
    assert not GC_PAUSES.pending
    assert count(scrape(), "feature_store_gc_pause_seconds_count", generation="1") >= 1


def test_a_blocked_loop_is_reported_as_its_lag(scrape) -> None:
    async def block_then_wait() -> EventLoopLag:
        lag = EventLoopLag(asyncio.get_running_loop())
        await asyncio.sleep(0.02)
        time.sleep(0.06)  # what a blocking call on the loop does to every request
        await asyncio.sleep(lag.interval * (lag.report_every + 2))
        return lag

    asyncio.run(block_then_wait())
    found = scrape()
    assert count(found, "feature_store_event_loop_lag_seconds_count") >= 1
    late = count(found, "feature_store_event_loop_lag_seconds_bucket", le="+Inf") - count(
        found, "feature_store_event_loop_lag_seconds_bucket", le="0.05"
    )
    assert late >= 1, "the 60 ms block was not reported past the 50 ms bucket"

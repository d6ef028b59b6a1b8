"""The StatsD client against a real Etsy statsd: names, tags per style, timers and their errors;
and that metrics off, or a server that is not there, never gets in the way."""

import logging

import pytest

from core.metrics import Metrics, metrics
from devservers import free_udp_port


def test_off_without_host_sends_nothing_and_times_nothing() -> None:
    client = Metrics()
    client.configure("")
    assert not client.enabled
    client.incr("x")
    client.gauge("y", 1)
    with pytest.raises(ValueError), client.timer("z"):
        raise ValueError("still raised")


def test_dogstatsd_tags_as_etsy_statsd_stores_them(statsd) -> None:
    """Etsy statsd folds `|#k:v` tags into the key as `;k=v`, with `/` turned into `-` and braces dropped."""
    metrics.configure("127.0.0.1", statsd.server.port, statsd.prefix, "dogstatsd")
    metrics.incr("hits", endpoint="/api/v1/get/item/{entity_value}/{category}", method="GET")
    metrics.incr("hits", 2, endpoint="/api/v1/get/item/{entity_value}/{category}", method="GET")
    metrics.gauge("backlog", 7)
    metrics.timing("took", 12.5, entity_type="bright_uid")
    key = "hits;endpoint=-api-v1-get-item-entity_value-category;method=GET"
    assert statsd.wait_for("counters", {key: 3}) == {key: 3}
    assert statsd.wait_for("gauges", {"backlog": 7}) == {"backlog": 7}
    assert statsd.wait_for("timers", {"took;entity_type=bright_uid": 1}) == {"took;entity_type=bright_uid": [12.5]}


@pytest.mark.parametrize(
    ("style", "key"),
    [("graphite", "hits;entity_type=bright_uid"), ("none", "hits")],
)
def test_other_tag_styles(statsd, style: str, key: str) -> None:
    metrics.configure("127.0.0.1", statsd.server.port, statsd.prefix, style)
    metrics.incr("hits", entity_type="bright_uid")
    assert statsd.wait_for("counters", {key: 1}) == {key: 1}


def test_influx_style_line() -> None:
    client = Metrics()
    client.configure("127.0.0.1", free_udp_port(), "fs", "influx")
    line = client.stat("hits", "1|c", {"entity_type": "bright_uid", "status": 200})
    assert line == "fs.hits,entity_type=bright_uid,status=200:1|c"
    client.close()


def test_timer_counts_the_error_of_a_failed_block(statsd) -> None:
    metrics.configure("127.0.0.1", statsd.server.port, statsd.prefix)
    with metrics.timer("store.call", entity_type="account_id"):
        pass
    with pytest.raises(TimeoutError), metrics.timer("store.call", entity_type="account_id"):
        raise TimeoutError
    timers = statsd.wait_for("timers", {"store.call;entity_type=account_id": 2})
    assert len(timers["store.call;entity_type=account_id"]) == 2
    counters = statsd.wait_for("counters", {"store.call.error;entity_type=account_id;error=TimeoutError": 1})
    assert counters == {"store.call.error;entity_type=account_id;error=TimeoutError": 1}


def test_missing_server_never_fails_a_call() -> None:
    """Nothing listens on the port: datagrams are dropped, no call raises."""
    client = Metrics()
    client.configure("127.0.0.1", free_udp_port(), "fs")
    for _ in range(2000):
        client.incr("hits", entity_type="bright_uid")
        with client.timer("took"):
            pass
    client.close()


def test_unresolvable_host_switches_metrics_off(caplog) -> None:
    client = Metrics()
    with caplog.at_level(logging.WARNING, logger="feature_store.metrics"):
        client.configure("no-such-host.invalid", 8125, "fs")
    assert not client.enabled
    assert "metrics off" in caplog.text

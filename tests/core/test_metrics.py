"""The StatsD exporter, through the facade, against a real Etsy statsd: names, tags per style, timers and
their errors; and that metrics off, or a server that is not there, never gets in the way."""

import logging
import re
import socket
from collections.abc import Iterator

import pytest

from core.metrics import MAX_DATAGRAM_BYTES, Metrics, StatsD, metrics
from devservers import free_udp_port


def test_off_without_host_sends_nothing_and_times_nothing() -> None:
    client = Metrics()
    client.configure(StatsD(""))
    assert not client.enabled
    client.incr("x")
    client.gauge("y", 1)
    with pytest.raises(ValueError), client.timer("z"):
        raise ValueError("still raised")


def test_dogstatsd_tags_as_etsy_statsd_stores_them(statsd) -> None:
    """Etsy statsd folds `|#k:v` tags into the key as `;k=v`, with `/` turned into `-` and braces dropped."""
    metrics.configure(StatsD("127.0.0.1", statsd.server.port, statsd.prefix, "dogstatsd"))
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
    metrics.configure(StatsD("127.0.0.1", statsd.server.port, statsd.prefix, style))
    metrics.incr("hits", entity_type="bright_uid")
    assert statsd.wait_for("counters", {key: 1}) == {key: 1}


def test_influx_style_line() -> None:
    client = StatsD("127.0.0.1", free_udp_port(), "fs", "influx")
    line = client.stat("hits", "1|c", {"entity_type": "bright_uid", "status": 200})
    assert line == "fs.hits,entity_type=bright_uid,status=200:1|c"
    client.close()


def test_timer_counts_the_error_of_a_failed_block(statsd) -> None:
    metrics.configure(StatsD("127.0.0.1", statsd.server.port, statsd.prefix))
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
    client.configure(StatsD("127.0.0.1", free_udp_port(), "fs"))
    for _ in range(2000):
        client.incr("hits", entity_type="bright_uid")
        with client.timer("took"):
            pass
    client.close()


def test_unresolvable_host_switches_metrics_off(caplog) -> None:
    with caplog.at_level(logging.WARNING, logger="feature_store.metrics"):
        client = StatsD("no-such-host.invalid", 8125, "fs")
    assert not client.enabled
    assert "metrics off" in caplog.text


class Listener:
    """A UDP socket standing in for an agent, for what Etsy statsd does not read (`|d`): the datagrams as sent."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
        self.sock.bind(("127.0.0.1", 0))
        self.sock.settimeout(2)
        self.port = self.sock.getsockname()[1]

    def datagram(self) -> str:
        return self.sock.recv(65536).decode()


@pytest.fixture
def listener() -> Iterator[Listener]:
    found = Listener()
    yield found
    found.sock.close()
    metrics.close()


def test_constant_tags_end_every_line_as_etsy_statsd_stores_them(statsd) -> None:
    metrics.configure(
        StatsD(
            "127.0.0.1", statsd.server.port, statsd.prefix, "dogstatsd", constant_tags={"env": "prod", "region": "eu-1"}
        )
    )
    metrics.incr("hits", entity_type="bright_uid")
    metrics.gauge("backlog", 3)
    with metrics.timer("took"):
        pass
    assert statsd.wait_for("counters", {"hits;entity_type=bright_uid;env=prod;region=eu-1": 1})
    assert statsd.wait_for("gauges", {"backlog;env=prod;region=eu-1": 3}) == {"backlog;env=prod;region=eu-1": 3}
    assert statsd.wait_for("timers", {"took;env=prod;region=eu-1": 1})


@pytest.mark.parametrize(
    ("style", "tagged", "untagged"),
    [
        ("dogstatsd", "fs.hits:1|c|#status:200,env:prod,service:fs", "fs.hits:1|c|#env:prod,service:fs"),
        ("influx", "fs.hits,status=200,env=prod,service=fs:1|c", "fs.hits,env=prod,service=fs:1|c"),
        ("graphite", "fs.hits;status=200;env=prod;service=fs:1|c", "fs.hits;env=prod;service=fs:1|c"),
        ("none", "fs.hits:1|c", "fs.hits:1|c"),
    ],
)
def test_constant_tags_in_each_style(style: str, tagged: str, untagged: str) -> None:
    client = StatsD("127.0.0.1", free_udp_port(), "fs", style, constant_tags={"env": "prod", "service": "fs"})
    assert client.stat("hits", "1|c", {"status": 200}) == tagged
    assert client.stat("hits", "1|c", {}) == untagged
    client.close()


def test_distribution_timers_go_out_as_d(listener: Listener) -> None:
    metrics.configure(StatsD("127.0.0.1", listener.port, "fs", timer_type="distribution"))
    with metrics.timer("took", entity_type="bright_uid"):
        pass
    assert re.fullmatch(r"fs\.took:\d+\.\d{3}\|d\|#entity_type:bright_uid", listener.datagram())
    metrics.timing("took", 1.5)
    assert listener.datagram() == "fs.took:1.500|d"
    metrics.observe("age_seconds", 90)
    assert listener.datagram() == "fs.age_seconds:90.000|d"


def test_ms_is_the_default_timer_type(listener: Listener) -> None:
    metrics.configure(StatsD("127.0.0.1", listener.port, "fs"))
    metrics.observe("age_seconds", 2.25, category="user_features")
    assert listener.datagram() == "fs.age_seconds:2.250|ms|#category:user_features"


def test_many_lines_are_packed_into_datagrams_that_fit(listener: Listener) -> None:
    client = StatsD("127.0.0.1", listener.port, "fs")
    lines = [client.stat("age", f"{index}|ms", {"category": "user_features"}) for index in range(200)]
    client.send_many(lines)
    received: list[str] = []
    while len(received) < len(lines):
        datagram = listener.datagram()
        assert len(datagram.encode()) <= MAX_DATAGRAM_BYTES
        received += datagram.split("\n")
    assert received == lines

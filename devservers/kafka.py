"""Local Kafka APIs: Tansu brokers, and librdkafka's mock cluster in a process of its own
(`python -m devservers kafka-mock`)."""

import logging
import os
import re
import sys
from pathlib import Path

from devservers.processes import SERVER_BIN, ManagedServer, free_port, port_open


def start_tansu(log_dir: Path) -> tuple[ManagedServer, str]:
    """A local Kafka API broker (in memory; a restart loses everything); returns it and its bootstrap
    address. It gets a bare environment: Tansu reads SCHEMA_REGISTRY and others from it."""
    port = free_port()
    url = f"tcp://127.0.0.1:{port}"
    command = [
        str(SERVER_BIN / "tansu"),
        "broker",
        "--listener-url",
        url,
        "--advertised-listener-url",
        url,
        "--storage-engine",
        "memory://tansu/",
    ]
    server = ManagedServer(
        "tansu", command, lambda: port_open(port), log_dir=log_dir, env={"PATH": os.environ.get("PATH", "")}
    )
    return server, f"127.0.0.1:{port}"


KAFKA_MOCK_BOOTSTRAP = re.compile(r"Mock cluster \S+ bootstrap\.servers=(\S+)")


def run_kafka_mock_cluster(brokers: int = 3) -> None:
    """The body of the mock cluster's own process: librdkafka's mock brokers live in the threads of
    a client created with `test.mock.num.brokers`, for as long as that client does. Its bootstrap
    addresses appear only in its `debug=mock` log; the one line that names them is printed. Topics are
    created on first produce (CreateTopics is not supported)."""
    from confluent_kafka import Producer

    class Bootstrap(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            message = record.getMessage()
            if KAFKA_MOCK_BOOTSTRAP.search(message):
                sys.stdout.write(message + "\n")
                sys.stdout.flush()

    log = logging.getLogger("kafka-mock")
    log.addHandler(Bootstrap())
    log.setLevel(logging.DEBUG)
    cluster = Producer({"test.mock.num.brokers": brokers, "debug": "mock", "logger": log})
    while True:
        cluster.poll(1.0)


def start_kafka_mock(log_dir: Path, brokers: int = 3) -> tuple[ManagedServer, str]:
    """librdkafka's own mock cluster in a process of its own (so SIGSTOP is an outage, SIGKILL of the
    service leaves it alone); returns it and its bootstrap addresses. Unlike Tansu it keeps every message
    it acknowledged, so the tests that prove no event is lost run on it."""
    log_path = log_dir / "kafka-mock.log"

    def bootstrap() -> str | None:
        match = KAFKA_MOCK_BOOTSTRAP.search(log_path.read_text()) if log_path.exists() else None
        return match.group(1) if match else None

    command = [sys.executable, "-m", "devservers", "kafka-mock", str(brokers)]
    server = ManagedServer("kafka-mock", command, lambda: bootstrap() is not None, log_dir=log_dir)
    address = bootstrap()
    assert address is not None
    return server, address


def start_tansu_on(log_dir: Path, name: str, advertised_port: int, *options: str) -> tuple[ManagedServer, int]:
    """A Tansu broker listening on a port of its own but advertising `advertised_port`, where a TLS
    terminator forwards to it; returns the server and the port it listens on."""
    port = free_port()
    command = [
        str(SERVER_BIN / "tansu"),
        "broker",
        "--listener-url",
        f"tcp://127.0.0.1:{port}",
        "--advertised-listener-url",
        f"tcp://127.0.0.1:{advertised_port}",
        "--storage-engine",
        "memory://tansu/",
        *options,
    ]
    server = ManagedServer(
        name, command, lambda: port_open(port), log_dir=log_dir, env={"PATH": os.environ.get("PATH", "")}
    )
    return server, port

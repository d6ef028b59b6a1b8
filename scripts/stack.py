"""The production path on this machine, in one command (`make stack`): a local DynamoDB server (Dynoxide),
a Kafka broker (Tansu), the Schema Registry stand-in (`mock://`, inside the service) and the service on
them, with the tables and the topic created; waits for /ready, prints the URLs and how to read the events,
and stops everything on Ctrl-C (SIGINT) or SIGTERM. Everything is in memory: a restart starts empty.

    python scripts/stack.py [--port 8000]
    python scripts/stack.py consume --bootstrap 127.0.0.1:PORT [--topic NAME] [--count N]

The stand-in registry lives in the service's process, so a consumer decodes the events itself: the wire
format is a zero byte, the 4-byte schema id, then the Avro body of schemas/feature_trigger.avsc.
"""

import argparse
import io
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import fastavro
import httpx
from confluent_kafka import Consumer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from devservers import ServiceProcess, start_dynoxide, start_tansu  # noqa: E402

TOPIC = "FEATURE_AVAILABILITY_EVENTS"
PARTITIONS = 3
LOCAL_CREDENTIALS = {
    # Requests must be signed; any value does for the local server.
    "AWS_ACCESS_KEY_ID": "local",
    "AWS_SECRET_ACCESS_KEY": "local",
    "AWS_CONFIG_FILE": "/dev/null",
    "AWS_SHARED_CREDENTIALS_FILE": "/dev/null",
}


class Stop(Exception):
    """Ctrl-C or SIGTERM: stop everything started."""


def raise_stop(*_: object) -> None:
    raise Stop


def create_topic(bootstrap: str, topic: str) -> None:
    admin = AdminClient({"bootstrap.servers": bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=PARTITIONS, replication_factor=1)])[topic].result(timeout=10)


def wait_ready(url: str, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            if httpx.get(f"{url}/api/v1/ready", timeout=2).status_code == 200:
                return
        except httpx.TransportError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url}/api/v1/ready did not answer 200 within {timeout:.0f} s")
        time.sleep(0.2)


def run(port: int | None) -> int:
    signal.signal(signal.SIGINT, raise_stop)
    signal.signal(signal.SIGTERM, raise_stop)
    workdir = Path(tempfile.mkdtemp(prefix="feature-store-stack-"))
    started: list = []
    try:
        dynamodb, endpoint = start_dynoxide(workdir)
        started.append(dynamodb)
        kafka, bootstrap = start_tansu(workdir)
        started.append(kafka)
        settings = {
            **LOCAL_CREDENTIALS,
            "STORE_BACKEND": "dynamodb",
            "DYNAMODB_ENDPOINT_URL": endpoint,
            "DYNAMODB_CREATE_TABLES": "false",
            "KAFKA_BROKER_URL": bootstrap,
            "SCHEMA_REGISTRY": "mock://stack",
            "TOPIC_NAME": TOPIC,
            "LOG_FORMAT": "console",
        }
        tables = subprocess.run(
            [sys.executable, str(ROOT / "scripts" / "create_dynamodb_tables.py")],
            cwd=workdir,
            env={**os.environ, **settings},
            capture_output=True,
            text=True,
            check=False,
        )
        if tables.returncode != 0:
            raise RuntimeError(tables.stderr)
        print(tables.stdout, end="", flush=True)
        create_topic(bootstrap, TOPIC)
        service = ServiceProcess(settings, workdir, port)
        started.append(service)
        wait_ready(service.url)
        print(
            f"""
Feature Store API  {service.url}/api/v1   (docs: {service.url}/docs, ready: {service.url}/api/v1/ready)
DynamoDB (local)   {endpoint}   tables created by scripts/create_dynamodb_tables.py
Kafka (local)      {bootstrap}   topic {TOPIC}, {PARTITIONS} partitions
Schema Registry    mock://stack, inside the service
Logs               {workdir}

Read the events:   {sys.executable} scripts/stack.py consume --bootstrap {bootstrap}
Ctrl-C stops everything.
ready""",
            flush=True,
        )
        while service.process.poll() is None:
            time.sleep(0.5)
        print(f"the service stopped; see {service.log_path}", file=sys.stderr)
        return 1
    except Stop:
        return 0
    finally:
        signal.signal(signal.SIGINT, signal.SIG_IGN)
        signal.signal(signal.SIGTERM, signal.SIG_IGN)
        for server in reversed(started):
            server.stop()
        print("stopped", flush=True)


def consume(bootstrap: str, topic: str, count: int, timeout: float) -> int:
    """Print each event as JSON, from the topic's start: key, partition, offset and the decoded value."""
    schema = fastavro.parse_schema(json.loads((ROOT / "schemas" / "feature_trigger.avsc").read_text()))
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": "stack-consumer", "enable.auto.commit": False})
    consumer.assign([TopicPartition(topic, partition, 0) for partition in range(PARTITIONS)])
    seen = 0
    deadline = time.monotonic() + timeout
    try:
        while (count == 0 or seen < count) and (timeout == 0 or time.monotonic() < deadline):
            message = consumer.poll(0.5)
            if message is None or message.error():
                continue
            value = message.value() or b""
            event = fastavro.schemaless_reader(io.BytesIO(value[5:]), schema)
            assert isinstance(event, dict), "the schema is a record"
            key = (message.key() or b"").decode()
            print(json.dumps({"key": key, "partition": message.partition(), "offset": message.offset(), **event}))
            sys.stdout.flush()
            seen += 1
    except KeyboardInterrupt:
        pass
    finally:
        consumer.close()
    return 0 if count == 0 or seen >= count else 1


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, default=int(os.environ.get("STACK_PORT", "8000")))
    commands = parser.add_subparsers(dest="command")
    reader = commands.add_parser("consume", help="print the events on the topic, decoded")
    reader.add_argument("--bootstrap", required=True)
    reader.add_argument("--topic", default=TOPIC)
    reader.add_argument("--count", type=int, default=0, help="stop after this many events (0: never)")
    reader.add_argument("--timeout", type=float, default=0, help="give up after this many seconds (0: never)")
    arguments = parser.parse_args()
    if arguments.command == "consume":
        return consume(arguments.bootstrap, arguments.topic, arguments.count, arguments.timeout)
    return run(arguments.port)


if __name__ == "__main__":
    sys.exit(main())

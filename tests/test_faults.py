"""Faults of the whole service, each bounded to a few seconds, on real servers: the service as deployed
(`serve.py`) in its own process, the store (a SQLite file or Dynoxide), and a Kafka broker.

"No event lost" is proven on librdkafka's mock cluster, run in its own process: it keeps every message it
acknowledged. Tansu, the other local broker, does not (the first test shows it), so an event missing
there could be Tansu's loss as well as ours; it stays the broker of the protocol-level tests.
Duplicates are delivery at least once working as designed: they are counted and reported, never required
to be zero."""

import os
import sqlite3
import subprocess
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from contextlib import closing
from pathlib import Path

import boto3
import httpx
import pytest
from confluent_kafka import OFFSET_BEGINNING, Consumer, KafkaError, Producer, TopicPartition
from confluent_kafka.admin import AdminClient, NewTopic

from devservers import ServiceProcess, start_dynoxide
from tests.components.events.kafka_helpers import decode
from tests.conftest import DYNAMODB_EMULATORS, KafkaBroker, dynamodb_tables

# Each fault takes seconds: processes killed, brokers and DynamoDB stopped.
pytestmark = [pytest.mark.slow, pytest.mark.timing]

CATEGORIES = ("user_features", "credit_features", "trans_features")


# The brokers themselves.


def produce_keyed(bootstrap: str, topic: str, count: int, start: int) -> int:
    """One idempotent producer (acks=all) sends `count` keyed messages and is closed; returns how many
    the broker acknowledged."""
    acknowledged = 0

    def delivered(error: KafkaError | None, _message: object) -> None:
        nonlocal acknowledged
        acknowledged += error is None

    producer = Producer({"bootstrap.servers": bootstrap, "enable.idempotence": True, "acks": "all"})
    for number in range(start, start + count):
        producer.produce(topic, key=f"key-{number % 17}", value=str(number), on_delivery=delivered)
        producer.poll(0)
    assert producer.flush(15) == 0
    return acknowledged


def read_values(bootstrap: str, topic: str, expected: int, settle: float = 0.5) -> list[str]:
    """Every message of the topic, from the start, until nothing more comes for `settle` seconds."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"read-{uuid.uuid4()}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING) for partition in partitions])
        values: list[str] = []
        quiet_since = time.monotonic()
        deadline = time.monotonic() + 15
        while time.monotonic() - quiet_since < settle and time.monotonic() < deadline:
            message = consumer.poll(0.1)
            if message is None or message.error() is not None:
                continue
            values.append((message.value() or b"").decode())
            quiet_since = time.monotonic()
        return values
    finally:
        consumer.close()


def three_producers_in_sequence(bootstrap: str, topic: str) -> tuple[int, int]:
    """(acknowledged, readable) after three idempotent producers, one after another, send 300, 30 and 30
    keyed messages to one 3-partition topic."""
    acknowledged = 0
    for start, count in ((0, 300), (300, 30), (330, 30)):
        acknowledged += produce_keyed(bootstrap, topic, count, start)
    values = read_values(bootstrap, topic, acknowledged)
    assert len(set(values)) == len(values), "the idempotent producers duplicated a message"
    return acknowledged, len(values)


def test_the_mock_cluster_keeps_every_acknowledged_message(kafka_mock: KafkaBroker) -> None:
    """Why the completeness tests below run on the mock cluster. Its topics are created on first produce."""
    topic = f"sequence-{uuid.uuid4().hex[:12]}"
    produce_keyed(kafka_mock.bootstrap, topic, 0, 0)
    assert three_producers_in_sequence(kafka_mock.bootstrap, topic) == (360, 360)


def test_tansu_is_measured_with_the_same_sequence(kafka_broker: KafkaBroker, report) -> None:
    """The same sequence on Tansu 0.6, reported in the test output: 333 of 360 were readable when the loss
    was found (every run, on that machine); runs here have read all 360. Either way Tansu must not read
    back more than it acknowledged, nor duplicates; it proves no completeness, so the tests that prove
    it run on the mock cluster."""
    topic = f"sequence-{uuid.uuid4().hex[:12]}"
    admin = AdminClient({"bootstrap.servers": kafka_broker.bootstrap})
    admin.create_topics([NewTopic(topic, num_partitions=3, replication_factor=1)])[topic].result(timeout=10)
    acknowledged, readable = three_producers_in_sequence(kafka_broker.bootstrap, topic)
    report(f"Tansu: {readable} of {acknowledged} acknowledged messages readable")
    assert acknowledged == 360
    assert readable <= acknowledged


# The service's events through its faults.


@pytest.fixture(params=["sqlite", "dynamodb"])
def store_env(request: pytest.FixtureRequest, tmp_path: Path) -> dict[str, str]:
    """Settings of one store, shared by every process of the test: one SQLite file, or one set of
    tables on the session's Dynoxide."""
    if request.param == "sqlite":
        return {"STORE_BACKEND": "sqlite", "SQLITE_PATH": str(tmp_path / "features.db")}
    assert request.param in DYNAMODB_EMULATORS
    endpoint = request.getfixturevalue("dynamodb_endpoint")
    tables = {name.upper(): str(value).lower() for name, value in dynamodb_tables().items()}
    return {"STORE_BACKEND": "dynamodb", "DYNAMODB_ENDPOINT_URL": endpoint, **tables}


def events_env(kafka_mock: KafkaBroker, topic: str) -> dict[str, str]:
    """Settings that publish to `topic` on the mock cluster, with timeouts short enough for a fault to
    show, and pass, within a second or two."""
    return {
        "ENVIRONMENT": "development",
        "LOG_LEVEL": "WARNING",
        "KAFKA_BROKER_URL": kafka_mock.bootstrap,
        "SCHEMA_REGISTRY": f"mock://{topic}",
        "TOPIC_NAME": topic,
        "KAFKA_MESSAGE_TIMEOUT_MS": "1500",
        "KAFKA_SOCKET_TIMEOUT_MS": "500",
        "OUTBOX_POLL_SECONDS": "0.2",
        "OUTBOX_MAX_BACKOFF_SECONDS": "0.5",
        "OUTBOX_GAUGE_SECONDS": "0.1",
        # Events a killed process had claimed are claimed again this soon after.
        "OUTBOX_LEASE_SECONDS": "2",
        "EAGER_INIT": "true",
    }


@pytest.fixture
def served(store_env: dict[str, str], kafka_mock: KafkaBroker, tmp_path: Path) -> Iterator[tuple[ServiceProcess, str]]:
    """The service on that store, publishing to a topic of its own on the mock cluster; returns it and the topic."""
    topic = f"faults-{uuid.uuid4().hex[:12]}"
    service = ServiceProcess(store_env | events_env(kafka_mock, topic), tmp_path)
    yield service, topic
    service.kill()


class Writers:
    """Threads writing for as long as they run, each write two or three categories of a new entity;
    what was acknowledged (a 200) is recorded per (entity, category)."""

    def __init__(self, service: ServiceProcess, threads: int = 4) -> None:
        self.service = service
        self.stop = threading.Event()
        self.acknowledged: set[tuple[str, str]] = set()
        self.answers: Counter[int | str] = Counter()
        self.threads = [threading.Thread(target=self._write, args=(n,)) for n in range(threads)]

    def __enter__(self) -> "Writers":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_: object) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join(timeout=30)

    def _write(self, writer: int) -> None:
        with httpx.Client(timeout=10) as client:
            for sequence in range(1_000_000):
                if self.stop.is_set():
                    return
                entity = f"w{writer}-{sequence}"
                categories = CATEGORIES[: 2 + sequence % 2]
                body = {
                    "meta": {"source": "prediction_service", "compute_id": "faults"},
                    "data": {
                        "entity_value": entity,
                        "feature_list": [{"category": c, "features": {"n": sequence}} for c in categories],
                    },
                }
                try:
                    response = client.post(f"{self.service.url}/api/v1/items", json=body)
                except httpx.TransportError:
                    self.answers["no answer"] += 1
                    time.sleep(0.05)
                    continue
                self.answers[response.status_code] += 1
                if response.status_code == 200:
                    self.acknowledged.update((entity, category) for category in categories)

    def wait_for(self, count: int, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while len(self.acknowledged) < count:
            assert time.monotonic() < deadline, f"only {len(self.acknowledged)} writes acknowledged: {self.answers}"
            time.sleep(0.02)


def wait_until(condition: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, what
        time.sleep(0.05)


def pending(service: ServiceProcess) -> int | None:
    try:
        events = httpx.get(f"{service.url}/api/v1/ready", timeout=5).json()["checks"]["events"]
    except (httpx.TransportError, KeyError, ValueError):
        return None
    value = events.get("pending")
    return value if isinstance(value, int) else None


def published(
    bootstrap: str, topic: str, wanted: set[tuple[str, str]], timeout: float = 20
) -> tuple[Counter[tuple[str, str]], Counter[str]]:
    """How many events each (entity, category) and each event id has on the topic, read from the start
    until every wanted one has arrived and nothing more comes for half a second."""
    consumer = Consumer({"bootstrap.servers": bootstrap, "group.id": f"check-{uuid.uuid4()}"})
    try:
        partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
        consumer.assign([TopicPartition(topic, partition, OFFSET_BEGINNING) for partition in partitions])
        seen: Counter[tuple[str, str]] = Counter()
        event_ids: Counter[str] = Counter()
        deadline = time.monotonic() + timeout
        quiet_since = time.monotonic()
        while not wanted <= seen.keys() or time.monotonic() - quiet_since < 0.5:
            if time.monotonic() > deadline:
                break
            message = consumer.poll(0.1)
            if message is None or message.error() is not None:
                continue
            _, event = decode(message.value() or b"")
            seen[(event["entity_id"], event["resource_name"])] += 1
            event_ids[event["event_id"]] += 1
            quiet_since = time.monotonic()
        return seen, event_ids
    finally:
        consumer.close()


def assert_complete(
    acknowledged: set[tuple[str, str]],
    published: tuple[Counter[tuple[str, str]], Counter[str]],
    report: Callable[[str], None],
) -> None:
    """Every acknowledged category has an event. Reported, not required: events published more than once
    (same event id), and events of writes that committed but whose answer the client never got."""
    seen, event_ids = published
    missing = acknowledged - seen.keys()
    duplicates = sum(count - 1 for count in event_ids.values())
    unacknowledged = len(seen.keys() - acknowledged)
    report(
        f"{len(acknowledged)} acknowledged categories, {len(missing)} without an event; "
        f"{sum(event_ids.values())} events, {duplicates} duplicates, {unacknowledged} of unanswered writes"
    )
    assert not missing, f"{len(missing)} acknowledged categories have no event, e.g. {sorted(missing)[:5]}"


def outbox_rows(store_env: dict[str, str]) -> int:
    """Events in the store's outbox, read behind the service's back (it may be dead)."""
    if store_env["STORE_BACKEND"] == "sqlite":
        with closing(sqlite3.connect(store_env["SQLITE_PATH"])) as db:
            return int(db.execute("SELECT count(*) FROM outbox").fetchone()[0])
    dynamodb = boto3.client("dynamodb", endpoint_url=store_env["DYNAMODB_ENDPOINT_URL"], region_name="us-east-1")
    return int(dynamodb.scan(TableName=store_env["DYNAMODB_TABLE_OUTBOX"], Select="COUNT")["Count"])


def test_no_acknowledged_write_loses_its_event_to_kill_9(
    served: tuple[ServiceProcess, str], store_env: dict[str, str], kafka_mock: KafkaBroker, report
) -> None:
    """SIGKILL under write load, so events are in the outbox, claimed, or in the producer's queue; the
    restarted process publishes what the killed one did not."""
    service, topic = served
    with Writers(service) as writers:
        writers.wait_for(150)
        service.sigkill()
        before_restart = set(writers.acknowledged)
        report(f"{outbox_rows(store_env)} events in the outbox at the kill")
        service.restart()
        writers.wait_for(len(before_restart) + 50)
    wait_until(lambda: pending(service) == 0, 20, "the restarted relay did not drain the outbox")
    assert_complete(writers.acknowledged, published(kafka_mock.bootstrap, topic, writers.acknowledged), report)
    assert writers.answers[200] > 0
    assert set(writers.answers) <= {200, "no answer"}, writers.answers


def test_no_acknowledged_write_loses_its_event_to_a_broker_outage(
    served: tuple[ServiceProcess, str], kafka_mock: KafkaBroker, report
) -> None:
    """The broker stops (SIGSTOP) mid-load and comes back: writes go on being acknowledged meanwhile,
    their events wait in the outbox, and every one is published once the broker is back."""
    service, topic = served
    with Writers(service) as writers:
        writers.wait_for(60)
        kafka_mock.server.pause()
        try:
            during = len(writers.acknowledged)
            writers.wait_for(during + 60, timeout=10)
            wait_until(lambda: (pending(service) or 0) > 0, 10, "no events waited during the outage")
            ready = httpx.get(f"{service.url}/api/v1/ready", timeout=5)
            assert ready.status_code == 200, "a broker outage must not make the service unready"
        finally:
            kafka_mock.server.resume()
        writers.wait_for(len(writers.acknowledged) + 30)
    wait_until(lambda: pending(service) == 0, 20, "the relay did not drain the outbox after the outage")
    assert_complete(writers.acknowledged, published(kafka_mock.bootstrap, topic, writers.acknowledged), report)
    assert set(writers.answers) == {200}, writers.answers


def test_a_dynamodb_outage_is_a_bounded_503_and_loses_no_event(
    kafka_mock: KafkaBroker, tmp_path: Path, aws_test_credentials: None, report
) -> None:
    """DynamoDB stops answering (SIGSTOP of a Dynoxide of the test's own) under write load: reads and
    writes are 503 `store_unavailable` with `Retry-After` within the client's bounds, `/ready` is 503
    within its own, `/health` stays fast; once DynamoDB is back, writes are acknowledged again and every
    acknowledged one has its event."""
    dynamodb, endpoint = start_dynoxide(tmp_path)
    topic = f"faults-{uuid.uuid4().hex[:12]}"
    tables = {name.upper(): str(value).lower() for name, value in dynamodb_tables().items()}
    timeouts = {
        "DYNAMODB_CONNECT_TIMEOUT_SECONDS": "0.5",
        "DYNAMODB_READ_TIMEOUT_SECONDS": "0.5",
        "DYNAMODB_MAX_ATTEMPTS": "2",
        "READY_TIMEOUT_SECONDS": "1",
    }
    env = events_env(kafka_mock, topic) | {"STORE_BACKEND": "dynamodb", "DYNAMODB_ENDPOINT_URL": endpoint} | tables
    service = ServiceProcess(env | timeouts, tmp_path)
    try:
        with Writers(service) as writers:
            writers.wait_for(60)
            (entity, category) = next(iter(writers.acknowledged))
            dynamodb.pause()
            try:
                started = time.monotonic()
                read = httpx.get(f"{service.url}/api/v1/get/item/{entity}/{category}", timeout=10)
                read_seconds = time.monotonic() - started
                started = time.monotonic()
                ready = httpx.get(f"{service.url}/api/v1/ready", timeout=10)
                ready_seconds = time.monotonic() - started
                slowest_health = max(health_ms(service) for _ in range(10))
            finally:
                dynamodb.resume()
            writers.wait_for(len(writers.acknowledged) + 30)
        assert (read.status_code, read.json()["error"]) == (503, "store_unavailable")
        assert int(read.headers["retry-after"]) > 0
        # Two attempts of at most 0.5 s to connect and 0.5 s to read, and botocore's backoff between them.
        assert read_seconds < 4, read_seconds
        assert ready.status_code == 503 and ready_seconds < 1 + 1, ready_seconds
        assert slowest_health < 500, slowest_health
        assert writers.answers[503] > 0, writers.answers
        assert set(writers.answers) <= {200, 503}, writers.answers
        report(f"answers while DynamoDB stopped and after: {dict(writers.answers)}")
        wait_until(lambda: pending(service) == 0, 20, "the relay did not drain the outbox")
        assert_complete(writers.acknowledged, published(kafka_mock.bootstrap, topic, writers.acknowledged), report)
    finally:
        service.kill()
        dynamodb.stop()


def health_ms(service: ServiceProcess) -> float:
    started = time.monotonic()
    assert httpx.get(f"{service.url}/api/v1/health", timeout=5).status_code == 200
    return (time.monotonic() - started) * 1000


def mount_tmpfs(directory: Path, size: str) -> str | None:
    """Mount a tmpfs of `size` on `directory`; the reason it could not be, or None."""
    if os.geteuid() != 0:
        return "mounting a small filesystem needs root"
    result = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(directory)], capture_output=True
    )
    if result.returncode != 0:
        return f"mount -t tmpfs is not permitted here: {result.stderr.decode().strip()}"
    return None


def test_a_full_disk_refuses_writes_with_store_full_and_recovers(tmp_path: Path) -> None:
    """The embedded store on a real filesystem that fills up: writes are refused (503 `store_full`, nothing
    stored), reads go on, `/ready` says the store is not writable; once space is freed, writes succeed."""
    disk = tmp_path / "disk"
    disk.mkdir()
    reason = mount_tmpfs(disk, "2m")
    if reason:
        pytest.skip(reason)
    try:
        service = ServiceProcess(
            {"STORE_BACKEND": "sqlite", "SQLITE_PATH": str(disk / "features.db"), "LOG_LEVEL": "WARNING"}, tmp_path
        )
        try:
            url = service.url

            def write(entity: str, size: int) -> httpx.Response:
                body = {
                    "meta": {"source": "prediction_service"},
                    "data": {"entity_value": entity, "category": "user_features", "features": {"blob": "x" * size}},
                }
                return httpx.post(f"{url}/api/v1/items", json=body, timeout=10)

            assert write("kept", 10).status_code == 200
            filler = disk / "filler"
            with filler.open("wb") as handle:
                try:
                    while True:
                        handle.write(b"\0" * 65536)
                        handle.flush()
                except OSError:
                    pass
            refused = [write(f"full-{n}", 60_000) for n in range(5)]
            full = [response for response in refused if response.status_code != 200]
            assert full, "every write succeeded on a full disk"
            for response in full:
                assert response.status_code == 503, response.text
                assert response.json()["error"] == "store_full"
                assert int(response.headers["retry-after"]) > 0
            assert httpx.get(f"{url}/api/v1/get/item/kept/user_features", timeout=5).status_code == 200
            ready = httpx.get(f"{url}/api/v1/ready", timeout=5)
            assert ready.status_code == 503
            assert ready.json()["checks"]["store"] == {
                "backend": "sqlite",
                "ok": False,
                "error": "the embedded store is full: writes are refused until disk space is freed",
            }

            filler.unlink()
            wait_until(
                lambda: httpx.get(f"{url}/api/v1/ready", timeout=5).status_code == 200, 10, "/ready did not recover"
            )
            assert write("after", 10).status_code == 200
        finally:
            service.kill()
    finally:
        subprocess.run(["umount", str(disk)], check=False)

"""Two replicas of the service sharing one DynamoDB outbox (Dynoxide), under write load, one killed with
SIGKILL: every category either replica acknowledged has its event on the topic once the dead replica's
leases expire, the ones it had not published put there by the survivor (the only process left). Run
twice: with both replicas publishing, and with the victim's broker connection silent, so that every
event the victim claimed is still in its producer when it dies and waits for its lease to expire. Events
are counted on librdkafka's mock cluster, which keeps every message it acknowledged; duplicates (delivery
at least once) are reported, never required to be zero."""

import socket
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from devservers import ServiceProcess
from tests.conftest import KafkaBroker, dynamodb_tables
from tests.test_faults import Writers, assert_complete, events_env, outbox_rows, pending, published, wait_until

pytestmark = [pytest.mark.slow, pytest.mark.timing]  # two service processes, one killed, and the lease to wait out


@pytest.fixture
def silent_broker() -> Iterator[str]:
    """A port that takes connections and never answers: a broker that hangs."""
    with socket.create_server(("127.0.0.1", 0), backlog=64) as server:
        yield f"127.0.0.1:{server.getsockname()[1]}"


@pytest.fixture(params=["both publishing", "victim's broker silent"])
def replicas(
    request: pytest.FixtureRequest, dynamodb_endpoint: str, kafka_mock: KafkaBroker, tmp_path: Path
) -> Iterator[tuple[ServiceProcess, ServiceProcess, str, dict[str, str]]]:
    """Two processes on one set of tables, publishing to one topic of their own: (victim, survivor, topic, store)."""
    topic = f"replicas-{uuid.uuid4().hex[:12]}"
    tables = {name.upper(): str(value).lower() for name, value in dynamodb_tables().items()}
    store = {"STORE_BACKEND": "dynamodb", "DYNAMODB_ENDPOINT_URL": dynamodb_endpoint, **tables}
    env = store | events_env(kafka_mock, topic)
    victim_env = env
    if request.param == "victim's broker silent":
        victim_env = env | {"KAFKA_BROKER_URL": request.getfixturevalue("silent_broker")}
    victim = ServiceProcess(victim_env, tmp_path)
    survivor = ServiceProcess(env, tmp_path)
    yield victim, survivor, topic, store
    victim.kill()
    survivor.kill()


def test_the_survivor_publishes_what_a_killed_replica_acknowledged(
    replicas: tuple[ServiceProcess, ServiceProcess, str, dict[str, str]],
    kafka_mock: KafkaBroker,
    report: Callable[[str], None],
) -> None:
    victim, survivor, topic, store = replicas
    with Writers(survivor, threads=2) as surviving_writers:
        with Writers(victim, threads=2) as victim_writers:
            victim_writers.wait_for(100)
            surviving_writers.wait_for(100)
            victim.sigkill()
            acknowledged_by_victim = set(victim_writers.acknowledged)
        report(f"{outbox_rows(store)} events in the shared outbox at the kill")
        on_topic_at_kill, _ = published(kafka_mock.bootstrap, topic, set(), timeout=1)
        surviving_writers.wait_for(len(surviving_writers.acknowledged) + 100)
    acknowledged = acknowledged_by_victim | surviving_writers.acknowledged
    wait_until(lambda: pending(survivor) == 0, 30, "the survivor did not drain the shared outbox")
    events = published(kafka_mock.bootstrap, topic, acknowledged, timeout=30)
    left_by_victim = acknowledged_by_victim - on_topic_at_kill.keys()
    report(
        f"victim acknowledged {len(acknowledged_by_victim)} categories, {len(left_by_victim)} not on the topic "
        f"at its kill, of which {len(left_by_victim & events[0].keys())} were published by the survivor; "
        f"answers: victim {dict(victim_writers.answers)}, survivor {dict(surviving_writers.answers)}"
    )
    assert_complete(acknowledged, events, report)
    assert set(surviving_writers.answers) == {200}, surviving_writers.answers

"""Prometheus with several worker processes (`python -m serve`, WEB_CONCURRENCY=2): every scrape is the sum
over the workers, and a worker that dies loses nothing it had counted."""

import os
import signal
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from devservers import ServiceProcess

pytestmark = pytest.mark.backends("sqlite")

LIVE = "/api/v1/live"


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, Path]]:
    workdir = tmp_path_factory.mktemp("served")
    directory = workdir / "prometheus"
    directory.mkdir()
    (directory / "counter_1.db").write_bytes(b"left by an earlier run")
    env = {
        "STORE_BACKEND": "sqlite",
        "SQLITE_PATH": str(workdir / "features.db"),
        "ENVIRONMENT": "development",
        "LOG_LEVEL": "WARNING",
        "WEB_CONCURRENCY": "2",
        "METRICS_EXPORTER": "prometheus",
        "METRICS_MULTIPROC_DIR": str(directory),
    }
    service = ServiceProcess(env, workdir)
    yield service, directory
    service.kill()


def live_requests(service: ServiceProcess, count: int) -> None:
    """`count` requests, each on a connection of its own, several at once: the workers share them."""

    def one(_: int) -> int:
        return httpx.get(f"{service.url}{LIVE}", timeout=10, headers={"Connection": "close"}).status_code

    with ThreadPoolExecutor(8) as pool:
        assert set(pool.map(one, range(count))) == {200}


def live_count(service: ServiceProcess) -> float:
    text = httpx.get(f"{service.url}/metrics", timeout=10).text
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == "feature_store_http_requests_total" and sample.labels["endpoint"] == LIVE
    )


def workers(service: ServiceProcess) -> set[int]:
    pid = service.process.pid
    return {int(child) for child in Path(f"/proc/{pid}/task/{pid}/children").read_text().split()}


def test_the_directory_is_emptied_at_start(served) -> None:
    _, directory = served
    assert not (directory / "counter_1.db").exists()


def test_scrapes_sum_every_worker_and_a_dead_worker_loses_nothing(served) -> None:
    service, directory = served
    live_requests(service, 60)
    assert live_count(service) == 60

    counted = {int(path.stem.rpartition("_")[2]) for path in directory.glob("counter_*.db")}
    victim = next(iter(counted & workers(service)))
    os.kill(victim, signal.SIGKILL)
    deadline = time.monotonic() + 20
    while victim in workers(service) or len(workers(service)) < 2:  # uvicorn starts a new worker in its place
        assert time.monotonic() < deadline, "no worker replaced the one killed"
        time.sleep(0.1)
    for _ in range(5):  # whichever worker answers, the dead one's counts are in the sum
        assert live_count(service) == 60
    live_requests(service, 20)
    assert live_count(service) == 80

"""The monitoring proven against a real Prometheus scraping the service as deployed (`python -m serve`, two
worker processes, the Prometheus exporter): after a short bounded load, every query of the dashboard and
every metric the alert rules select returns series (a panel or rule naming a metric the service does not
export fails here), Prometheus evaluates every rule without error, and the scraped request count is
exactly the number of requests sent, across both workers."""

import re
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import closing
from datetime import UTC, datetime, timedelta
from typing import Any

import httpx
import pytest
import yaml

from core.settings import Settings
from devservers import ServiceProcess, free_port
from tests.deploy.conftest import MONITORING, alert_rules, dashboard_panels
from tests.deploy.prometheus_server import JOB, PrometheusServer
from tests.factories import write_body

pytestmark = [
    pytest.mark.slow,
    # Runs once the service has its Prometheus exporter (METRICS_EXPORTER); until then there is nothing to scrape.
    pytest.mark.skipif("metrics_exporter" not in Settings.model_fields, reason="no METRICS_EXPORTER setting yet"),
]

REGISTRY = {
    "categories": {
        "user_features": {"max_age_seconds": 3600},
        "credit_features": {},
        "trans_features": {},
    }
}
RATE_INTERVAL = "30s"
"""What `$__rate_interval` stands for: at least four scrape intervals (1 s here)."""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[ServiceProcess, PrometheusServer]]:
    workdir = tmp_path_factory.mktemp("prometheus-live")
    registry = workdir / "registry.yaml"
    registry.write_text(yaml.safe_dump(REGISTRY))
    env = {
        "WEB_CONCURRENCY": "2",
        "METRICS_EXPORTER": "prometheus",
        "STORE_BACKEND": "sqlite",
        "SQLITE_PATH": str(workdir / "features.db"),
        "FEATURE_REGISTRY_FILE": str(registry),
        "OUTBOX_GAUGE_SECONDS": "0.5",
        "LOG_LEVEL": "WARNING",
    }
    # Both start at once: Prometheus only needs the port it will scrape (a scrape before the service is up fails,
    # and counts for nothing).
    port = free_port()
    with ThreadPoolExecutor(1) as pool:
        starting = pool.submit(PrometheusServer, workdir, [f"127.0.0.1:{port}"], [MONITORING / "alerts.yaml"])
        try:
            service = ServiceProcess(env, workdir, port=port)
        except BaseException:
            starting.result().stop()
            raise
    try:
        prometheus = starting.result()
        try:
            yield service, prometheus
        finally:
            prometheus.stop()
    finally:
        service.kill()


class Load:
    """Requests sent to the service, counted by the answer's status."""

    def __init__(self, url: str) -> None:
        self.url = url
        self.sent: Counter[int] = Counter()

    def send(self, method: str, path: str, **kwargs: Any) -> httpx.Response:
        # A connection per request, so the kernel spreads them over both workers.
        response = httpx.request(method, f"{self.url}{path}", timeout=30, **kwargs)
        self.sent[response.status_code] += 1
        return response

    def run(self, sqlite_path: str) -> None:
        """Writes (with an event time, so events, ages and lags exist), reads, a 404, 422s, readiness, and a
        write the store refuses while a lock is held (a store error and a 503)."""
        event_time = (datetime.now(UTC) - timedelta(hours=2)).isoformat()
        for number in range(10):
            categories = {"user_features": {"age": number}, "credit_features": {"credit_score": 700 + number}}
            body = write_body(f"user-{number}", categories, event_time=event_time)
            assert self.send("POST", "/api/v1/items", json=body).status_code == 200
        for number in range(10):
            for category in ("user_features", "credit_features"):
                assert self.send("GET", f"/api/v1/get/item/user-{number}/{category}").status_code == 200
        assert self.send("GET", "/api/v1/get/item/nobody/user_features").status_code == 404
        assert self.send("POST", "/api/v1/items", json={"data": {}}).status_code == 422
        assert self.send("POST", "/api/v1/items", json=write_body(categories={"unknown": {"x": 1}})).status_code == 422
        assert self.send("GET", "/api/v1/ready").status_code == 200
        self.refused_write(sqlite_path)

    def refused_write(self, sqlite_path: str) -> None:
        """Hold the file's write lock past the store's busy timeout: the write in between fails."""
        locked = threading.Event()
        release = threading.Event()

        def hold() -> None:
            with closing(sqlite3.connect(sqlite_path, isolation_level=None)) as db:
                db.execute("BEGIN IMMEDIATE")
                locked.set()
                release.wait(30)
                db.execute("ROLLBACK")

        holder = threading.Thread(target=hold)
        holder.start()
        try:
            assert locked.wait(10)
            answer = self.send("POST", "/api/v1/items", json=write_body("locked-out"))
            assert answer.status_code == 503, answer.text
        finally:
            release.set()
            holder.join()
        assert self.send("GET", "/api/v1/ready").status_code in (200, 503)


@pytest.fixture(scope="module")
def loaded(served: tuple[ServiceProcess, PrometheusServer]) -> tuple[PrometheusServer, Load]:
    service, prometheus = served
    load = Load(service.url)
    load.run(service.env["SQLITE_PATH"])
    prometheus.wait_for_scrapes(3)
    return prometheus, load


def dashboard_queries() -> list[tuple[str, str]]:
    """Every target of the dashboard as Prometheus runs it: variables set to "all", the rate interval fixed."""
    replacements = {"$__rate_interval": RATE_INTERVAL, "$namespace": ".*", "$instance": ".*"}
    queries = []
    for panel in dashboard_panels():
        for target in panel["targets"]:
            expr = target["expr"]
            for variable, value in replacements.items():
                expr = expr.replace(variable, value)
            queries.append((f"{panel['title']} {target['refId']}", expr))
    return queries


def selected_metrics() -> set[str]:
    """The metric names the alert rules select (a rule's own expression answers nothing while it does not fire)."""
    return {name for rule in alert_rules() for name in re.findall(r"\b(feature_store_\w+|up)\b", rule["expr"])}


def test_every_dashboard_query_returns_series(loaded: tuple[PrometheusServer, Load]) -> None:
    prometheus, _ = loaded
    empty = [title for title, expr in dashboard_queries() if not prometheus.query(expr)]
    assert not empty, f"panels with no series: {empty}"


def test_every_metric_the_alerts_select_is_scraped(loaded: tuple[PrometheusServer, Load]) -> None:
    prometheus, _ = loaded
    missing = sorted(name for name in selected_metrics() if not prometheus.query(f'{name}{{job="{JOB}"}}'))
    assert not missing, f"metrics the alert rules select that the service does not export: {missing}"


def test_prometheus_evaluates_every_rule_without_error(loaded: tuple[PrometheusServer, Load]) -> None:
    prometheus, _ = loaded
    deadline = time.monotonic() + 10
    while True:
        rules = [rule for group in prometheus.api("rules")["groups"] for rule in group["rules"]]
        if all(not rule["lastEvaluation"].startswith("0001") for rule in rules):
            break
        assert time.monotonic() < deadline, "the rules were not evaluated"
        time.sleep(0.5)
    assert {rule["name"] for rule in rules} == {rule["alert"] for rule in alert_rules()}
    assert all(rule["health"] == "ok" for rule in rules), [(rule["name"], rule.get("lastError")) for rule in rules]
    assert {rule["name"]: rule["state"] for rule in rules}["FeatureStoreDown"] == "inactive"


def test_the_scraped_request_count_is_the_number_sent(loaded: tuple[PrometheusServer, Load]) -> None:
    prometheus, load = loaded
    # Readiness polls of the start-up are the only requests not sent by the load.
    query = f'sum(feature_store_http_requests_total{{job="{JOB}", endpoint!="/api/v1/health"}})'
    assert prometheus.value(query) == sum(load.sent.values())
    by_status = prometheus.query(f'sum by (status) (feature_store_http_requests_total{{job="{JOB}"}})')
    scraped = {int(series["metric"]["status"]) for series in by_status}
    assert scraped >= {200, 404, 422, 503}

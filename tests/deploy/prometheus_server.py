"""A real Prometheus for the tests (Debian's `prometheus`, from scripts/install_test_servers.sh): it scrapes
the given targets every second into a temporary database, evaluates the given rule files, and answers
PromQL through its HTTP API."""

import shutil
import subprocess
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx
import yaml

from devservers import free_port

JOB = "feature-store-api"
"""The job name a ServiceMonitor scrape of deploy/k8s's Service gets, as deploy/monitoring/alerts.yaml expects."""


class PrometheusServer:
    """Prometheus scraping `targets` (`host:port`) at `/metrics` every second; its log is `workdir/prometheus.log`."""

    def __init__(self, workdir: Path, targets: Sequence[str], rule_files: Sequence[Path] = ()) -> None:
        binary = shutil.which("prometheus")
        assert binary, "prometheus comes from scripts/install_test_servers.sh"
        config = {
            "global": {"scrape_interval": "1s", "scrape_timeout": "1s", "evaluation_interval": "1s"},
            "rule_files": [str(path) for path in rule_files],
            "scrape_configs": [
                {"job_name": JOB, "metrics_path": "/metrics", "static_configs": [{"targets": list(targets)}]}
            ],
        }
        config_path = workdir / "prometheus.yml"
        config_path.write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = workdir / "prometheus.log"
        with self.log_path.open("ab") as log:
            self.process = subprocess.Popen(
                [
                    binary,
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={workdir / 'prometheus-data'}",
                    f"--web.listen-address=127.0.0.1:{self.port}",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        self._wait_ready()

    def _wait_ready(self, timeout: float = 30) -> None:
        deadline = time.monotonic() + timeout
        while True:
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=1).status_code == 200:
                    return
            except httpx.TransportError:
                pass
            if self.process.poll() is not None or time.monotonic() > deadline:
                self.stop()
                raise RuntimeError(f"prometheus did not start:\n{self.log_path.read_text()[-2000:]}")
            time.sleep(0.1)

    def api(self, path: str, **params: str) -> Any:
        """The `data` of a successful answer of the HTTP API (`/api/v1/<path>`)."""
        answer = httpx.get(f"{self.url}/api/v1/{path}", params=params, timeout=10).json()
        assert answer["status"] == "success", answer
        return answer["data"]

    def query(self, expr: str) -> list[dict[str, Any]]:
        """An instant query's series, now."""
        return self.api("query", query=expr)["result"]

    def value(self, expr: str) -> float | None:
        """The value of a query that gives one series, or None when it gives none."""
        result = self.query(expr)
        assert len(result) <= 1, result
        return float(result[0]["value"][1]) if result else None

    def wait_for_scrapes(self, count: int, timeout: float = 30) -> None:
        """Until the targets have been scraped successfully `count` more times (in all)."""
        successes = f'sum(sum_over_time(up{{job="{JOB}"}}[1h]))'
        start = self.value(successes) or 0
        deadline = time.monotonic() + timeout
        while (self.value(successes) or 0) < start + count:
            assert time.monotonic() < deadline, f"fewer than {count} scrapes in {timeout} s"
            time.sleep(0.2)
        targets = self.api("targets")["activeTargets"]
        assert targets and all(target["health"] == "up" for target in targets), targets

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()

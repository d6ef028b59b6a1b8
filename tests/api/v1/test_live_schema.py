"""The document and the service agree over HTTP: schemathesis' command line, every check (`--checks all`,
so schema-valid requests must be accepted and schema-invalid ones refused), against the service under
uvicorn on the embedded store, with API keys off and on.

Bounded: a fixed number of examples per operation from a fixed seed, so a run takes the same requests
each time and tens of seconds. `live_hooks.py` lets through only what no JSON Schema can state
(live_refusals.py). On a
failure the assertion shows schemathesis' report, each failure with a curl command reproducing it.
"""

import os
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml

from core.auth import hash_key, new_key
from devservers import ROOT, ServiceProcess
from tests.api.v1.live_refusals import refused_only_by_rules_no_schema_states

pytestmark = [pytest.mark.slow]

HOOKS = Path(__file__).with_name("live_hooks.py")
ST = Path(sys.executable).with_name("st")
EXAMPLES = {"keys_off": 25, "keys_on": 15}
"""Examples per operation and generation phase; keys on fuzzes the same operations behind the key gate."""
SEED = 20261130
RUN_SECONDS = 240


def service(tmp_path: Path, **env: str) -> ServiceProcess:
    return ServiceProcess(
        {
            "STORE_BACKEND": "sqlite",
            "SQLITE_PATH": str(tmp_path / "features.db"),
            "ENVIRONMENT": "development",
            "LOG_LEVEL": "WARNING",
            "KAFKA_BROKER_URL": "",
            **env,
        },
        tmp_path,
    )


class LiveRun:
    """One schemathesis run against a service of its own, started at once and read when it is over; its output
    goes to files, so a run nobody reads yet never blocks on a full pipe."""

    def __init__(self, keys: str, tmp_path: Path) -> None:
        env: dict[str, str] = {}
        headers: list[str] = []
        if keys == "keys_on":
            key = new_key()
            entry = {
                "name": "fuzzer",
                "sha256": hash_key(key),
                "scopes": ["features:read", "features:write", "admin"],
                "sources": ["prediction_service"],
                "categories": ["*"],
            }
            (tmp_path / "keys.yaml").write_text(yaml.safe_dump([entry]))
            env = {"AUTH_ENABLED": "true", "API_KEYS_FILE": str(tmp_path / "keys.yaml")}
            headers = ["-H", f"X-API-Key: {key}"]
        self.server = service(tmp_path, **env)
        self.stdout = tmp_path / "st.out"
        self.stderr = tmp_path / "st.err"
        self.deadline = time.monotonic() + RUN_SECONDS
        with self.stdout.open("wb") as stdout, self.stderr.open("wb") as stderr:
            self.process = subprocess.Popen(
                [
                    str(ST),
                    "run",
                    f"{self.server.url}/openapi.json",
                    "--checks",
                    "all",
                    "--max-examples",
                    str(EXAMPLES[keys]),
                    "--seed",
                    str(SEED),
                    "--generation-database",
                    "none",
                    "--workers",
                    "1",
                    "--no-color",
                    "--continue-on-failure",
                    *headers,
                ],
                cwd=tmp_path,
                env={**os.environ, "SCHEMATHESIS_HOOKS": str(HOOKS), "PYTHONPATH": str(ROOT)},
                stdout=stdout,
                stderr=stderr,
            )

    def result(self) -> tuple[int, str, str]:
        """Its exit status, its output and the end of both outputs (the report a failure shows)."""
        try:
            returncode = self.process.wait(timeout=max(0.0, self.deadline - time.monotonic()))
        finally:
            self.stop()
        stdout, stderr = self.stdout.read_text(), self.stderr.read_text()
        return returncode, stdout, stdout[-20_000:] + stderr[-2_000:]

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        self.server.kill()


@pytest.fixture(scope="module")
def live_runs(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, LiveRun]]:
    """The runs of this session's tests, started side by side: a run is a client and a server taking turns, about
    one core between them, so two take little longer than one."""
    wanted = [
        str(item.callspec.params["keys"])
        for item in request.session.items
        if isinstance(item, pytest.Function) and item.module is request.module and "keys" in item.fixturenames
    ]
    runs: dict[str, LiveRun] = {}
    try:
        for keys in wanted:
            runs[keys] = LiveRun(keys, tmp_path_factory.mktemp(keys))
        yield runs
    finally:
        for run in runs.values():
            run.stop()


@pytest.mark.parametrize("keys", ["keys_off", "keys_on"])
def test_schemathesis_finds_no_disagreement_over_http(live_runs: dict[str, LiveRun], keys: str) -> None:
    returncode, stdout, report = live_runs[keys].result()
    assert returncode == 0, report
    assert "No issues found" in stdout, report


def test_only_the_rules_no_schema_states_are_let_through() -> None:
    repeated = b'{"detail":[{"type":"value_error","loc":["body","data","feature_list",1,"category"],'
    repeated += b'"msg":"category \'user_features\' appears more than once"}],"error":"validation_error"}'
    assert refused_only_by_rules_no_schema_states(422, repeated)
    other = b'{"detail":[{"type":"missing","loc":["body","data"],"msg":"Field required"}]}'
    assert not refused_only_by_rules_no_schema_states(422, other)
    both = b'{"detail":[{"msg":"category \'a\' appears more than once"},{"msg":"Field required"}]}'
    assert not refused_only_by_rules_no_schema_states(422, both)
    assert not refused_only_by_rules_no_schema_states(403, repeated)
    assert not refused_only_by_rules_no_schema_states(422, b"not json")
    ahead = (
        b'{"detail":[{"loc":["query","event_time"],"msg":"the limit is 300 seconds (MAX_EVENT_TIME_AHEAD_SECONDS)"}]}'
    )
    assert refused_only_by_rules_no_schema_states(422, ahead)

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


@pytest.mark.parametrize("keys", ["keys_off", "keys_on"])
def test_schemathesis_finds_no_disagreement_over_http(tmp_path: Path, keys: str) -> None:
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
    server = service(tmp_path, **env)
    try:
        run = subprocess.run(
            [
                str(ST),
                "run",
                f"{server.url}/openapi.json",
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
            capture_output=True,
            text=True,
            timeout=RUN_SECONDS,
        )
    finally:
        server.kill()
    report = run.stdout[-20_000:] + run.stderr[-2_000:]
    assert run.returncode == 0, report
    assert "No issues found" in run.stdout, report


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

"""A configuration error stops `python -m serve` with one line per problem naming the setting or file, and a
non-zero exit; the traceback only with LOG_LEVEL=DEBUG."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from pydantic import ValidationError

from core.exceptions import ConfigurationError
from core.settings import Settings
from core.startup_errors import EXIT_CODE, exit_on_configuration_error, problems_of
from devservers.processes import ROOT


def serve(tmp_path: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """`python -m serve` as deployed, in a directory of its own (no `.env`), with these settings."""
    base = {"PATH": os.environ["PATH"], "HOME": str(tmp_path), "ENVIRONMENT": "development"}
    settings = {"SQLITE_PATH": str(tmp_path / "features.db"), "KAFKA_BROKER_URL": "", "PORT": "1"}
    return subprocess.run(
        [sys.executable, str(ROOT / "serve.py")],
        cwd=tmp_path,
        env={**base, **settings, **env},
        capture_output=True,
        text=True,
        timeout=60,
    )


def test_refused_settings_are_one_line_each_and_no_traceback(tmp_path: Path) -> None:
    done = serve(tmp_path, MAX_BODY_BYTES="-1", RATE_LIMIT_BURST="many")
    assert done.returncode == EXIT_CODE
    assert done.stderr.splitlines() == [
        "configuration error: MAX_BODY_BYTES: refused '-1': Input should be greater than 0",
        "configuration error: RATE_LIMIT_BURST: refused 'many': "
        "Input should be a valid integer, unable to parse string as an integer",
    ]


def test_a_key_naming_an_unknown_category_names_the_keys_file(tmp_path: Path) -> None:
    keys = tmp_path / "keys.json"
    entry = {"name": "job", "sha256": "0" * 64, "scopes": ["features:write"], "sources": ["prediction_service"]}
    keys.write_text(json.dumps([{**entry, "categories": ["made_up"]}]))
    done = serve(tmp_path, AUTH_ENABLED="true", API_KEYS_FILE=str(keys))
    assert done.returncode == EXIT_CODE
    [line] = done.stderr.splitlines()
    assert line.startswith(f"configuration error: API_KEYS_FILE {keys}: line 1, key 'job' names categories not allowed")
    assert "made_up" in line and "Traceback" not in done.stderr


def test_with_log_level_debug_the_traceback_is_shown(tmp_path: Path) -> None:
    done = serve(tmp_path, MAX_BODY_BYTES="-1", LOG_LEVEL="DEBUG")
    assert done.returncode not in (0, EXIT_CODE)
    assert "Traceback" in done.stderr and "max_body_bytes" in done.stderr


def test_a_check_across_settings_gives_a_line_per_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_BROKER_URL", "localhost:9092")
    monkeypatch.setenv("SCHEMA_REGISTRY", "none")
    monkeypatch.setenv("KAFKA_PRODUCER_CONFIG", '{"acks": "1", "enable.idempotence": false}')
    with pytest.raises(ValidationError) as caught:
        Settings(_env_file=None)
    problems = problems_of(caught.value)
    assert problems is not None and len(problems) == 2
    assert all(problem.startswith("KAFKA_PRODUCER_CONFIG may not set") for problem in problems)


def test_other_errors_are_not_configuration_errors(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(RuntimeError), exit_on_configuration_error():
        raise RuntimeError("a bug")
    with pytest.raises(SystemExit) as exited, exit_on_configuration_error():
        raise ConfigurationError("FEATURE_REGISTRY_FILE r.yaml: first\nsecond")
    assert exited.value.code == EXIT_CODE
    assert capsys.readouterr().err.splitlines() == [
        "configuration error: FEATURE_REGISTRY_FILE r.yaml: first",
        "configuration error: second",
    ]

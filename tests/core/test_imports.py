"""`core/` knows nothing of features or events: none of its modules imports from the service's upper
layers, so the settings and the clients load without them and no import loop can form through them."""

import ast
from pathlib import Path

import pytest

pytestmark = pytest.mark.backends("sqlite")

ROOT = Path(__file__).resolve().parents[2]
UPPER_LAYERS = ("api", "components", "middlewares", "main", "serve")


def imported_modules(path: Path) -> set[str]:
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def test_core_imports_nothing_from_the_layers_above_it() -> None:
    offending = [
        f"{path.relative_to(ROOT)}: {module}"
        for path in sorted((ROOT / "core").rglob("*.py"))
        for module in sorted(imported_modules(path))
        if module.split(".")[0] in UPPER_LAYERS
    ]
    assert offending == []

"""The import rules of docs/architecture.md, checked on every module of the service: a forbidden import fails
the suite, naming the file, the module it imports and the rule it breaks."""

import ast
from collections.abc import Iterator
from pathlib import Path

import pytest

pytestmark = pytest.mark.backends("sqlite")

ROOT = Path(__file__).resolve().parent.parent
SERVICE = ("api", "components", "core", "middlewares")
HTTP_MODELS = (
    "components.features.models",
    "components.features.bulk_models",
    "components.features.response_models",
    "components.features.history_models",
)
RULES: tuple[tuple[str, tuple[str, ...], str], ...] = (
    # (modules the rule covers, module prefixes they must not import, why)
    ("core", ("api", "components", "middlewares", "main", "serve"), "core knows nothing of features, events or HTTP"),
    ("middlewares", ("api", "components", "main"), "middlewares see requests, not features"),
    ("components", ("api", "middlewares", "main", "serve"), "components know nothing of the HTTP layer"),
    ("components.events", ("components.features", "components.runtime"), "the event pipeline knows no features"),
    (
        "components.features.store",
        (
            "components.features.controller",
            "components.features.services",
            "components.features.flows",
            "components.features.erasure",
            "components.features.history",
            "components.features.history_service",
            "components.features.registry",
            "components.features.records",
            "components.features.values",
            *HTTP_MODELS,
        ),
        "storage knows no rules and no HTTP models",
    ),
    (
        "components.features.flows",
        ("components.features.services", "components.features.controller", *HTTP_MODELS),
        "flows never call up",
    ),
    (
        "components.features.erasure",
        ("components.features.services", "components.features.controller", *HTTP_MODELS),
        "flows never call up",
    ),
    (
        "components.features.history",
        (
            "components.features.services",
            "components.features.history_service",
            "components.features.controller",
            *HTTP_MODELS,
        ),
        "flows never call up",
    ),
    (
        "components.features.history_service",
        ("components.features.controller", *HTTP_MODELS),
        "services take records, not HTTP models",
    ),
    (
        "components.features.services",
        ("components.features.controller", *HTTP_MODELS),
        "services take records, not HTTP models",
    ),
    (
        "components.features.registry",
        ("components.features.controller", "components.features.services", "components.features.flows", *HTTP_MODELS),
        "the registry is read by services, never the reverse",
    ),
    (
        "components.features.values",
        ("components.features.controller", "components.features.services", "components.features.flows", *HTTP_MODELS),
        "value checks are below the services",
    ),
    ("components.features.names", ("components", "core", "api"), "the name grammar depends on nothing"),
    (
        "components.features.records",
        ("components.features.controller", "components.features.services", "components.features.flows", *HTTP_MODELS),
        "records are plain values",
    ),
    (
        "components.features.controller",
        (
            "components.features.flows",
            "components.features.erasure",
            "components.features.history",
            "components.features.store",
            "components.events",
        ),
        "the controller talks to services only",
    ),
    (
        "api",
        (
            "components.features.store",
            "components.features.flows",
            "components.features.services",
            "components.features.history",
            "components.features.history_service",
            "components.events.kafka",
            "core.dynamodb_client",
        ),
        "routes call the controller; no storage or Kafka in the HTTP layer",
    ),
)


def module_name(path: Path) -> str:
    parts = path.relative_to(ROOT).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports(path: Path) -> Iterator[str]:
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module


def within(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def violations(modules: dict[str, set[str]]) -> list[str]:
    return [
        f"{module} imports {imported}: {why}"
        for module, imported_modules in sorted(modules.items())
        for covered, forbidden, why in RULES
        if within(module, covered)
        for imported in sorted(imported_modules)
        if any(within(imported, prefix) for prefix in forbidden)
    ]


def service_modules() -> dict[str, set[str]]:
    return {
        module_name(path): set(imports(path)) for package in SERVICE for path in sorted((ROOT / package).rglob("*.py"))
    }


def test_every_module_keeps_the_import_rules() -> None:
    assert violations(service_modules()) == []


def test_a_forbidden_import_is_named_with_its_rule() -> None:
    found = violations(
        {
            "core.metrics": {"components.features.flows"},
            "components.features.controller": {"components.features.store.base", "components.features.services"},
            "api.v1.routes": {"components.events.kafka"},
        }
    )
    assert found == [
        "api.v1.routes imports components.events.kafka: routes call the controller; no storage or Kafka in the HTTP layer",
        "components.features.controller imports components.features.store.base: the controller talks to services only",
        "core.metrics imports components.features.flows: core knows nothing of features, events or HTTP",
    ]


def test_the_rules_cover_every_package_of_the_service() -> None:
    modules = service_modules()
    assert {module.split(".")[0] for module in modules} == set(SERVICE)
    assert all(any(within(module, covered) for covered, _, _ in RULES) for module in modules)

"""Schema-driven fuzzing of every operation in the app's own OpenAPI document (schemathesis, in-process).

Each operation gets schema-valid and schema-invalid requests. Every answer must be a documented
status with a body matching its documented schema, and never a 5xx; schema-invalid requests must be
refused. Rules that depend on configuration (the category whitelist, entity types, writers) cannot
be in a static schema, so the test narrows those fields to configured values: valid requests then
reach the store instead of stopping at the first 422. Acceptance of valid requests is not asserted:
some rules cannot be in a schema at all (1024 UTF-8 *bytes*, a category repeated in one write).
"""

import copy
from typing import Any

import pytest
import schemathesis
import yaml
from fastapi.routing import APIRoute
from hypothesis import HealthCheck, assume, given, settings
from schemathesis import GenerationMode
from schemathesis.checks import CheckFunction, not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    negative_data_rejection,
    response_headers_conformance,
    response_schema_conformance,
    status_code_conformance,
)

import main
from api.v1 import access, admin, earlier, history, inspect, limits, registry
from api.v1.routes import probes, reads, writes
from core.auth import hash_key, new_key
from tests.conftest import AppClient

EXAMPLES_PER_OPERATION = 25
"""Per operation and mode, in-process; schemathesis' full checks also run over HTTP (test_live_schema.py)."""
KEYED_EXAMPLES = 12
"""Valid requests behind a valid key: the gate lets them through to what `test_valid_requests` fuzzed."""
GATE_EXAMPLES = 8
"""Invalid requests without a valid key: the gate refuses them whatever they hold, so fewer tell as much
(invalid requests behind a valid key are fuzzed over HTTP, test_live_schema.py)."""
OPERATIONS = [(method.upper(), path) for path, item in main.app.openapi()["paths"].items() for method in item]
TRANSPORT_ARGUMENTS = ("method", "url", "params", "headers", "json", "content")


CHECKS: list[CheckFunction] = [
    not_a_server_error,
    status_code_conformance,
    content_type_conformance,
    response_schema_conformance,
    response_headers_conformance,
]


def narrow(node: Any, values: dict[str, list[str]]) -> None:
    """Give configuration-bound string properties and parameters an enum of the configured values."""
    if isinstance(node, dict):
        for name, schema in node.get("properties", {}).items():
            if name in values and schema.get("type") != "null":  # "null" marks a field that must be absent
                schema.pop("anyOf", None)
                schema.update(type="string", enum=values[name])
        if node.get("in") in ("path", "query") and node.get("name") in values:
            node["schema"] = {"type": "string", "enum": values[node["name"]]}
        for child in node.values():
            narrow(child, values)
    elif isinstance(node, list):
        for child in node:
            narrow(child, values)


@pytest.fixture
def keyed_client(make_client, tmp_path) -> tuple[AppClient, dict[str, str]]:
    """An app with API keys on, and the headers of one key allowed everything."""
    key = new_key()
    entry = {
        "name": "fuzzer",
        "sha256": hash_key(key),
        "scopes": ["features:read", "features:write", "admin"],
        "sources": ["prediction_service"],
        "categories": ["*"],
    }
    (tmp_path / "keys.yaml").write_text(yaml.safe_dump([entry]))
    return make_client(auth_enabled=True, api_keys_file=str(tmp_path / "keys.yaml")), {"X-API-Key": key}


@pytest.fixture(params=["keys_off", "keys_on"])
def fuzz_client(request: pytest.FixtureRequest, make_client) -> tuple[AppClient, dict[str, str]]:
    """An app and the headers every fuzzed request carries: none, or one key allowed everything."""
    if request.param == "keys_off":
        return make_client(), {}
    return request.getfixturevalue("keyed_client")


LOADED: dict[tuple[str, bool, GenerationMode], Any] = {}
"""The app's document as schemathesis loaded it, per backend, key setting and mode. The apps of these
tests differ in nothing else their document shows, and an app takes ~90 ms to build its document."""


def loaded_document(client: AppClient, mode: GenerationMode) -> Any:
    runtime_settings = client.app.state.runtime.settings
    key = (runtime_settings.store_backend, runtime_settings.auth_enabled, mode)
    if key not in LOADED:
        document = client.app.openapi()
        if mode is GenerationMode.POSITIVE:
            document = copy.deepcopy(document)
            narrow(
                document,
                {
                    "category": list(runtime_settings.allowed_categories),
                    "entity_type": sorted(runtime_settings.entity_types),
                    "source": ["prediction_service"],
                },
            )
        LOADED[key] = schemathesis.openapi.from_dict(document)
    return LOADED[key]


def fuzz(
    client: AppClient,
    key_headers: dict[str, str],
    method: str,
    path: str,
    mode: GenerationMode,
    examples: int = EXAMPLES_PER_OPERATION,
) -> None:
    """Valid requests carry the valid key and configured names, to get past the gate; invalid ones are
    generated from the published document untouched (a missing or made-up key is theirs to send)."""
    headers: dict[str, str] = {}
    checks = [*CHECKS, negative_data_rejection]
    if mode is GenerationMode.POSITIVE:
        headers, checks = key_headers, CHECKS
    operation = loaded_document(client, mode)[path][method]

    @given(case=operation.as_strategy(mode))
    @settings(
        max_examples=examples,
        deadline=None,
        database=None,
        suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much, HealthCheck.data_too_large],
    )
    def run(case: schemathesis.Case) -> None:
        arguments = case.as_transport_kwargs(headers=headers)
        # A header value HTTP clients cannot send (e.g. a Bearer token with non-ASCII characters) is no request.
        assume(all(not isinstance(value, str) or value.isascii() for value in arguments.get("headers", {}).values()))
        response = client.request(**{name: arguments[name] for name in TRANSPORT_ARGUMENTS if name in arguments})
        case.validate_response(response, checks=checks)

    run()


def has_inputs(method: str, path: str) -> bool:
    operation = main.app.openapi()["paths"][path][method.lower()]
    return bool(operation.get("parameters") or operation.get("requestBody"))


@pytest.mark.slow
@pytest.mark.backends("sqlite", "dynamodb")
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_valid_requests(make_client, method: str, path: str) -> None:
    """Valid requests reach the store with whatever values the schema allows: on every backend."""
    fuzz(make_client(), {}, method, path, GenerationMode.POSITIVE)


@pytest.mark.slow
@pytest.mark.backends("sqlite")
@pytest.mark.parametrize(("method", "path"), OPERATIONS)
def test_valid_requests_with_a_key(keyed_client: tuple[AppClient, dict[str, str]], method: str, path: str) -> None:
    """The key gate in front of the same requests; what lies behind it was fuzzed on every backend above."""
    fuzz(*keyed_client, method, path, GenerationMode.POSITIVE, KEYED_EXAMPLES)


@pytest.mark.slow
@pytest.mark.backends("sqlite")
@pytest.mark.parametrize(("method", "path"), [operation for operation in OPERATIONS if has_inputs(*operation)])
def test_invalid_requests(fuzz_client: tuple[AppClient, dict[str, str]], method: str, path: str) -> None:
    """Refused before any store is reached, with keys off and on: the embedded store serves these as well as any."""
    client, key_headers = fuzz_client
    examples = GATE_EXAMPLES if key_headers else EXAMPLES_PER_OPERATION
    fuzz(client, key_headers, method, path, GenerationMode.NEGATIVE, examples)


def test_every_route_is_fuzzed() -> None:
    routes: set[tuple[str, str]] = set()
    for router in (
        reads,
        writes,
        probes,
        inspect.router,
        earlier.reads,
        earlier.writes,
        registry.router,
        limits.router,
        access.router,
        admin.router,
        history.reads,
        history.admin,
    ):
        for route in router.routes:
            assert isinstance(route, APIRoute) and route.methods
            routes.update((method, route.path) for method in route.methods)
    assert routes == set(OPERATIONS)

"""The OpenAPI document as client generators read it: operation ids that name methods."""

import keyword
from typing import Any

import pytest
from pydantic import BaseModel

from components.features import bulk_models, history_models, response_models
from core.error_envelope import error_code
from core.exceptions import ERROR_CODES, FeatureStoreError
from main import create_app
from scripts.openapi import DOCUMENT_PATH, published_document, render

OPERATION_IDS = {
    ("get", "/api/v1/get/item/{entity_value}/{category}"): "read_category",
    ("get", "/api/v1/inspect/{entity_value}"): "inspect_entity",
    ("post", "/api/v1/get/items"): "read_features",
    ("post", "/api/v1/get/items/batch"): "read_batch",
    ("post", "/api/v1/items"): "write_features",
    ("post", "/api/v1/items/batch"): "write_batch",
    ("delete", "/api/v1/items/{entity_value}"): "delete_features",
    ("post", "/api/v1/get/item/{entity_value}"): "read_features_earlier",
    ("post", "/api/v1/items/{entity_value}"): "write_features_earlier",
    ("get", "/api/v1/registry"): "registry",
    ("get", "/api/v1/registry/{category}"): "registry_category",
    ("get", "/api/v1/limits"): "limits",
    ("get", "/api/v1/access"): "access",
    ("get", "/api/v1/health"): "health",
    ("get", "/api/v1/live"): "live",
    ("get", "/api/v1/ready"): "ready",
    ("post", "/api/v1/warmup"): "warmup",
    ("get", "/api/v1/warmup"): "warmup_by_get",
    ("get", "/api/v1/admin/dead-letters"): "list_dead_letters",
    ("post", "/api/v1/admin/dead-letters/redrive"): "redrive_dead_letters",
    ("get", "/api/v1/history/{entity_value}/{category}"): "list_history",
    ("post", "/api/v1/admin/rollback"): "rollback",
}

RESPONSE_MODELS = [
    response_models.CategoryItemResponse,
    response_models.FeaturesResponse,
    response_models.BatchResponse,
    response_models.WriteResponse,
    response_models.HealthResponse,
    response_models.ReadyResponse,
    response_models.WarmupResponse,
    response_models.ErrorResponse,
    response_models.RegistryResponse,
    response_models.RegistryCategory,
    response_models.LimitsResponse,
    response_models.DeadLettersResponse,
    response_models.RedriveResponse,
    response_models.InspectResponse,
    response_models.InspectedCategoryResponse,
    bulk_models.BatchWriteResponse,
    bulk_models.BatchWriteResult,
    bulk_models.EntityError,
    bulk_models.DeleteResponse,
    history_models.HistoryResponse,
    history_models.RollbackResponse,
]


def operations(document: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    return {(method, path): operation for path, item in document["paths"].items() for method, operation in item.items()}


@pytest.fixture(params=["keys_off", "keys_on"])
def document(request: pytest.FixtureRequest, make_settings, api_keys, tmp_path) -> dict[str, Any]:
    keys = {"auth_enabled": True, "api_keys_file": str(tmp_path / "keys.json")} if request.param == "keys_on" else {}
    return create_app(make_settings(**keys)).openapi()


@pytest.mark.backends("sqlite")
def test_operation_ids_are_unique_method_names(document: dict[str, Any], backend) -> None:
    ids = {key: operation.get("operationId") for key, operation in operations(document).items()}
    for key, operation_id in ids.items():
        assert isinstance(operation_id, str) and operation_id.isidentifier(), key
        assert not keyword.iskeyword(operation_id), key
    assert len(set(ids.values())) == len(ids)
    assert ids == OPERATION_IDS


@pytest.mark.backends("sqlite")
def test_the_document_is_built_once(make_settings, backend) -> None:
    app = create_app(make_settings())
    document = app.openapi()
    assert app.openapi() is document
    assert app.openapi_schema is document
    assert document["components"]["schemas"]["FeatureValue"], "the transforms are applied to the cached document"


def all_subclasses(cls: type[FeatureStoreError]) -> list[type[FeatureStoreError]]:
    return [cls, *(sub for child in cls.__subclasses__() for sub in all_subclasses(child))]


def test_every_error_code_is_in_the_documented_enum() -> None:
    codes = {error.error for error in all_subclasses(FeatureStoreError)}
    codes |= {error_code(status) for status in range(400, 600)}
    assert codes <= set(ERROR_CODES)
    assert error_code(405) == "method_not_allowed"


@pytest.mark.backends("sqlite")
def test_errors_and_headers_are_documented(document: dict[str, Any], backend) -> None:
    error = document["components"]["schemas"]["ErrorResponse"]["properties"]["error"]
    assert error["enum"] == list(ERROR_CODES)
    for key, operation in operations(document).items():
        for status, response in operation["responses"].items():
            headers = response.get("headers", {})
            assert headers["X-Request-ID"]["schema"]["type"] == "string", (key, status)
            is_error = response.get("content", {}).get("application/json", {}).get("schema") == {
                "$ref": "#/components/schemas/ErrorResponse"
            }
            if is_error and status in ("429", "503"):
                assert headers["Retry-After"]["schema"]["type"] == "integer", (key, status)
            else:
                assert "Retry-After" not in headers, (key, status)
        assert operation["responses"]["422"]["content"]["application/json"]["schema"] == {
            "$ref": "#/components/schemas/ErrorResponse"
        }
    assert "429" in operations(document)[("get", "/api/v1/limits")]["responses"]


@pytest.mark.backends("sqlite")
def test_timestamps_are_date_times(document: dict[str, Any], backend) -> None:
    schemas = document["components"]["schemas"]
    fields = {
        "FeatureMetadata": ("created_at", "updated_at", "expires_at", "event_time"),
        "WriteResponse": ("timestamp",),
        "HealthResponse": ("timestamp",),
        "ReadyResponse": ("timestamp",),
    }
    for model, names in fields.items():
        for name in names:
            schema = schemas[model]["properties"][name]
            options = schema.get("anyOf", [schema])
            assert any(option.get("format") == "date-time" for option in options), (model, name)
            assert all(option["type"] in ("string", "null") for option in options), (model, name)


def test_the_committed_document_is_the_apps() -> None:
    document = published_document()
    assert document["components"]["securitySchemes"], "the published document is the one with API keys on"
    if DOCUMENT_PATH.read_text(encoding="utf-8") != render(document):
        pytest.fail(f"{DOCUMENT_PATH.name} differs from the app's OpenAPI document: run make openapi")


@pytest.mark.backends("sqlite")
def test_every_response_model_has_an_example(document: dict[str, Any], backend) -> None:
    schemas = document["components"]["schemas"]
    referenced = {
        content["schema"]["$ref"].rsplit("/", 1)[1]
        for operation in operations(document).values()
        for response in operation["responses"].values()
        for content in response.get("content", {}).values()
        if "$ref" in content.get("schema", {})
    }
    assert {"FeaturesResponse", "ErrorResponse", "LimitsResponse", "RegistryResponse"} <= referenced
    for name in referenced:
        assert schemas[name].get("examples"), name


@pytest.mark.parametrize(
    "model",
    RESPONSE_MODELS,
    ids=lambda model: model.__name__,
)
def test_response_examples_are_valid_responses(model: type[BaseModel]) -> None:
    extra = model.model_config.get("json_schema_extra")
    assert isinstance(extra, dict), model.__name__
    examples = extra["examples"]
    assert isinstance(examples, list) and examples, model.__name__
    for example in examples:
        model.model_validate(example)


@pytest.mark.backends("sqlite")
def test_entity_types_and_categories_are_the_configured_ones(make_settings, backend) -> None:
    settings = make_settings(allowed_categories=("b_features", "a_features"))
    document = create_app(settings).openapi()
    categories, entity_types = ["a_features", "b_features"], sorted(settings.entity_types)
    read = operations(document)[("get", "/api/v1/get/item/{entity_value}/{category}")]
    parameters = {parameter["name"]: parameter["schema"] for parameter in read["parameters"]}
    assert parameters["category"]["enum"] == categories
    assert parameters["entity_type"]["enum"] == entity_types
    schemas = document["components"]["schemas"]
    assert schemas["GetBatchData"]["properties"]["entity_type"]["enum"] == entity_types
    assert schemas["CategoryFeatures"]["properties"]["category"]["enum"] == categories
    single = schemas["WriteData"]["properties"]["category"]["anyOf"]
    assert [option.get("enum") for option in single] == [categories, None]

from pathlib import Path

import pytest
from pydantic import ValidationError

from core.settings import Settings

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_run_on_the_embedded_store(monkeypatch) -> None:
    settings = Settings(_env_file=None)
    assert settings.store_backend == "sqlite"
    assert settings.sqlite_path == Path("data/features.db")
    assert settings.allowed_categories == (
        "user_features", "credit_features", "transaction_features", "trans_features", "d0_unauth_features",
    )
    assert settings.write_allowed_sources == ("prediction_service",)
    assert settings.entity_types["bright_uid"].table == "user_feature_store"
    assert settings.entity_types["account_id"].key_attribute == "account_pid"


def test_comma_separated_lists(monkeypatch) -> None:
    monkeypatch.setenv("ALLOWED_CATEGORIES", "a_features, b_features ,")
    monkeypatch.setenv("WRITE_ALLOWED_SOURCES", "x,y")
    settings = Settings(_env_file=None)
    assert settings.allowed_categories == ("a_features", "b_features")
    assert settings.write_allowed_sources == ("x", "y")


def test_extra_entity_types(monkeypatch) -> None:
    monkeypatch.setenv("EXTRA_ENTITY_TYPES", '{"merchant_id": {"table": "merchants", "key_attribute": "mid"}}')
    entity = Settings(_env_file=None).entity_types["merchant_id"]
    assert (entity.name, entity.table, entity.key_attribute) == ("merchant_id", "merchants", "mid")


@pytest.mark.parametrize(
    "env",
    [
        {"KAFKA_BROKER_URL": "127.0.0.1:9092"},
        {"CATEGORY_DEFAULT_TTL_SECONDS": '{"not_allowed": 5}'},
        {"CATEGORY_DEFAULT_TTL_SECONDS": '{"user_features": 0}'},
        {"LOG_FORMAT": "xml"},
        {"MAX_BODY_BYTES": "0"},
        {"SQLITE_SYNCHRONOUS": "sometimes"},
        {"DYNAMODB_CREATE_TABLES": "true", "ENVIRONMENT": "production"},
        {"STORE_BACKEND": "dynamodb", "MAX_JSON_DEPTH": "31"},
        {"DYNAMODB_RETRY_MODE": "sometimes"},
        {"DYNAMODB_TABLE_OUTBOX": "x"},
    ],
)
def test_unsafe_or_inconsistent_settings_refused(monkeypatch, env: dict[str, str]) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)


def test_dynamodb_defaults() -> None:
    settings = Settings(_env_file=None, store_backend="dynamodb")
    assert settings.dynamodb_table_outbox == "feature_store_outbox"
    assert settings.dynamodb_create_tables is False
    assert settings.dynamodb_consistent_reads is False
    assert Settings(_env_file=None, dynamodb_create_tables=True, environment="staging").dynamodb_create_tables


def test_env_example_documents_every_setting() -> None:
    documented = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert documented == {name.upper() for name in Settings.model_fields}

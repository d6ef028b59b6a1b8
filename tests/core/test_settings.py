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
        {"OUTBOX_LEASE_SECONDS": "5", "KAFKA_MESSAGE_TIMEOUT_MS": "5000"},
    ],
)
def test_unsafe_or_inconsistent_settings_refused(monkeypatch, env: dict[str, str]) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)


def test_kafka_with_a_schema_registry_is_accepted(monkeypatch) -> None:
    monkeypatch.setenv("KAFKA_BROKER_URL", "127.0.0.1:9092")
    monkeypatch.setenv("SCHEMA_REGISTRY", "mock://local")
    settings = Settings(_env_file=None)
    assert (settings.kafka_broker_url, settings.topic_name) == ("127.0.0.1:9092", "FEATURE_AVAILABILITY_EVENTS")


def test_env_example_documents_every_setting() -> None:
    documented = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert documented == {name.upper() for name in Settings.model_fields}

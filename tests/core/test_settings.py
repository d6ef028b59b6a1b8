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
        {"MAX_JSON_DEPTH": "1000"},
        {"RATE_LIMIT_PER_SECOND": "-1"},
    ],
)
def test_unsafe_or_inconsistent_settings_refused(monkeypatch, env: dict[str, str]) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)


def test_env_example_documents_every_setting() -> None:
    documented = {
        line.split("=", 1)[0]
        for line in (ROOT / ".env.example").read_text().splitlines()
        if line and not line.startswith("#")
    }
    assert documented == {name.upper() for name in Settings.model_fields}


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_staging_and_production_refuse_to_start_without_keys(monkeypatch, environment: str) -> None:
    monkeypatch.setenv("ENVIRONMENT", environment)
    with pytest.raises(ValidationError, match="requires AUTH_ENABLED=true and API_KEYS_FILE"):
        Settings(_env_file=None)
    monkeypatch.setenv("AUTH_ENABLED", "true")
    with pytest.raises(ValidationError, match="requires API_KEYS_FILE"):
        Settings(_env_file=None)
    monkeypatch.setenv("API_KEYS_FILE", "/etc/feature-store/keys.yaml")
    assert Settings(_env_file=None).auth_enabled


def test_auth_is_optional_in_development() -> None:
    assert not Settings(_env_file=None).auth_enabled


def test_app_refuses_to_start_with_an_unusable_keys_file(make_settings, tmp_path: Path) -> None:
    from main import create_app

    (tmp_path / "keys.json").write_text("[]")
    with pytest.raises(ValueError, match="holds no keys"):
        create_app(make_settings(auth_enabled=True, api_keys_file=str(tmp_path / "keys.json")))

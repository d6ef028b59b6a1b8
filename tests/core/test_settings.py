from pathlib import Path

import pytest
from pydantic import ValidationError

from core.exceptions import ConfigurationError
from core.settings import Settings

# Storage-agnostic: the embedded store serves these as well as any backend would.
pytestmark = pytest.mark.backends("sqlite")

ROOT = Path(__file__).resolve().parents[2]


def test_defaults_run_on_the_embedded_store(monkeypatch) -> None:
    settings = Settings(_env_file=None)
    assert settings.store_backend == "sqlite"
    assert settings.sqlite_path == Path("data/features.db")
    assert settings.allowed_categories == (
        "user_features",
        "credit_features",
        "transaction_features",
        "trans_features",
        "d0_unauth_features",
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
        {"CATEGORY_HISTORY": '{"not_allowed": {"versions": 3, "retention_seconds": 60}}'},
        {"CATEGORY_HISTORY": '{"user_features": {"versions": 51, "retention_seconds": 60}}'},
        {"CATEGORY_HISTORY": '{"user_features": {"versions": 3}}'},
        {"FEATURE_REGISTRY_FILE": "registry.yaml", "CATEGORY_HISTORY": "{}"},
        {"LOG_FORMAT": "xml"},
        {"MAX_BODY_BYTES": "0"},
        {"SQLITE_SYNCHRONOUS": "sometimes"},
        {"ENVIRONMENT": "production", "CORS_ORIGINS": "https://app.example.com,*"},
        {"STATSD_TAG_STYLE": "json"},
        {"SLOW_REQUEST_MS": "0"},
        {"DYNAMODB_CREATE_TABLES": "true", "ENVIRONMENT": "production"},
        {"STORE_BACKEND": "dynamodb", "MAX_JSON_DEPTH": "31"},
        {"DYNAMODB_RETRY_MODE": "sometimes"},
        {"DYNAMODB_TABLE_OUTBOX": "x"},
        {"MAX_JSON_DEPTH": "1000"},
        {"RATE_LIMIT_PER_SECOND": "-1"},
        {"OUTBOX_LEASE_SECONDS": "5", "KAFKA_MESSAGE_TIMEOUT_MS": "5000"},
        {"AUTH_JWT_ALGORITHMS": "RS256,HS256"},
        {"AUTH_JWT_ALGORITHMS": "none"},
        {"AUTH_JWT_ISSUER": "https://login.example.com", "AUTH_JWT_GRANTS_FILE": "grants.yaml"},
        {"AUTH_JWT_LEEWAY_SECONDS": "3600"},
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
    staging = {"environment": "staging", "auth_enabled": True, "api_keys_file": "keys.json"}
    assert Settings(_env_file=None, dynamodb_create_tables=True, **staging).dynamodb_create_tables


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


def env_file_keys(path: Path) -> set[str]:
    return {line.split("=", 1)[0] for line in path.read_text().splitlines() if line and not line.startswith("#")}


SAFE_PRODUCTION = {"environment": "production", "auth_enabled": True, "api_keys_file": "/etc/feature-store/keys.json"}


def test_safe_production_settings_are_accepted() -> None:
    assert Settings(_env_file=None, **SAFE_PRODUCTION).environment == "production"


@pytest.mark.parametrize(
    ("unsafe", "named"),
    [
        ({"cors_origins": "https://a.example,*"}, "CORS_ORIGINS='*' is refused"),
        ({"dynamodb_create_tables": True}, "DYNAMODB_CREATE_TABLES=true"),
        ({"kafka_broker_url": "kafka:9092", "schema_registry": "mock://registry"}, "SCHEMA_REGISTRY is mock://"),
    ],
)
def test_production_refuses_each_unsafe_setting_by_name(unsafe: dict, named: str) -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, **(SAFE_PRODUCTION | unsafe))
    message = str(refused.value)
    assert "unsafe settings for ENVIRONMENT=production" in message
    assert named in message
    assert message.count("\n- ") == 1, "only the unsafe setting is named"
    assert Settings(_env_file=None, **(SAFE_PRODUCTION | unsafe | {"environment": "staging"}))


def test_production_names_every_problem_at_once() -> None:
    with pytest.raises(ValidationError) as refused:
        Settings(_env_file=None, **SAFE_PRODUCTION, dynamodb_create_tables=True, cors_origins="*")
    message = str(refused.value)
    for named in ("CORS_ORIGINS", "DYNAMODB_CREATE_TABLES"):
        assert named in message


def test_environment_selects_its_env_file_under_dot_env_and_the_process(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / ".env.staging").write_text(
        "LOG_LEVEL=WARNING\nAPP_NAME=from staging file\nSTATSD_PREFIX=staging\nAUTH_ENABLED=true\nAPI_KEYS_FILE=k.json\n"
    )
    (tmp_path / ".env").write_text("APP_NAME=from dot env\nTOPIC_NAME=from dot env\n")
    monkeypatch.setenv("ENVIRONMENT", "staging")
    monkeypatch.setenv("TOPIC_NAME", "from process")
    settings = Settings()
    assert settings.environment == "staging"
    assert settings.log_level == "WARNING"
    assert settings.app_name == "from dot env"
    assert settings.topic_name == "from process"
    unread = Settings(_env_file=None, auth_enabled=True, api_keys_file="k.json")
    assert unread.log_level == "INFO", "_env_file=None reads no file"


def test_environment_may_be_chosen_in_dot_env(tmp_path, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("ENVIRONMENT", raising=False)
    (tmp_path / ".env").write_text("ENVIRONMENT=staging\n")
    (tmp_path / ".env.staging").write_text("STATSD_PREFIX=staging_prefix\nAUTH_ENABLED=true\nAPI_KEYS_FILE=k.json\n")
    (tmp_path / ".env.development").write_text("STATSD_PREFIX=development_prefix\n")
    assert Settings().statsd_prefix == "staging_prefix"


@pytest.mark.parametrize("environment", ["development", "staging", "production"])
def test_committed_environment_files(environment: str) -> None:
    path = ROOT / f".env.{environment}"
    assert env_file_keys(path) <= {name.upper() for name in Settings.model_fields}
    assert Settings(_env_file=path).environment == environment


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
    with pytest.raises(ConfigurationError, match="^API_KEYS_FILE .* holds no keys"):
        create_app(make_settings(auth_enabled=True, api_keys_file=str(tmp_path / "keys.json")))


def test_statsd_tags_come_from_the_constant_tags_then_datadogs_variables(monkeypatch) -> None:
    monkeypatch.setenv("STATSD_CONSTANT_TAGS", "region:eu-west-1, env:blue ,")
    monkeypatch.setenv("DD_ENV", "production")
    monkeypatch.setenv("DD_SERVICE", "feature-store")
    monkeypatch.setenv("DD_VERSION", "1.4.2")
    settings = Settings(_env_file=None)
    assert settings.statsd_constant_tags == ("region:eu-west-1", "env:blue")
    assert settings.statsd_tags == {
        "region": "eu-west-1",
        "env": "blue",
        "service": "feature-store",
        "version": "1.4.2",
    }
    assert Settings(_env_file=None, statsd_constant_tags=(), dd_env="", dd_service="", dd_version="").statsd_tags == {}


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("STATSD_CONSTANT_TAGS", "region"),
        ("STATSD_CONSTANT_TAGS", "region:"),
        ("STATSD_CONSTANT_TAGS", ":eu"),
        ("STATSD_CONSTANT_TAGS", "region:eu|west"),
        ("STATSD_CONSTANT_TAGS", "re gion:eu"),
        ("STATSD_CONSTANT_TAGS", "region:eu;x=y"),
        ("STATSD_CONSTANT_TAGS", "region:eu=1"),
        ("DD_ENV", "prod #1"),
        ("DD_VERSION", "1,2"),
        ("STATSD_TIMER_TYPE", "histogram"),
    ],
)
def test_tags_that_would_break_a_statsd_line_are_refused(monkeypatch, name: str, value: str) -> None:
    monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError):
        Settings(_env_file=None)

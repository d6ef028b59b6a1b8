"""CORS per environment: any origin in development, only the configured ones in staging and
production, none at all when none is configured there; `*` refuses to start in production."""

import pytest
from pydantic import ValidationError

from core.settings import Settings
from main import create_app

# Storage-agnostic: the embedded store serves these as well as any backend would.
pytestmark = pytest.mark.backends("sqlite")

PREFLIGHT = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}


def preflight(client, origin: str):
    return client.options("/api/v1/items", headers={"Origin": origin, **PREFLIGHT})


def test_development_allows_any_origin(make_client) -> None:
    client = make_client(environment="development")
    response = preflight(client, "http://localhost:3000")
    assert response.status_code == 200
    assert response.headers["access-control-allow-origin"] == "*"
    simple = client.get("/api/v1/health", headers={"Origin": "http://anything.example"})
    assert simple.headers["access-control-allow-origin"] == "*"
    assert "x-request-id" in simple.headers["access-control-expose-headers"].lower()
    assert "etag" in simple.headers["access-control-expose-headers"].lower(), "the registry's ETag, for If-None-Match"


@pytest.mark.parametrize("environment", ["staging", "production"])
def test_only_configured_origins_outside_development(make_client, environment: str, deployed_overrides) -> None:
    client = make_client(
        **deployed_overrides(environment), cors_origins="https://app.example.com,https://ops.example.com"
    )
    allowed = preflight(client, "https://ops.example.com")
    assert allowed.status_code == 200
    assert allowed.headers["access-control-allow-origin"] == "https://ops.example.com"
    refused = preflight(client, "https://evil.example.com")
    assert refused.status_code == 400
    assert "access-control-allow-origin" not in refused.headers
    simple = client.get("/api/v1/health", headers={"Origin": "https://evil.example.com"})
    assert "access-control-allow-origin" not in simple.headers


def test_no_origin_configured_means_no_cors_outside_development(make_client, deployed_overrides) -> None:
    client = make_client(**deployed_overrides("staging"), cors_origins="")
    assert "access-control-allow-origin" not in preflight(client, "https://app.example.com").headers
    assert (
        "access-control-allow-origin"
        not in client.get("/api/v1/health", headers={"Origin": "https://x.example"}).headers
    )


def test_production_with_any_origin_refuses_to_start(make_settings, deployed_overrides) -> None:
    with pytest.raises(ValidationError, match="CORS_ORIGINS='\\*' is refused in production"):
        create_app(make_settings(**deployed_overrides("production"), cors_origins="*"))


def test_staging_may_allow_any_origin_explicitly(deployed_overrides) -> None:
    settings = Settings(_env_file=None, **deployed_overrides("staging"), cors_origins="*")
    assert settings.allowed_origins == ("*",)

"""Identity settings: OIDC/JWT callers beside API keys (issuer, audience, keys, grants), how often the
configuration files are checked for changes, and what the audit trail records."""

from pydantic import Field, field_validator

from core.settings.base import CommaSeparated, EnvironmentSettings

ASYMMETRIC_ALGORITHMS = frozenset(
    {"RS256", "RS384", "RS512", "PS256", "PS384", "PS512", "ES256", "ES384", "ES512", "EdDSA", "Ed25519"}
)
"""Signatures checked with a public key: `none` and the HMAC family (whose key is a shared secret, and which
an attacker could sign with the published public key) are never accepted."""


class IdentitySettings(EnvironmentSettings):
    auth_jwt_issuer: str = ""
    """The identity provider's issuer URL (the `iss` claim); empty: no JWT callers, API keys only."""
    auth_jwt_audience: str = ""
    """The `aud` claim a token must carry for this service; required with AUTH_JWT_ISSUER."""
    auth_jwt_jwks_url: str = ""
    """Where the signing keys are; empty: `jwks_uri` of the issuer's `/.well-known/openid-configuration`."""
    auth_jwt_algorithms: CommaSeparated = ("RS256", "ES256")
    auth_jwt_leeway_seconds: int = Field(30, ge=0, le=300)
    """Clock skew allowed on `exp`, `nbf` and `iat`."""
    auth_jwt_grants_file: str = ""
    """YAML list of `{name, match, scopes, sources, categories}`: what the callers whose claims match may do."""
    auth_jwt_jwks_refresh_seconds: float = Field(300.0, gt=0)
    """How often the signing keys are fetched in the background."""
    auth_jwt_jwks_min_refetch_seconds: float = Field(30.0, ge=0)
    """A token with an unknown `kid` fetches the keys at once, at most this often."""
    auth_jwt_cache_size: int = Field(10_000, gt=0)
    """Verified tokens remembered (by their hash, until they expire), so a caller's next request skips the signature."""
    config_reload_seconds: float = Field(5.0, ge=0)
    """How often the keys, grants and registry files are checked for changes (0: only on SIGHUP)."""
    audit_reads: bool = False
    """Add the entity type and id of every read to its access-log line."""

    @field_validator("auth_jwt_algorithms")
    @classmethod
    def _asymmetric_only(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        refused = sorted(set(value) - ASYMMETRIC_ALGORITHMS)
        if refused:
            raise ValueError(f"only asymmetric algorithms are accepted, not {refused}")
        if not value:
            raise ValueError("name at least one algorithm")
        return value

"""OIDC callers over HTTP: tokens from a local issuer, each refusal's reason, grants, key rotation."""

import base64
import hashlib
import hmac
import json
import logging
import time

import pytest

from devservers import LocalIssuer
from tests.conftest import AppClient
from tests.factories import write_body

pytestmark = pytest.mark.backends("sqlite")

ITEM = "/api/v1/get/item/user-123/user_features"


def bearer(token: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}"}


def b64(value: dict[str, object]) -> str:
    return base64.urlsafe_b64encode(json.dumps(value).encode()).rstrip(b"=").decode()


@pytest.fixture
def client(make_jwt_client) -> AppClient:
    return make_jwt_client()


def refusal(client: AppClient, token: str) -> str:
    response = client.get(ITEM, headers=bearer(token))
    assert response.status_code == 401, response.text
    body = response.json()
    assert body["error"] == "unauthorized"
    assert "Traceback" not in response.text
    reason = body["detail"].partition(":")[0]
    challenge = f'Bearer realm="feature-store", error="invalid_token", error_description="{reason}"'
    assert response.headers["www-authenticate"] == challenge, "RFC 6750's challenge, with the reason code"
    return reason


def test_a_granted_token_reads(client: AppClient, oidc_issuer: LocalIssuer) -> None:
    assert client.get(ITEM, headers=bearer(oidc_issuer.token())).status_code == 404


def test_api_keys_still_work_beside_tokens(client: AppClient, api_keys: dict[str, str]) -> None:
    assert client.get(ITEM, headers={"X-API-Key": api_keys["reader"]}).status_code == 404


def test_a_401_challenges_for_a_bearer_token(client: AppClient) -> None:
    """No credential: the challenge carries no error code (RFC 6750, 3.1); a wrong API key is an invalid token."""
    missing = client.get(ITEM)
    assert (missing.status_code, missing.headers["www-authenticate"]) == (401, 'Bearer realm="feature-store"')
    wrong = client.get(ITEM, headers={"X-API-Key": "fs_not-a-key"})
    assert wrong.status_code == 401
    expected = 'Bearer realm="feature-store", error="invalid_token", error_description="invalid_api_key"'
    assert wrong.headers["www-authenticate"] == expected


@pytest.mark.parametrize(
    ("claims", "reason"),
    [
        ({"exp": int(time.time()) - 3600, "iat": int(time.time()) - 7200, "nbf": None}, "token_expired"),
        ({"nbf": int(time.time()) + 3600}, "not_yet_valid"),
        ({"iss": "https://someone-else.example"}, "wrong_issuer"),
        ({"aud": "another-service"}, "wrong_audience"),
        ({"exp": None}, "missing_claim"),
    ],
)
def test_refused_claims(client: AppClient, oidc_issuer: LocalIssuer, claims: dict, reason: str) -> None:
    assert refusal(client, oidc_issuer.token(**claims)) == reason


def test_clock_skew_within_the_leeway_is_accepted(client: AppClient, oidc_issuer: LocalIssuer) -> None:
    token = oidc_issuer.token(nbf=int(time.time()) + 10, iat=int(time.time()) + 10)
    assert client.get(ITEM, headers=bearer(token)).status_code == 404


def test_unsigned_token_is_refused(client: AppClient, oidc_issuer: LocalIssuer) -> None:
    token = f"{b64({'alg': 'none', 'kid': 'key-1'})}.{b64(oidc_issuer.claims())}."
    assert refusal(client, token) == "algorithm_refused"


def test_hmac_signed_with_the_public_key_is_refused(client: AppClient, oidc_issuer: LocalIssuer) -> None:
    """The classic confusion: the published RSA key used as an HMAC secret (joserfc itself refuses to make one)."""
    signing_input = f"{b64({'alg': 'HS256', 'kid': 'key-1'})}.{b64(oidc_issuer.claims())}"
    mac = hmac.new(oidc_issuer.signing_key.as_pem(private=False), signing_input.encode(), hashlib.sha256).digest()
    forged = signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()
    assert refusal(client, forged) == "algorithm_refused"


def test_token_of_another_key_is_refused(client: AppClient, oidc_issuer: LocalIssuer) -> None:
    stranger = LocalIssuer()
    try:
        assert refusal(client, stranger.token()) == "bad_signature"
        assert refusal(client, stranger.token(header={"kid": "nobody"})) == "unknown_kid"
    finally:
        stranger.stop()


@pytest.mark.parametrize("token", ["a.b.c", "x" * 20 + "." + "y" * 20 + ".", "..", "a" * 20000 + ".b.c"])
def test_malformed_tokens_are_refused(client: AppClient, token: str) -> None:
    assert refusal(client, token) == "malformed"


def test_a_valid_token_without_a_grant_is_forbidden(client: AppClient, oidc_issuer: LocalIssuer) -> None:
    response = client.get(ITEM, headers=bearer(oidc_issuer.token(sub="someone-else")))
    assert response.status_code == 403
    assert "sub:someone-else" in response.json()["detail"]


def test_grants_combine_and_writers_write_as_their_source(client: AppClient, oidc_issuer: LocalIssuer) -> None:
    token = oidc_issuer.token(sub="job-7", groups=["analysts", "feature-writers"], client_id="airflow")
    body = write_body()
    del body["metadata"]["source"]
    assert client.post("/api/v1/items", json=body, headers=bearer(token)).status_code == 200
    assert client.post("/api/v1/warmup", headers=bearer(token)).status_code == 403
    read = client.get(ITEM, headers=bearer(token)).json()
    assert read["features"]["metadata"]["source"] == "pipeline"


def test_grant_matching_several_claims(client: AppClient, oidc_issuer: LocalIssuer) -> None:
    operator = oidc_issuer.token(sub="alice", client_id="ops-console", scope="admin")
    assert client.post("/api/v1/warmup", headers=bearer(operator)).status_code == 200
    not_quite = oidc_issuer.token(sub="alice", client_id="ops-console", scope="read")
    assert client.post("/api/v1/warmup", headers=bearer(not_quite)).status_code == 403


def test_key_rotation_mid_test(make_jwt_client, oidc_issuer: LocalIssuer) -> None:
    client = make_jwt_client(auth_jwt_jwks_min_refetch_seconds=0)
    assert client.get(ITEM, headers=bearer(oidc_issuer.token())).status_code == 404
    fetched = oidc_issuer.jwks_requests
    new_key = oidc_issuer.rotate(keep_old=False)
    assert client.get(ITEM, headers=bearer(oidc_issuer.token(key=new_key))).status_code == 404
    assert oidc_issuer.jwks_requests == fetched + 1


def test_unknown_kids_refetch_at_most_once_per_interval(client: AppClient, oidc_issuer: LocalIssuer) -> None:
    client.get(ITEM, headers=bearer(oidc_issuer.token()))
    fetched = oidc_issuer.jwks_requests
    for number in range(5):
        assert refusal(client, oidc_issuer.token(header={"kid": f"forged-{number}"})) == "unknown_kid"
    assert oidc_issuer.jwks_requests <= fetched + 1


def test_a_verified_token_is_not_verified_again(client: AppClient, oidc_issuer: LocalIssuer, monkeypatch) -> None:
    token = oidc_issuer.token()
    assert client.get(ITEM, headers=bearer(token)).status_code == 404
    monkeypatch.setattr("core.tokens.jwt.decode", lambda *args, **kwargs: pytest.fail("verified twice"))
    assert client.get(ITEM, headers=bearer(token)).status_code == 404


def test_an_outage_keeps_the_cached_keys_and_shows_in_ready(client: AppClient, oidc_issuer: LocalIssuer) -> None:
    assert client.get(ITEM, headers=bearer(oidc_issuer.token())).status_code == 404
    oidc_issuer.available = False
    client.app.state.runtime.tokens.keys.min_refetch_seconds = 0
    assert refusal(client, oidc_issuer.token(header={"kid": "rotated-away"})) == "unknown_kid"
    assert client.get(ITEM, headers=bearer(oidc_issuer.token(jti="another"))).status_code == 404
    ready = client.get("/api/v1/ready")
    assert ready.status_code == 200
    state = ready.json()["checks"]["identity_provider"]
    assert state["ok"] is False and state["keys"] == 1 and "503" in state["error"]


def test_the_access_log_names_the_caller(client: AppClient, oidc_issuer: LocalIssuer, caplog) -> None:
    token = oidc_issuer.token(sub="job-7", groups=["feature-writers"], azp="airflow")
    with caplog.at_level(logging.INFO, logger="feature_store.access"):
        client.get(ITEM, headers=bearer(token))
        client.get(ITEM, headers=bearer(oidc_issuer.token(aud="elsewhere")))
    lines = [record for record in caplog.records if record.name == "feature_store.access"]
    assert lines[0].caller == "sub:job-7 client:airflow"
    assert lines[1].auth_refused == "wrong_audience"
    assert token not in caplog.text


def test_tokens_alone_without_a_keys_file(make_client, oidc_issuer: LocalIssuer, tmp_path) -> None:
    (tmp_path / "only-grants.yaml").write_text("- {name: ranker, match: {sub: ranker}, scopes: [features:read]}")
    client = make_client(
        auth_enabled=True,
        auth_jwt_issuer=oidc_issuer.url,
        auth_jwt_audience=oidc_issuer.audience,
        auth_jwt_grants_file=str(tmp_path / "only-grants.yaml"),
    )
    assert client.get(ITEM, headers=bearer(oidc_issuer.token(sub="ranker"))).status_code == 404
    assert client.get(ITEM, headers={"X-API-Key": "fs_anything"}).status_code == 401
    response = client.get(ITEM, headers=bearer(oidc_issuer.token(sub="ranker")) | {"X-API-Key": "fs_x"})
    assert response.status_code == 401  # X-API-Key comes first, as it always has


def test_published_secrets_and_encryption_keys_never_verify(make_jwt_client, oidc_issuer: LocalIssuer) -> None:
    """An `oct` key in the JWKS would let anyone who reads it sign; an `enc` key is not for signatures."""
    secret = b"published-by-mistake-0123456789ab"
    oidc_issuer.extra_keys = [
        {"kty": "oct", "kid": "shared", "k": base64.urlsafe_b64encode(secret).rstrip(b"=").decode()},
        {**oidc_issuer.rotate().as_dict(private=False), "kid": "for-encryption", "use": "enc"},
    ]
    client = make_jwt_client(auth_jwt_algorithms="RS256,ES256")
    signing_input = f"{b64({'alg': 'RS256', 'kid': 'shared'})}.{b64(oidc_issuer.claims())}"
    mac = hmac.new(secret, signing_input.encode(), hashlib.sha256).digest()
    assert refusal(client, signing_input + "." + base64.urlsafe_b64encode(mac).rstrip(b"=").decode()) == "unknown_kid"
    encryption_key = oidc_issuer.keys[-1]
    token = oidc_issuer.token(key=encryption_key, header={"kid": "for-encryption"})
    assert refusal(client, token) == "unknown_kid"

"""GET /api/v1/access: what the caller may do, for API keys, tokens and with auth off."""

import pytest

from devservers import LocalIssuer
from tests.conftest import AppClient

pytestmark = pytest.mark.backends("sqlite")


def test_without_auth_every_caller_may_do_everything(client: AppClient) -> None:
    response = client.get("/api/v1/access")
    assert response.status_code == 200
    assert response.json() == {
        "auth_enabled": False,
        "kind": "anonymous",
        "name": None,
        "actor": None,
        "scopes": ["admin", "features:read", "features:write"],
        "sources": [],
        "categories": None,
    }


def test_an_api_key_sees_its_own_grants(make_auth_client, api_keys: dict[str, str]) -> None:
    client = make_auth_client()
    writer = client.get("/api/v1/access", headers={"X-API-Key": api_keys["writer"]}).json()
    assert writer == {
        "auth_enabled": True,
        "kind": "api_key",
        "name": "writer",
        "actor": "key:writer",
        "scopes": ["features:read", "features:write"],
        "sources": ["prediction_service", "backfill"],
        "categories": ["credit_features", "user_features"],
    }
    any_writer = client.get("/api/v1/access", headers={"Authorization": f"Bearer {api_keys['any_writer']}"}).json()
    assert (any_writer["scopes"], any_writer["categories"]) == (["features:write"], None)


def test_any_valid_key_may_ask_whatever_its_scopes(make_auth_client, api_keys: dict[str, str]) -> None:
    client = make_auth_client()
    operator = client.get("/api/v1/access", headers={"X-API-Key": api_keys["operator"]})
    assert operator.status_code == 200, "a key without the read scope still learns what it may do"
    assert (operator.json()["scopes"], operator.json()["sources"], operator.json()["categories"]) == (["admin"], [], [])


def test_no_key_or_a_wrong_one_is_401(make_auth_client) -> None:
    client = make_auth_client()
    assert client.get("/api/v1/access").status_code == 401
    assert client.get("/api/v1/access", headers={"X-API-Key": "fs_not-a-key"}).status_code == 401


def test_a_token_sees_the_grants_it_matched(make_jwt_client, oidc_issuer: LocalIssuer) -> None:
    client = make_jwt_client()
    token = oidc_issuer.token(groups=["feature-writers"])
    response = client.get("/api/v1/access", headers={"Authorization": f"Bearer {token}"})
    assert response.status_code == 200
    access = response.json()
    assert (access["kind"], access["name"]) == ("jwt", "ranker,pipelines")
    assert access["actor"].startswith("sub:system:serviceaccount:ml:ranker")
    assert access["scopes"] == ["features:read", "features:write"]
    assert (access["sources"], access["categories"]) == (["pipeline"], ["user_features"])


def test_a_token_without_any_grant_is_403(make_jwt_client, oidc_issuer: LocalIssuer) -> None:
    client = make_jwt_client()
    token = oidc_issuer.token(sub="someone-else")
    assert client.get("/api/v1/access", headers={"Authorization": f"Bearer {token}"}).status_code == 403

"""The token verifier's own rules: secure URLs, the bounded cache, actors."""

import pytest

from core.grants import GrantEntry, Grants
from core.tokens import SigningKeys, TokenVerifier, actor_of, looks_like_jwt, require_secure_url


@pytest.mark.parametrize("url", ["https://login.example.com", "http://127.0.0.1:8080", "http://localhost/x"])
def test_secure_urls(url: str) -> None:
    require_secure_url(url, "AUTH_JWT_ISSUER")


@pytest.mark.parametrize("url", ["http://login.example.com", "ftp://x", "https://", "login.example.com"])
def test_insecure_urls_are_refused(url: str) -> None:
    with pytest.raises(ValueError, match="AUTH_JWT_ISSUER"):
        require_secure_url(url, "AUTH_JWT_ISSUER")


def test_api_keys_never_look_like_tokens() -> None:
    assert not looks_like_jwt("fs_abc-def_ghi")
    assert not looks_like_jwt(None)
    assert looks_like_jwt("a.b.c")


@pytest.mark.parametrize(
    ("claims", "actor"),
    [
        ({"sub": "alice"}, "sub:alice"),
        ({"sub": "job", "client_id": "airflow"}, "sub:job client:airflow"),
        ({"sub": "svc", "azp": "svc"}, "sub:svc"),
        ({"sub": "evil\nINFO forged line", "client_id": "x" * 300}, "sub:evil?INFO forged line client:" + "x" * 256),
    ],
)
def test_actor_of(claims: dict, actor: str) -> None:
    assert actor_of(claims) == actor


def test_the_cache_is_bounded_and_forgets_expired_tokens() -> None:
    now = [1000.0]
    grants = Grants([GrantEntry(name="a", match={"sub": "x"}, scopes=["features:read"])], [])
    keys = SigningKeys("https://issuer.example", "", 300, 30)
    verifier = TokenVerifier(keys, grants, "aud", ("RS256",), 0, cache_size=3, clock=lambda: now[0])
    for number in range(3):
        verifier._remember(str(number), None, 1000.0 + number, "a")
    now[0] = 1001.5  # "0" and "1" expired
    verifier._remember("3", None, 2000.0, "a")
    assert set(verifier._verified) == {"2", "3"}
    verifier._remember("4", None, 2000.0, "a")
    verifier._remember("5", None, 2000.0, "a")
    assert len(verifier._verified) == 3 and "5" in verifier._verified

"""OIDC callers: JWT bearer tokens signed by the identity provider, checked against its published keys.

The signing keys (JWKS) are fetched in the background and cached. A token naming an unknown `kid` fetches
them at once (a key rotation), at most once every `AUTH_JWT_JWKS_MIN_REFETCH_SECONDS`; nothing else on a
request's path goes to the network. While the provider is unreachable the cached keys keep serving.

A verified token is remembered by its SHA-256 until it expires (a bounded table), so a caller's later
requests cost one hash and one lookup, as an API key does. Every JOSE operation is joserfc's.
"""

import asyncio
import hashlib
import ipaddress
import json
import logging
import time
from collections.abc import Callable, Iterable, Mapping
from typing import Any, TypeGuard
from urllib.parse import urlsplit

import aiohttp
from joserfc import jws, jwt
from joserfc.errors import ExpiredTokenError, InvalidClaimError, JoseError, MissingClaimError
from joserfc.jwk import KeySet
from joserfc.jwt import JWTClaimsRegistry

from core.auth import Principal
from core.exceptions import Forbidden, Unauthorized
from core.grants import Grants
from core.metrics import metrics
from core.settings import Settings

logger = logging.getLogger("feature_store.auth")

MAX_TOKEN_CHARS = 16_384
FETCH_TIMEOUT_SECONDS = 5.0
MAX_DOCUMENT_BYTES = 1_048_576
SIGNING_KEY_TYPES = frozenset({"RSA", "EC", "OKP"})


class InvalidToken(Unauthorized):
    """A token that proves nothing; `reason` is a stable code for clients and logs (never the token)."""

    def __init__(self, reason: str, message: str) -> None:
        super().__init__(f"{reason}: {message}")
        self.reason = reason


def looks_like_jwt(credential: str | None) -> TypeGuard[str]:
    """Three base64url parts: an API key (`fs_` and base64url, no dots) never does."""
    return credential is not None and credential.count(".") == 2


def require_secure_url(url: str, setting: str) -> None:
    """https, or http to this machine only (a test's or a sidecar's issuer): keys over plain HTTP are forgeable."""
    parts = urlsplit(url)
    if parts.scheme == "https" and parts.hostname:
        return
    if parts.scheme == "http" and parts.hostname:
        try:
            if parts.hostname == "localhost" or ipaddress.ip_address(parts.hostname).is_loopback:
                return
        except ValueError:
            pass
    raise ValueError(f"{setting} must be an https URL (http only to localhost): {url!r}")


class SigningKeys:
    """The provider's public keys by `kid`: refreshed in the background, on an unknown `kid` (rate-limited)."""

    def __init__(
        self,
        issuer: str,
        jwks_url: str,
        refresh_seconds: float,
        min_refetch_seconds: float,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        require_secure_url(issuer, "AUTH_JWT_ISSUER")
        if jwks_url:
            require_secure_url(jwks_url, "AUTH_JWT_JWKS_URL")
        self.issuer = issuer
        self.jwks_url = jwks_url
        self.refresh_seconds = refresh_seconds
        self.min_refetch_seconds = min_refetch_seconds
        self.clock = clock
        self._keys: dict[str, Any] = {}
        self._last_attempt = float("-inf")
        self._fetched_at: float | None = None
        self._error: str | None = None
        self._lock = asyncio.Lock()
        self._task: asyncio.Task[None] | None = None

    async def _get_json(self, session: aiohttp.ClientSession, url: str) -> Any:
        async with session.get(url, allow_redirects=False) as response:
            if response.status != 200:
                raise ValueError(f"{url} answered {response.status}")
            body = await response.content.read(MAX_DOCUMENT_BYTES + 1)
            if len(body) > MAX_DOCUMENT_BYTES:
                raise ValueError(f"{url} sent more than {MAX_DOCUMENT_BYTES} bytes")
            return json.loads(body)

    async def _fetch(self) -> dict[str, Any]:
        timeout = aiohttp.ClientTimeout(total=FETCH_TIMEOUT_SECONDS)
        async with aiohttp.ClientSession(timeout=timeout) as session:
            url = self.jwks_url
            if not url:
                discovery = await self._get_json(session, self.issuer.rstrip("/") + "/.well-known/openid-configuration")
                if discovery.get("issuer") != self.issuer:
                    raise ValueError("the discovery document names another issuer")
                url = str(discovery.get("jwks_uri", ""))
                require_secure_url(url, "the discovery document's jwks_uri")
            key_set = KeySet.import_key_set(await self._get_json(session, url))
        # Public signing keys only: a shared secret (`oct`) or an encryption key never verifies a token.
        return {
            key.kid: key
            for key in key_set.keys
            if key.kid and key.key_type in SIGNING_KEY_TYPES and key.get("use", "sig") == "sig"
        }

    async def refresh(self) -> None:
        """Fetch the keys now; a failure keeps the cached ones and is reported by `state`."""
        async with self._lock:
            self._last_attempt = self.clock()
            try:
                keys = await self._fetch()
            except (aiohttp.ClientError, TimeoutError, ValueError, TypeError, KeyError, JoseError) as exc:
                self._error = f"{type(exc).__name__}: {exc}"[:300]
                metrics.incr("auth.jwks_refresh_failed")
                logger.warning("signing keys not refreshed; the cached ones stay in use", extra={"error": self._error})
                return
            if keys.keys() != self._keys.keys():
                logger.info("signing keys loaded", extra={"kids": sorted(keys)})
            self._keys, self._fetched_at, self._error = keys, self.clock(), None

    async def key_for(self, kid: str) -> Any | None:
        """The key `kid` names; an unknown one refreshes the keys first unless they were fetched just now."""
        key = self._keys.get(kid)
        if key is None:
            if self._lock.locked():  # a fetch is under way (the first, at start): its keys are the answer
                async with self._lock:
                    pass
            elif self.clock() - self._last_attempt >= self.min_refetch_seconds:
                await self.refresh()
            key = self._keys.get(kid)
        return key

    def start(self) -> None:
        self._task = asyncio.get_running_loop().create_task(self._refresh_forever(), name="jwks-refresh")

    async def _refresh_forever(self) -> None:
        while True:
            try:
                await self.refresh()
            except Exception:  # the loop must outlive any surprise: the cached keys keep serving
                logger.exception("signing keys refresh failed")
            await asyncio.sleep(self.refresh_seconds)

    async def stop(self) -> None:
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    def state(self) -> dict[str, Any]:
        """For `/ready`: an outage shows here, and never makes the service unready (cached keys serve)."""
        state: dict[str, Any] = {"ok": self._error is None and self._fetched_at is not None, "keys": len(self._keys)}
        if self._fetched_at is not None:
            state["last_refresh_age_s"] = round(self.clock() - self._fetched_at, 3)
        if self._error is not None:
            state["error"] = self._error
        return state


MAX_ACTOR_CHARS = 256


def _printable(value: object) -> str:
    """A claim as logs and stored metadata may carry it: printable, and bounded."""
    return "".join(char if char.isprintable() else "?" for char in str(value)[:MAX_ACTOR_CHARS])


def actor_of(claims: Mapping[str, Any]) -> str:
    """`sub:<subject>`, with ` client:<id>` when the token names a client other than its subject."""
    subject = _printable(claims.get("sub", ""))
    client = claims.get("client_id") or claims.get("azp")
    actor = f"sub:{subject}"
    if client and _printable(client) != subject:
        actor += f" client:{_printable(client)}"
    return actor


class TokenVerifier:
    """A bearer JWT to its Principal: signature, issuer, audience and times checked, then the grants applied."""

    def __init__(
        self,
        keys: SigningKeys,
        grants: Grants,
        audience: str,
        algorithms: tuple[str, ...],
        leeway_seconds: int,
        cache_size: int,
        clock: Callable[[], float] = time.time,
    ) -> None:
        self.keys = keys
        self._grants = grants
        self.audience = audience
        self.algorithms = frozenset(algorithms)
        self.leeway_seconds = leeway_seconds
        self.cache_size = cache_size
        self.clock = clock
        self._verified: dict[str, tuple[Principal | None, float, str]] = {}
        """sha256(token) -> (its principal, or None with no grant; its expiry; its actor)."""

    @property
    def grants(self) -> Grants:
        return self._grants

    @grants.setter
    def grants(self, grants: Grants) -> None:
        """New grants apply to every token from now on, those already verified too."""
        self._grants = grants
        self._verified = {}

    async def principal(self, token: str) -> Principal:
        digest = hashlib.sha256(token.encode("utf-8", "surrogatepass")).digest().hex()
        cached = self._verified.get(digest)
        if cached is not None and cached[1] > self.clock():
            principal, _, actor = cached
        else:
            claims = await self._verify(token)
            actor = actor_of(claims)
            principal = self._grants.principal(claims, actor)
            self._remember(digest, principal, float(claims["exp"]), actor)
        if principal is None:
            raise Forbidden(f"the token of {actor} matches no grant")
        return principal

    def _remember(self, digest: str, principal: Principal | None, expires: float, actor: str) -> None:
        if len(self._verified) >= self.cache_size:
            now = self.clock()
            self._verified = {key: value for key, value in self._verified.items() if value[1] > now}
            while len(self._verified) >= self.cache_size:
                del self._verified[next(iter(self._verified))]
        self._verified[digest] = (principal, expires, actor)

    async def _verify(self, token: str) -> dict[str, Any]:
        if len(token) > MAX_TOKEN_CHARS:
            raise InvalidToken("malformed", "the token is too long")
        try:
            header = jws.extract_compact(token.encode("ascii")).protected
        except (JoseError, ValueError, TypeError, UnicodeError):
            raise InvalidToken("malformed", "the token is not a signed JWT") from None
        algorithm = header.get("alg")
        if algorithm not in self.algorithms:
            raise InvalidToken("algorithm_refused", f"tokens signed with {algorithm!r} are not accepted")
        kid = header.get("kid")
        key = await self.keys.key_for(kid) if isinstance(kid, str) else None
        if key is None:
            raise InvalidToken("unknown_kid", "the token's signing key is not one of the issuer's")
        try:
            claims = jwt.decode(token, key, algorithms=[algorithm]).claims
        except JoseError:
            raise InvalidToken("bad_signature", "the token's signature does not verify") from None
        self._check_claims(claims)
        return claims

    def _check_claims(self, claims: dict[str, Any]) -> None:
        registry = JWTClaimsRegistry(
            now=int(self.clock()),
            leeway=self.leeway_seconds,
            iss={"essential": True, "value": self.keys.issuer},
            aud={"essential": True, "value": self.audience},
            exp={"essential": True},
            sub={"essential": True},
        )
        try:
            registry.validate(claims)
        except ExpiredTokenError:
            raise InvalidToken("token_expired", "the token has expired") from None
        except MissingClaimError as exc:
            raise InvalidToken("missing_claim", f"the token lacks {exc.claim}") from None
        except InvalidClaimError as exc:
            reason = {"iss": "wrong_issuer", "aud": "wrong_audience", "nbf": "not_yet_valid", "iat": "not_yet_valid"}
            raise InvalidToken(
                reason.get(exc.claim, "invalid_claim"), f"the token's {exc.claim} is not accepted"
            ) from None


def token_verifier(settings: Settings, allowed_categories: Iterable[str]) -> TokenVerifier:
    """The verifier AUTH_JWT_* describe; its keys are fetched once `start` runs on the event loop."""
    keys = SigningKeys(
        settings.auth_jwt_issuer,
        settings.auth_jwt_jwks_url,
        settings.auth_jwt_jwks_refresh_seconds,
        settings.auth_jwt_jwks_min_refetch_seconds,
    )
    return TokenVerifier(
        keys,
        Grants.load(settings.auth_jwt_grants_file, allowed_categories),
        settings.auth_jwt_audience,
        settings.auth_jwt_algorithms,
        settings.auth_jwt_leeway_seconds,
        settings.auth_jwt_cache_size,
    )

"""An OIDC issuer of the tests' own: an RSA signing key made on the spot, its discovery document and its
JWKS served over HTTP on 127.0.0.1, tokens signed with joserfc, and key rotation on demand."""

import json
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from joserfc import jwt
from joserfc.jwk import RSAKey


class LocalIssuer:
    """`url` is the issuer; `/.well-known/openid-configuration` and `/jwks` are served while it runs."""

    def __init__(self, audience: str = "feature-store") -> None:
        self.audience = audience
        self.keys: list[RSAKey] = [self._new_key(1)]
        self.jwks_requests = 0
        self.extra_keys: list[dict[str, Any]] = []
        """Published beside the signing keys as they are (to test what the service must ignore)."""
        self.available = True
        """False: every request is answered 503, as an identity provider's outage would be."""
        issuer = self

        class Handler(BaseHTTPRequestHandler):
            def do_GET(self) -> None:  # noqa: N802 (the handler's protocol)
                if not issuer.available:
                    self.send_error(503)
                    return
                body: dict[str, Any]
                if self.path == "/.well-known/openid-configuration":
                    body = {"issuer": issuer.url, "jwks_uri": issuer.url + "/jwks"}
                elif self.path == "/jwks":
                    issuer.jwks_requests += 1
                    body = {"keys": [key.as_dict(private=False) for key in issuer.keys] + issuer.extra_keys}
                else:
                    self.send_error(404)
                    return
                payload = json.dumps(body).encode()
                self.send_response(200)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(payload)))
                self.end_headers()
                self.wfile.write(payload)

            def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 (the handler's protocol)
                pass

        self._server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self._server.server_address[1]}"
        self._thread = threading.Thread(target=self._server.serve_forever, name="oidc-issuer", daemon=True)
        self._thread.start()

    @staticmethod
    def _new_key(number: int) -> RSAKey:
        return RSAKey.generate_key(2048, parameters={"kid": f"key-{number}", "use": "sig", "alg": "RS256"})

    @property
    def signing_key(self) -> RSAKey:
        return self.keys[-1]

    def rotate(self, keep_old: bool = True) -> RSAKey:
        """Publish a new signing key (and keep the previous one published, as providers do, unless told not to)."""
        key = self._new_key(len(self.keys) + 1)
        self.keys = [*self.keys, key] if keep_old else [key]
        return key

    def claims(self, **overrides: Any) -> dict[str, Any]:
        now = int(time.time())
        claims: dict[str, Any] = {"iss": self.url, "aud": self.audience, "sub": "system:serviceaccount:ml:ranker"}
        claims |= {"iat": now, "nbf": now, "exp": now + 600}
        return {name: value for name, value in (claims | overrides).items() if value is not None}

    def token(self, key: RSAKey | None = None, header: dict[str, Any] | None = None, **claims: Any) -> str:
        """A token signed with the current key (or `key`); `claims` override the defaults (None drops one)."""
        key = key or self.signing_key
        return jwt.encode({"alg": "RS256", "kid": key.kid, **(header or {})}, self.claims(**claims), key)

    def stop(self) -> None:
        self._server.shutdown()
        self._server.server_close()

"""Bearer access tokens: verified here (signature, issuer, audience, expiry) against identity's
JWKS, cached in the process and refreshed when an unknown `kid` shows up (key rotation)."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Any

import eventlet.semaphore
from joserfc.jwk import KeySet
from joserfc.jws import extract_compact
from nameko.extensions import DependencyProvider

from services.common.context import Caller
from services.common.errors import Unauthenticated
from services.identity.keys import TokenInvalid, verify

JWKS_REFRESH_MIN_SECONDS = 30.0


class InvalidAccessToken(Unauthenticated):
    code = "INVALID_TOKEN"
    default_message = "Jeton d'accès absent, invalide ou expiré."


def bearer_token(authorization: str | None) -> str:
    if not authorization:
        raise Unauthenticated()
    scheme, _, token = authorization.partition(" ")
    if scheme.lower() != "bearer" or not token.strip() or len(token) > 4096:
        raise InvalidAccessToken()
    return token.strip()


def token_kid(token: str) -> str | None:
    try:
        return extract_compact(token.encode("ascii")).protected.get("kid")
    except Exception:  # noqa: BLE001 - any malformed token is simply invalid
        return None


class JwksCache:
    def __init__(self) -> None:
        self.key_set = KeySet([])
        self.kids: set[str] = set()
        self.fetched_at = 0.0
        self._fetching = eventlet.semaphore.Semaphore(1)

    def ensure(self, kid: str | None, fetch: Callable[[], dict[str, Any]]) -> None:
        if kid in self.kids:
            return
        with self._fetching:  # one fetch at a time: a burst of first requests waits for it
            if kid in self.kids:
                return
            if time.monotonic() - self.fetched_at < JWKS_REFRESH_MIN_SECONDS and self.kids:
                return  # an unknown kid does not let callers hammer identity
            jwks = fetch()
            self.key_set = KeySet.import_key_set(jwks)  # parsed once, not per request
            self.kids = {key.get("kid") for key in jwks.get("keys", [])}
            self.fetched_at = time.monotonic()


class TokenVerifier:
    def __init__(self, cache: JwksCache, issuer: str, audience: str, client_ip: str | None) -> None:
        self._cache = cache
        self._issuer = issuer
        self._audience = audience
        self._client_ip = client_ip

    def caller(self, authorization: str | None, fetch_jwks: Callable[[], dict[str, Any]]) -> Caller:
        token = bearer_token(authorization)
        self._cache.ensure(token_kid(token), fetch_jwks)
        try:
            claims = verify(token, self._cache.key_set, self._issuer, self._audience)
        except TokenInvalid:
            raise InvalidAccessToken() from None
        return Caller(
            account_id=claims["sub"],
            roles=tuple(claims.get("roles") or ()),
            session_id=claims.get("sid"),
            client_ip=self._client_ip,
        )


class Authenticator(DependencyProvider):
    """Gives each request a TokenVerifier sharing the process-wide JWKS cache."""

    def setup(self) -> None:
        config = self.container.config
        public_url = str(config.get("PUBLIC_URL") or "http://localhost:8000").rstrip("/")
        self.issuer = str(config.get("OIDC_ISSUER") or public_url).rstrip("/")
        self.audience = "portal-api"
        self.cache = JwksCache()

    def get_dependency(self, worker_ctx: Any) -> Callable[[str | None], TokenVerifier]:
        def for_client(client_ip: str | None) -> TokenVerifier:
            return TokenVerifier(self.cache, self.issuer, self.audience, client_ip)

        return for_client

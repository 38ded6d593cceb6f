"""The site as an OpenID Connect client of identity's provider: authorization code flow with PKCE
(S256), `state` against CSRF on the callback, `nonce` bound into the id token, and the id token
checked here (signature against the provider's JWKS, iss, aud, exp, nonce) before anyone is signed in.

Plain functions, no HTTP: the service fetches discovery, JWKS and tokens (see provider.py)."""

from __future__ import annotations

import base64
import hashlib
import secrets
import time
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet

ALGORITHMS = ["RS256"]
SCOPE = "openid email"
LEEWAY_SECONDS = 30


class IdTokenInvalid(Exception):
    """The id token must not sign anyone in; the reason is for the log (never personal data)."""


@dataclass(frozen=True)
class LoginRequest:
    """What the site remembers between sending the browser to the provider and its return."""

    state: str
    nonce: str
    verifier: str
    next_path: str = "/"

    @property
    def challenge(self) -> str:
        return s256_challenge(self.verifier)

    def as_dict(self) -> dict[str, str]:
        return {"state": self.state, "nonce": self.nonce, "verifier": self.verifier, "next": self.next_path}

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> LoginRequest:
        return cls(
            state=str(data["state"]),
            nonce=str(data["nonce"]),
            verifier=str(data["verifier"]),
            next_path=safe_next(data.get("next")),
        )


def s256_challenge(verifier: str) -> str:
    digest = hashlib.sha256(verifier.encode("ascii")).digest()
    return base64.urlsafe_b64encode(digest).rstrip(b"=").decode("ascii")


def new_login_request(next_path: object = "/") -> LoginRequest:
    # 64 random bytes: an 86-character verifier, within RFC 7636's 43..128
    return LoginRequest(
        state=secrets.token_urlsafe(24),
        nonce=secrets.token_urlsafe(24),
        verifier=secrets.token_urlsafe(64),
        next_path=safe_next(next_path),
    )


def safe_next(value: object) -> str:
    """A path on this site to return to after sign-in; anything else (another host, `//evil`,
    a scheme, control characters) becomes the home page, so the callback is no open redirect."""
    text = value if isinstance(value, str) else ""
    if not text.startswith("/") or text.startswith("//") or "\\" in text or len(text) > 500:
        return "/"
    if any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text):
        return "/"
    return text


def authorization_url(endpoint: str, client_id: str, redirect_uri: str, login: LoginRequest) -> str:
    query = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": SCOPE,
        "state": login.state,
        "nonce": login.nonce,
        "code_challenge": login.challenge,
        "code_challenge_method": "S256",
        "ui_locales": "fr",
    }
    return endpoint + "?" + urlencode(query)


def token_request(code: str, login: LoginRequest, client_id: str, redirect_uri: str) -> dict[str, str]:
    """The form posted to the token endpoint (a confidential client adds HTTP Basic auth)."""
    return {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": client_id,
        "code_verifier": login.verifier,
    }


def logout_url(endpoint: str, id_token: str | None, post_logout_redirect_uri: str, client_id: str) -> str:
    query = {"post_logout_redirect_uri": post_logout_redirect_uri, "client_id": client_id, "state": "out"}
    if id_token:
        query["id_token_hint"] = id_token
    return endpoint + "?" + urlencode(query)


def check_id_token(
    id_token: object,
    jwks: dict[str, Any] | KeySet,
    issuer: str,
    client_id: str,
    nonce: str,
    now: float | None = None,
) -> dict[str, Any]:
    """The id token's claims if it is genuine and meant for this login; IdTokenInvalid otherwise."""
    if not isinstance(id_token, str) or not id_token or len(id_token) > 8000:
        raise IdTokenInvalid("missing id_token")
    key_set = jwks if isinstance(jwks, KeySet) else KeySet.import_key_set(jwks)
    try:
        decoded = jwt.decode(id_token, key_set, algorithms=ALGORITHMS)
    except (JoseError, ValueError) as exc:
        raise IdTokenInvalid(f"bad signature or format: {type(exc).__name__}") from None
    claims = dict(decoded.claims)
    registry = jwt.JWTClaimsRegistry(
        now=int(time.time() if now is None else now),
        leeway=LEEWAY_SECONDS,
        iss={"essential": True, "value": issuer},
        sub={"essential": True},
        exp={"essential": True},
        iat={"essential": True},
    )
    try:
        registry.validate(claims)
    except JoseError as exc:
        raise IdTokenInvalid(f"claims refused: {type(exc).__name__}") from None
    audience = claims.get("aud")
    audiences = audience if isinstance(audience, list) else [audience]
    if client_id not in audiences:
        raise IdTokenInvalid("wrong audience")
    if len(audiences) > 1 and claims.get("azp") != client_id:
        raise IdTokenInvalid("several audiences without azp for this client")
    if not isinstance(claims.get("nonce"), str) or not secrets.compare_digest(
        claims["nonce"].encode(), nonce.encode()
    ):
        raise IdTokenInvalid("nonce mismatch")
    return claims

"""The site's sessions live in cookies that the browser cannot read or forge: JSON encrypted and
authenticated with Fernet (AES-CBC + HMAC-SHA256, with a timestamp that bounds its age), under a key
derived from SESSION_SECRET. Two cookies, two keys (one per purpose), so that neither can stand in
for the other: the signed-in session (tokens, HttpOnly, SameSite=Lax, Secure on https) and the
short-lived pending login (state, nonce, PKCE verifier) that only /auth reads."""

from __future__ import annotations

import base64
import json
import secrets
import time
from dataclasses import dataclass
from typing import Any

from cryptography.fernet import Fernet, InvalidToken
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.kdf.hkdf import HKDF

SESSION_COOKIE = "pf_invoices"
LOGIN_COOKIE = "pf_invoices_login"
LOGIN_MAX_AGE = 600  # a sign-in at the provider has ten minutes to come back
MAX_COOKIE_CHARS = 4000  # browsers drop larger cookies silently: refuse to write one


def derive_key(secret: str, purpose: str) -> bytes:
    key = HKDF(algorithm=hashes.SHA256(), length=32, salt=None, info=purpose.encode()).derive(secret.encode())
    return base64.urlsafe_b64encode(key)


class CookieBox:
    """Seal and open one kind of cookie value."""

    def __init__(self, secret: str, purpose: str, max_age: int) -> None:
        self._fernet = Fernet(derive_key(secret, purpose))
        self.max_age = max_age

    def seal(self, data: dict[str, Any], now: float | None = None) -> str:
        raw = json.dumps(data, separators=(",", ":")).encode()
        when = int(time.time() if now is None else now)
        value = self._fernet.encrypt_at_time(raw, when).decode("ascii")
        if len(value) > MAX_COOKIE_CHARS:
            raise ValueError("session too large for a cookie")
        return value

    def open(self, value: str | None, now: float | None = None) -> dict[str, Any] | None:
        """The data, or None when the value is missing, tampered with, sealed with another key or
        older than max_age."""
        if not value or len(value) > MAX_COOKIE_CHARS:
            return None
        when = int(time.time() if now is None else now)
        try:
            raw = self._fernet.decrypt_at_time(value.encode("ascii"), self.max_age, when)
            data = json.loads(raw)
        except (InvalidToken, UnicodeError, ValueError):
            return None
        return data if isinstance(data, dict) else None


@dataclass(frozen=True)
class SignedIn:
    """A signed-in parent: the provider's tokens and what the site needs to use them."""

    access_token: str
    access_expires_at: int
    id_token: str
    subject: str
    email: str
    csrf: str

    def access_expired(self, now: float | None = None, margin: int = 15) -> bool:
        return (time.time() if now is None else now) + margin >= self.access_expires_at

    def as_dict(self) -> dict[str, Any]:
        return {
            "at": self.access_token,
            "ate": self.access_expires_at,
            "it": self.id_token,
            "sub": self.subject,
            "email": self.email,
            "csrf": self.csrf,
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any] | None) -> SignedIn | None:
        try:
            return cls(
                access_token=str(data["at"]),
                access_expires_at=int(data["ate"]),
                id_token=str(data["it"]),
                subject=str(data["sub"]),
                email=str(data.get("email") or ""),
                csrf=str(data["csrf"]),
            )
        except (KeyError, TypeError, ValueError):
            return None

    @classmethod
    def start(cls, tokens: dict[str, Any], claims: dict[str, Any], now: float | None = None) -> SignedIn:
        expires_in = tokens.get("expires_in")
        lifetime = int(expires_in) if isinstance(expires_in, int) and expires_in > 0 else 300
        return cls(
            access_token=str(tokens["access_token"]),
            access_expires_at=int(time.time() if now is None else now) + lifetime,
            id_token=str(tokens["id_token"]),
            subject=str(claims["sub"]),
            email=str(claims.get("email") or ""),
            csrf=secrets.token_urlsafe(24),
        )


def csrf_matches(expected: str, submitted: object) -> bool:
    return (
        isinstance(submitted, str)
        and bool(submitted)
        and secrets.compare_digest(expected.encode(), submitted.encode())
    )

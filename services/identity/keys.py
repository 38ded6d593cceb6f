"""Signing keys (RS256, each with a `kid`) and JWT issue/verify. Keys live in identity's database so
that every instance signs with the same key; retired keys stay in the JWKS until tokens signed with
them have expired."""

from __future__ import annotations

import datetime as dt
import secrets
from typing import Any

from joserfc import jwt
from joserfc.errors import JoseError
from joserfc.jwk import KeySet, RSAKey
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common import clock
from services.identity.models import SigningKey

ALGORITHM = "RS256"
KEY_BITS = 2048


def ensure_signing_key(session: Session) -> SigningKey:
    """The newest active key; one is created on first use."""
    key = session.scalars(
        select(SigningKey).where(SigningKey.retired_at.is_(None)).order_by(SigningKey.created_at.desc())
    ).first()
    if key is None:
        kid = secrets.token_hex(8)
        private = RSAKey.generate_key(KEY_BITS, parameters={"kid": kid}, private=True)
        key = SigningKey(kid=kid, private_pem=private.as_pem(private=True).decode(), created_at=clock.now())
        session.add(key)
        session.flush()
    return key


_parsed: dict[str, RSAKey] = {}


def private_key(row: SigningKey) -> RSAKey:
    """The parsed key, cached by kid: loading a PEM validates the RSA key, which costs
    milliseconds, on every signature and JWKS request otherwise (a kid's PEM never changes)."""
    key = _parsed.get(row.kid)
    if key is None:
        key = RSAKey.import_key(row.private_pem, parameters={"kid": row.kid, "alg": ALGORITHM, "use": "sig"})
        _parsed[row.kid] = key
    return key


def public_jwks(session: Session, retired_grace: dt.timedelta) -> dict[str, Any]:
    """JWKS of the active keys and of those retired less than `retired_grace` ago."""
    since = clock.now() - retired_grace
    rows = session.scalars(
        select(SigningKey).where((SigningKey.retired_at.is_(None)) | (SigningKey.retired_at > since))
    ).all()
    return {"keys": [private_key(row).as_dict(private=False) for row in rows]}


def sign(row: SigningKey, claims: dict[str, Any], typ: str = "JWT") -> str:
    return jwt.encode({"alg": ALGORITHM, "kid": row.kid, "typ": typ}, claims, private_key(row))


class TokenInvalid(Exception):
    pass


def verify(token: str, jwks: dict[str, Any] | KeySet, issuer: str, audience: str) -> dict[str, Any]:
    """Claims of a valid, unexpired token signed by one of `jwks` (a JWKS dict, or a KeySet already
    imported, which hot paths cache); raises TokenInvalid otherwise."""
    key_set = jwks if isinstance(jwks, KeySet) else KeySet.import_key_set(jwks)
    try:
        decoded = jwt.decode(token, key_set, algorithms=[ALGORITHM])
        registry = jwt.JWTClaimsRegistry(
            now=int(clock.now().timestamp()),
            leeway=30,
            iss={"essential": True, "value": issuer},
            aud={"essential": True, "value": audience},
            sub={"essential": True},
            exp={"essential": True},
        )
        registry.validate(decoded.claims)
    except (JoseError, ValueError, TypeError) as exc:
        raise TokenInvalid(str(exc)) from exc
    return decoded.claims

"""Opaque tokens sent to people or clients: random, and stored only as a SHA-256 digest (they carry
256 bits of entropy, so a fast hash is enough)."""

from __future__ import annotations

import hashlib
import secrets


def new_token() -> str:
    return secrets.token_urlsafe(32)


def token_digest(token: str) -> str:
    return hashlib.sha256(token.encode("utf-8")).hexdigest()

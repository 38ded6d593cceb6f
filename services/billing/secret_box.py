"""The communes' provider secrets at rest: Fernet (AES-128-CBC + HMAC-SHA256) under a key derived
from PAYMENT_SECRETS_KEY (any long random string). Never logged, never returned by an RPC."""

from __future__ import annotations

import base64
import hashlib

from cryptography.fernet import Fernet, InvalidToken


def fernet(secret: str) -> Fernet:
    return Fernet(base64.urlsafe_b64encode(hashlib.sha256(secret.encode("utf-8")).digest()))


def encrypt(secret: str, value: str) -> str:
    return fernet(secret).encrypt(value.encode("utf-8")).decode("ascii")


def decrypt(secret: str, token: str | None) -> str | None:
    """None when there is no value, or when it was stored under another key (enter it again)."""
    if not token:
        return None
    try:
        return fernet(secret).decrypt(token.encode("ascii")).decode("utf-8")
    except InvalidToken:
        return None

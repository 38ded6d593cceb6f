"""Adhesion codes: 12 characters of Crockford's base32 (0-9 and A-Z without I, L, O, U), i.e.
12 x 5 = 60 bits from `secrets`, shown as XXXX-XXXX-XXXX. People type them back with any case,
spaces or dashes, and the usual confusions (O for 0, I or L for 1, U for V) are forgiven.

Codes are stored only as HMAC-SHA256 under a server key (ADHESION_CODE_KEY): a leaked table gives
nothing to test guesses against without the key, and 60 bits are out of reach of online guessing
(redemption failures are throttled)."""

from __future__ import annotations

import hashlib
import hmac
import math
import secrets

ALPHABET = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
LENGTH = 12
GROUP = 4
ENTROPY_BITS = LENGTH * math.log2(len(ALPHABET))  # 60.0
_CONFUSABLE = str.maketrans({"O": "0", "I": "1", "L": "1", "U": "V"})
_SEPARATORS = str.maketrans("", "", " -\t\r\n\u00a0")
_MAX_INPUT = 40


def new_code() -> str:
    """A fresh code in its canonical form (12 characters, no dashes)."""
    return "".join(secrets.choice(ALPHABET) for _ in range(LENGTH))


def display(code: str) -> str:
    """`ABCD-EFGH-JKMN`: what the agent sees and the email shows."""
    return "-".join(code[i : i + GROUP] for i in range(0, len(code), GROUP))


def normalize(typed: object) -> str | None:
    """The canonical form of what someone typed, or None if it cannot be a code."""
    if not isinstance(typed, str) or len(typed) > _MAX_INPUT:
        return None
    canonical = typed.translate(_SEPARATORS).upper().translate(_CONFUSABLE)
    if len(canonical) != LENGTH or any(ch not in ALPHABET for ch in canonical):
        return None
    return canonical


def digest(key: bytes, canonical: str) -> str:
    """What is stored and looked up: HMAC-SHA256(key, canonical code), hex."""
    return hmac.new(key, canonical.encode("ascii"), hashlib.sha256).hexdigest()


def address_key(key: bytes, client_ip: str) -> str:
    """Throttle key of a client address, pseudonymised with the same server key."""
    return hmac.new(key, b"ip:" + client_ip.encode("utf-8"), hashlib.sha256).hexdigest()[:40]

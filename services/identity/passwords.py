"""Password policy (length and common-password list, no composition rules) and Argon2id hashing,
run in a native thread so one hash does not stall every greenthread of the service."""

from __future__ import annotations

import functools
import unicodedata
from pathlib import Path

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from eventlet import tpool

from services.identity.exceptions import WeakPassword

MIN_LENGTH = 10
MAX_LENGTH = 128
_COMMON_FILE = Path(__file__).with_name("data") / "common-passwords.txt"
_hasher = PasswordHasher()  # argon2-cffi defaults: Argon2id, RFC 9106 low-memory profile


@functools.cache
def common_passwords() -> frozenset[str]:
    lines = _COMMON_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(line.strip().lower() for line in lines if line and not line.startswith("#"))


def normalize(password: str) -> str:
    return unicodedata.normalize("NFC", password)


def check_policy(password: object, email: str | None = None) -> str:
    """Return the normalized password, or raise WeakPassword saying why."""
    if not isinstance(password, str):
        raise WeakPassword("Le mot de passe doit être une chaîne de caractères.")
    password = normalize(password)
    if len(password) < MIN_LENGTH:
        raise WeakPassword(
            f"Le mot de passe doit contenir au moins {MIN_LENGTH} caractères.",
            {"reason": "too_short", "min_length": MIN_LENGTH},
        )
    if len(password) > MAX_LENGTH:
        raise WeakPassword(
            f"Le mot de passe doit contenir au plus {MAX_LENGTH} caractères.",
            {"reason": "too_long", "max_length": MAX_LENGTH},
        )
    lowered = password.lower()
    if lowered in common_passwords() or len(set(lowered)) <= 2:
        raise WeakPassword("Ce mot de passe est trop courant : choisissez-en un autre.", {"reason": "common"})
    if email and lowered == email.strip().lower():
        raise WeakPassword("Le mot de passe ne doit pas être votre adresse e-mail.", {"reason": "is_email"})
    return password


def hash_password(password: str) -> str:
    return tpool.execute(_hasher.hash, normalize(password))


def verify_password(password_hash: str, password: str) -> bool:
    def _verify() -> bool:
        try:
            return _hasher.verify(password_hash, normalize(password))
        except (VerificationError, InvalidHashError):
            return False

    return tpool.execute(_verify)


@functools.cache
def _dummy_hash() -> str:
    return _hasher.hash("not-a-real-password-for-timing")


def burn_verification_time(password: str) -> None:
    """Spend the time of a real verification when the account does not exist (no timing oracle)."""
    verify_password(_dummy_hash(), password)

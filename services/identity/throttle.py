"""Login throttling: after a few failures on one key, each further failure locks the key for an
increasing delay (doubling, capped). Keys are per account email and per client address, counted the
same way whether the account exists or not."""

from __future__ import annotations

import datetime as dt
import math
from dataclasses import dataclass

from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.common import clock
from services.identity.models import LoginThrottle


@dataclass(frozen=True)
class ThrottlePolicy:
    free_failures: int  # failures allowed before any delay
    base_delay: float  # seconds, doubled at each further failure
    max_delay: float
    forget_after: dt.timedelta  # a quiet key starts over

    def delay_after(self, failures: int) -> float:
        if failures < self.free_failures:
            return 0.0
        return min(self.max_delay, self.base_delay * 2 ** (failures - self.free_failures))


ACCOUNT_POLICY = ThrottlePolicy(5, 2.0, 15 * 60.0, dt.timedelta(hours=24))
ADDRESS_POLICY = ThrottlePolicy(20, 2.0, 15 * 60.0, dt.timedelta(hours=24))


def throttle_keys(email_normalized: str, client_ip: str | None) -> list[tuple[str, ThrottlePolicy]]:
    keys = [(f"account:{email_normalized}", ACCOUNT_POLICY)]
    if client_ip:
        keys.append((f"ip:{client_ip}", ADDRESS_POLICY))
    return keys


def retry_after(session: Session, keys: list[tuple[str, ThrottlePolicy]]) -> int:
    """Seconds to wait before another attempt may be checked (0 when free)."""
    now = clock.now()
    wait = 0.0
    for key, _policy in keys:
        row = session.get(LoginThrottle, key)
        if row is not None and row.locked_until is not None and row.locked_until > now:
            wait = max(wait, (row.locked_until - now).total_seconds())
    return math.ceil(wait)


def record_failure(session: Session, keys: list[tuple[str, ThrottlePolicy]]) -> int:
    """Count one failure on every key; returns the longest lock it set, in seconds."""
    now = clock.now()
    longest = 0.0
    for key, policy in keys:
        row = _locked_row(session, key, now)
        if now - row.last_failure_at > policy.forget_after:
            row.failures = 0
        row.failures += 1
        row.last_failure_at = now
        delay = policy.delay_after(row.failures)
        row.locked_until = now + dt.timedelta(seconds=delay) if delay else None
        longest = max(longest, delay)
    return math.ceil(longest)


def _locked_row(session: Session, key: str, now: dt.datetime) -> LoginThrottle:
    """The key's row, locked; created first if needed (two first failures may race: one insert
    wins, the other reads the winner's row)."""
    row = session.get(LoginThrottle, key, with_for_update=True)
    if row is not None:
        return row
    try:
        with session.begin_nested():
            session.add(LoginThrottle(key=key, failures=0, last_failure_at=now))
    except IntegrityError:
        pass
    return session.get(LoginThrottle, key, with_for_update=True, populate_existing=True)


def record_success(session: Session, email_normalized: str) -> None:
    """The owner got in: their account key starts over (the address key does not)."""
    row = session.get(LoginThrottle, f"account:{email_normalized}")
    if row is not None:
        session.delete(row)

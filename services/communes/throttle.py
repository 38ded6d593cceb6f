"""Throttling of adhesion code redemptions: at most MAX_FAILURES failed attempts per rolling WINDOW,
counted separately per account and per client address; then TOO_MANY_ATTEMPTS until the oldest
failure of the window leaves it. Only failures count (a valid code never uses up the allowance).

Each key's row keeps the times of its last MAX_FAILURES failures, so the window is exact. Rows are
locked (SELECT ... FOR UPDATE on PostgreSQL) for the whole attempt, so concurrent attempts on one
key are counted one after the other and cannot overshoot the limit. The counters live in communes'
database: every instance shares them."""

from __future__ import annotations

import datetime as dt
import math

from sqlalchemy import delete
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.orm import Session

from services.common import clock
from services.communes import codes
from services.communes.models import RedeemThrottle

MAX_FAILURES = 10
WINDOW = dt.timedelta(hours=1)


def throttle_keys(account_id: str, client_ip: str | None, secret: bytes) -> list[str]:
    """Sorted (so that concurrent attempts lock rows in the same order). The address is kept only
    as a keyed hash."""
    keys = [f"account:{account_id}"]
    if client_ip:
        keys.append(f"ip:{codes.address_key(secret, client_ip)}")
    return sorted(keys)


def lock(session: Session, keys: list[str]) -> list[RedeemThrottle]:
    """The rows of these keys, created if missing, locked until the end of the transaction."""
    dialect = session.get_bind().dialect.name
    insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
    now = clock.now()
    rows = []
    for key in keys:
        row = session.get(RedeemThrottle, key, with_for_update=True, populate_existing=True)
        if row is None:
            session.execute(
                insert(RedeemThrottle)
                .values(key=key, failures=[], updated_at=now)
                .on_conflict_do_nothing(index_elements=["key"])
            )
            row = session.get(RedeemThrottle, key, with_for_update=True, populate_existing=True)
        rows.append(row)
    return rows


def _recent(row: RedeemThrottle, now: dt.datetime) -> list[float]:
    horizon = (now - WINDOW).timestamp()
    return [moment for moment in (row.failures or []) if moment > horizon]


def retry_after(rows: list[RedeemThrottle]) -> int:
    """Seconds until one more attempt is allowed on every key (0: allowed now)."""
    now = clock.now()
    wait = 0.0
    for row in rows:
        recent = _recent(row, now)
        if len(recent) >= MAX_FAILURES:
            oldest_counted = sorted(recent)[-MAX_FAILURES]
            wait = max(wait, oldest_counted + WINDOW.total_seconds() - now.timestamp())
    return max(1, math.ceil(wait)) if wait > 0 else 0


def record_failure(rows: list[RedeemThrottle]) -> None:
    now = clock.now()
    for row in rows:
        row.failures = [*_recent(row, now), now.timestamp()][-MAX_FAILURES:]
        row.updated_at = now


def purge(session: Session) -> int:
    """Forget keys without a failure in the window (run from a timer)."""
    horizon = clock.now() - WINDOW
    return session.execute(delete(RedeemThrottle).where(RedeemThrottle.updated_at < horizon)).rowcount

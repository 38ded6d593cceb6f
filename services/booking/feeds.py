"""A child's private calendar feed (iCalendar), at a secret URL a parent subscribes to on a phone.
The token is 256 random bits (URL-safe base64), given once; booking keeps its SHA-256 only, so a
copy of the database does not open anyone's feed. One feed per child: making a new one revokes the
previous; revoking deletes it. The feed shows the booked days (confirmed, held for payment, or
whose cancellation is being decided) from 31 days back to a year ahead, one all-day event per
booking with a stable UID; SUMMARY is the activity's name; the calendar is named with the child's
first name only. The feed stops (404) when the account that made it loses access to the child (the
service asks communes at each fetch)."""

from __future__ import annotations

import datetime as dt
import hashlib
import re
import secrets
from dataclasses import dataclass
from typing import Any

from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from services.booking import ical
from services.booking.access import ChildInfo
from services.booking.models import (
    CANCEL_REQUESTED,
    CONFIRMED,
    PENDING_PAYMENT,
    Activity,
    Booking,
    CalendarFeed,
)
from services.common.db import new_id

TOKEN_BYTES = 32
_TOKEN = re.compile(r"^[A-Za-z0-9_-]{43}$")
SHOWN = (CONFIRMED, PENDING_PAYMENT, CANCEL_REQUESTED)
DAYS_BACK = 31
DAYS_AHEAD = 366
UID_DOMAIN = "portail-familles"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode("ascii")).hexdigest()


def plausible(token: Any) -> bool:
    return isinstance(token, str) and _TOKEN.match(token) is not None


def create(session: Session, child: ChildInfo, account_id: str, now: dt.datetime) -> str:
    """A new secret token for the child's feed (the previous one stops working). Returns the token,
    which is not stored."""
    token = secrets.token_urlsafe(TOKEN_BYTES)
    session.execute(delete(CalendarFeed).where(CalendarFeed.child_id == child.id))
    session.add(
        CalendarFeed(
            id=new_id(),
            token_hash=token_hash(token),
            child_id=child.id,
            commune_id=child.commune_id,
            account_id=account_id,
            created_at=now,
        )
    )
    session.flush()
    return token


def revoke(session: Session, child_id: str) -> bool:
    return bool(session.execute(delete(CalendarFeed).where(CalendarFeed.child_id == child_id)).rowcount)


@dataclass(frozen=True)
class Feed:
    child_id: str
    account_id: str
    commune_id: str


def find(session: Session, token: Any) -> Feed | None:
    """The feed this token opens, or None (unknown, revoked, or not a token at all)."""
    if not plausible(token):
        return None
    row = session.scalars(select(CalendarFeed).where(CalendarFeed.token_hash == token_hash(token))).first()
    if row is None:
        return None
    return Feed(child_id=row.child_id, account_id=row.account_id, commune_id=row.commune_id)


def render(session: Session, feed: Feed, first_name: str | None, now: dt.datetime) -> str:
    """The feed's iCalendar text."""
    today = now.date()
    first, last = today - dt.timedelta(days=DAYS_BACK), today + dt.timedelta(days=DAYS_AHEAD)
    rows = session.execute(
        select(Booking.id, Booking.date, Booking.status, Activity.name)
        .join(Activity, Activity.id == Booking.activity_id)
        .where(
            Booking.child_id == feed.child_id,
            Booking.status.in_(SHOWN),
            Booking.date.between(first, last),
        )
        .order_by(Booking.date, Activity.name, Booking.id)
    ).all()
    events = [
        ical.AllDayEvent(
            uid=f"{row.id}@{UID_DOMAIN}",
            day=row.date,
            summary=row.name,
            status="CONFIRMED" if row.status == CONFIRMED else "TENTATIVE",
        )
        for row in rows
    ]
    name = f"Réservations – {first_name}" if first_name else "Réservations"
    return ical.calendar(name, events, now)

"""What a parent (or an agent) sees of a child's days: every scheduled day of every activity of the
child's commune, with its state (day_state.py), places left and deadlines; and the child's bookings.
Plain functions over a session; the child (ChildInfo) comes from communes' access check."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import and_, bindparam, select
from sqlalchemy.orm import Session

from services.booking import capacity, days, views
from services.booking.access import ChildInfo
from services.booking.day_state import BOOKING_STATUSES, day_state
from services.booking.models import ACTIVE_STATUSES, CANCELLED, Activity, Attendance, Booking

Key = tuple[str, dt.date]


_BOOKING = Booking.__table__
_ATTENDANCE = Attendance.__table__
# built once (Core, bound parameters): the calendar is the most asked view, and a statement built per
# call costs more to build and cache-key than to run
_CHILD_DAYS = (
    select(
        _BOOKING.c.id,
        _BOOKING.c.activity_id,
        _BOOKING.c.date,
        _BOOKING.c.status,
        _ATTENDANCE.c.status.label("mark"),
    )
    .select_from(
        _BOOKING.outerjoin(
            _ATTENDANCE,
            and_(
                _ATTENDANCE.c.activity_id == _BOOKING.c.activity_id,
                _ATTENDANCE.c.child_id == _BOOKING.c.child_id,
                _ATTENDANCE.c.date == _BOOKING.c.date,
            ),
        )
    )
    .where(
        _BOOKING.c.child_id == bindparam("child_id"),
        _BOOKING.c.activity_id.in_(bindparam("activity_ids", expanding=True)),
        _BOOKING.c.date.between(bindparam("first"), bindparam("last")),
        _BOOKING.c.status.in_((*ACTIVE_STATUSES, CANCELLED)),
    )
    .order_by(_BOOKING.c.created_at, _BOOKING.c.id)
)


def child_days(
    session: Session, child_id: str, activity_ids: list[str], first: dt.date, last: dt.date
) -> tuple[dict[Key, Any], dict[Key, str]]:
    """Per (activity, day), in one query: the child's active booking (id, status), else its latest
    cancelled one (released holds are history the calendar does not show); and the attendance marked
    for the child that day. Rows, not ORM objects: calendars are read often."""
    if not activity_ids:
        return {}, {}
    rows = session.execute(
        _CHILD_DAYS, {"child_id": child_id, "activity_ids": activity_ids, "first": first, "last": last}
    ).all()
    found: dict[Key, Any] = {}
    marks: dict[Key, str] = {}
    for row in rows:
        key = (row.activity_id, row.date)
        current = found.get(key)
        if current is None or current.status not in ACTIVE_STATUSES:  # at most one is active
            found[key] = row
        if row.mark is not None:
            marks[key] = row.mark
    return found, marks


class DayFacts:
    """Everything needed to describe days of several activities for one child."""

    def __init__(
        self,
        session: Session,
        child: ChildInfo | None,
        activities: Iterable[Activity],
        first: dt.date,
        last: dt.date,
        rules: dict[str, days.ActivityDays] | None = None,
    ) -> None:
        self.child = child
        self.activities = {a.id: a for a in activities}
        self.days = rules if rules is not None else days.load(session, self.activities.values())
        ids = list(self.activities)
        self.places = capacity.taken_by_day(session, ids, first, last)
        self.bookings, self.attendance = (
            child_days(session, child.id, ids, first, last) if child else ({}, {})
        )

    def describe(self, activity_id: str, day: dt.date, now: dt.datetime) -> dict[str, Any]:
        rules = self.days[activity_id]
        facts = rules.day_rules(day)
        booking = self.bookings.get((activity_id, day))
        cap, taken = self.places.get((activity_id, day), (rules.capacity, 0))
        places_left = max(cap - taken, 0)
        status = booking.status if booking is not None and booking.status in BOOKING_STATUSES else None
        state = day_state(
            now=now,
            closed=not facts.open,
            eligible=rules.eligible(self.child, day),
            booking_status=status,
            attendance=self.attendance.get((activity_id, day)),
            places_left=places_left,
            book_until=facts.book_until,
        )
        active = booking is not None and booking.status in ACTIVE_STATUSES
        return {
            "date": facts.date_text,
            "activity_id": activity_id,
            "activity_name": rules.name,
            "state": state,
            "places_left": places_left,
            "book_until": facts.book_until_text,
            "cancel_until": facts.cancel_until_text,
            "booking_id": booking.id if active else None,
        }


def commune_rules(session: Session, commune_id: str, cache: Any = None) -> list[days.ActivityDays]:
    """The rules (activity and closures) of every activity of the commune, by name. Kept in `cache`
    (a TtlCache, ACTIVITY_CACHE_SECONDS) for the calendars, which every parent asks often: dropped by
    this instance when an activity or closure changes, seen by other instances within the TTL.
    Validation never uses it (it reads and locks the current rows)."""
    cached = cache.get(commune_id) if cache is not None else None
    if cached is None:
        activities = session.scalars(
            select(Activity).where(Activity.commune_id == commune_id).order_by(Activity.name, Activity.id)
        ).all()
        cached = list(days.load(session, activities).values())
        if cache is not None:
            cache.put(commune_id, cached)
    return cached


def calendar(
    session: Session, child: ChildInfo, first: dt.date, last: dt.date, now: dt.datetime, cache: Any = None
) -> dict[str, Any]:
    """{"days": [...]} for [first, last] (checked by the caller: fields.date_range)."""
    rules = commune_rules(session, child.commune_id, cache)
    activities = [r.activity for r in rules]
    facts = DayFacts(session, child, activities, first, last, {r.activity.id: r for r in rules})
    entries = [
        facts.describe(activity.id, day, now)
        for activity in activities
        for day in facts.days[activity.id].scheduled_days(first, last)
    ]
    entries.sort(key=lambda e: (e["date"], e["activity_name"], e["activity_id"]))
    return {"days": entries}


def child_bookings(session: Session, child: ChildInfo, first: dt.date, last: dt.date) -> list[dict[str, Any]]:
    """Every booking of the child in [first, last], whatever its status, by date."""
    rows = session.scalars(
        select(Booking)
        .where(Booking.child_id == child.id, Booking.date.between(first, last))
        .order_by(Booking.date, Booking.created_at, Booking.id)
    ).all()
    return [views.child_booking(row) for row in rows]

"""What a parent (or an agent) sees of a child's days: every scheduled day of every activity of the
child's commune, with its state (day_state.py), places left and deadlines; and the child's bookings.
Plain functions over a session; the child (ChildInfo) comes from communes' access check."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.booking import attendance, capacity, days, views
from services.booking.access import ChildInfo
from services.booking.day_state import BOOKING_STATUSES, day_state
from services.booking.models import ACTIVE_STATUSES, CANCELLED, Activity, Booking

Key = tuple[str, dt.date]


def child_bookings_by_day(
    session: Session, child_id: str, activity_ids: list[str], first: dt.date, last: dt.date
) -> dict[Key, Booking]:
    """Per (activity, day): the child's active booking, else its latest cancelled one (released
    holds are history the calendar does not show)."""
    if not activity_ids:
        return {}
    rows = session.scalars(
        select(Booking)
        .where(
            Booking.child_id == child_id,
            Booking.activity_id.in_(activity_ids),
            Booking.date.between(first, last),
            Booking.status.in_((*ACTIVE_STATUSES, CANCELLED)),
        )
        .order_by(Booking.created_at, Booking.id)
    ).all()
    found: dict[Key, Booking] = {}
    for row in rows:
        key = (row.activity_id, row.date)
        current = found.get(key)
        if current is None or current.status not in ACTIVE_STATUSES:  # at most one is active
            found[key] = row
    return found


class DayFacts:
    """Everything needed to describe days of several activities for one child."""

    def __init__(
        self,
        session: Session,
        child: ChildInfo | None,
        activities: Iterable[Activity],
        first: dt.date,
        last: dt.date,
    ) -> None:
        self.child = child
        self.activities = {a.id: a for a in activities}
        self.days = days.load(session, self.activities.values())
        ids = list(self.activities)
        self.places = capacity.taken_by_day(session, ids, first, last)
        self.bookings = child_bookings_by_day(session, child.id, ids, first, last) if child else {}
        self.attendance = attendance.by_day(session, child.id, ids, first, last) if child else {}

    def describe(self, activity_id: str, day: dt.date, now: dt.datetime) -> dict[str, Any]:
        rules = self.days[activity_id]
        activity = rules.activity
        booking = self.bookings.get((activity_id, day))
        cap, taken = self.places.get((activity_id, day), (activity.capacity, 0))
        places_left = max(cap - taken, 0)
        book_until = rules.book_until(day)
        status = booking.status if booking is not None and booking.status in BOOKING_STATUSES else None
        state = day_state(
            now=now,
            closed=rules.closed(day) or not rules.scheduled(day),
            eligible=rules.eligible(self.child, day),
            booking_status=status,
            attendance=self.attendance.get((activity_id, day)),
            places_left=places_left,
            book_until=book_until,
        )
        active = booking is not None and booking.status in ACTIVE_STATUSES
        return {
            "date": day.isoformat(),
            "activity_id": activity_id,
            "activity_name": activity.name,
            "state": state,
            "places_left": places_left,
            "book_until": days.iso(book_until),
            "cancel_until": days.iso(rules.cancel_until(day)),
            "booking_id": booking.id if active else None,
        }


def calendar(
    session: Session, child: ChildInfo, first: dt.date, last: dt.date, now: dt.datetime
) -> dict[str, Any]:
    """{"days": [...]} for [first, last] (checked by the caller: fields.date_range)."""
    activities = session.scalars(
        select(Activity).where(Activity.commune_id == child.commune_id).order_by(Activity.name, Activity.id)
    ).all()
    facts = DayFacts(session, child, activities, first, last)
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

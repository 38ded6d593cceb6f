"""Attendance: agents mark each booked child present, absent or absent with justification, per
activity and day (past, today or to come: an absence can be announced). The child must hold a place
that day (a confirmed booking, or one whose cancellation is being decided), else NOT_BOOKED.
Marking again overwrites (one row per activity, child and day). `attendance_marked` is recorded
(billing may bill attendance where the rule says so) and the act audited; the child's calendar
then shows the attendance instead of the booking."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.booking import access, audit, events, fields
from services.booking.activities import activity_in
from services.booking.day_state import ATTENDANCES
from services.booking.exceptions import NotBooked
from services.booking.models import CANCEL_REQUESTED, CONFIRMED, Attendance, Booking
from services.common.context import Caller
from services.common.errors import ValidationFailed

MARKABLE = (CONFIRMED, CANCEL_REQUESTED)


def _status(value: Any) -> str:
    if value not in ATTENDANCES:
        raise ValidationFailed(
            details={"fields": {"status": ["Valeur attendue parmi : " + ", ".join(ATTENDANCES) + "."]}}
        )
    return value


def _day(value: Any) -> dt.date:
    return fields.dates([value])[0]


def mark(
    session: Session,
    caller: Caller,
    commune_id: Any,
    activity_id: Any,
    day: Any,
    child_id: Any,
    status: Any,
    now: dt.datetime,
) -> dict[str, Any]:
    role = access.staff_role(caller, commune_id)
    activity = activity_in(session, commune_id, activity_id)
    status = _status(status)
    day = _day(day)
    child_id = fields.identifier(child_id)
    booking = session.scalars(
        select(Booking).where(
            Booking.activity_id == activity.id,
            Booking.child_id == child_id,
            Booking.date == day,
            Booking.status.in_(MARKABLE),
        )
    ).first()
    if booking is None:
        raise NotBooked()
    row = session.scalars(
        select(Attendance).where(
            Attendance.activity_id == activity.id, Attendance.child_id == child_id, Attendance.date == day
        )
    ).first()
    if row is None:
        row = Attendance(
            booking_id=booking.id,
            activity_id=activity.id,
            child_id=child_id,
            date=day,
            commune_id=activity.commune_id,
            status=status,
            marked_at=now,
            marked_by=caller.account_id,
        )
        session.add(row)
    else:
        row.booking_id, row.status, row.marked_at, row.marked_by = booking.id, status, now, caller.account_id
    session.flush()
    events.record(
        session,
        events.ATTENDANCE_MARKED,
        {
            "booking_id": booking.id,
            "child_id": child_id,
            "activity_id": activity.id,
            "date": day.isoformat(),
            "commune_id": activity.commune_id,
            "family_id": booking.family_id,
            "status": status,
            "marked_by": caller.account_id,
            "billing_mode": activity.billing_mode,
            "activity_name": activity.name,
        },
    )
    audit.record(
        session,
        caller.account_id,
        role,
        audit.MARK_ATTENDANCE,
        audit.ATTENDANCE,
        row.id,
        activity.commune_id,
        child_id,
    )
    return view(row)


def view(row: Attendance) -> dict[str, Any]:
    return {
        "activity_id": row.activity_id,
        "date": row.date.isoformat(),
        "child_id": row.child_id,
        "booking_id": row.booking_id,
        "status": row.status,
        "marked_at": row.marked_at.isoformat(),
        "marked_by": row.marked_by,
    }

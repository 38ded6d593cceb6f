"""The state a parent sees for one child on one day of an activity's calendar."""

from __future__ import annotations

import datetime as dt

from services.booking.deadlines import is_before

STATES: tuple[str, ...] = (
    "open",
    "booked",
    "full",
    "waitlisted",
    "closed",
    "locked",
    "pending_payment",
    "cancel_requested",
    "cancelled",
    "present",
    "absent",
    "absent_justified",
    "not_eligible",
)
BOOKING_STATUSES: tuple[str, ...] = (
    "confirmed",
    "pending_payment",
    "waitlisted",
    "cancel_requested",
    "cancelled",
)
ATTENDANCES: tuple[str, ...] = ("present", "absent", "absent_justified")


def day_state(
    *,
    now: dt.datetime,
    closed: bool,
    eligible: bool,
    booking_status: str | None,
    attendance: str | None,
    places_left: int,
    book_until: dt.datetime | None,
) -> str:
    """One of STATES. What happened (attendance) wins over what was planned; a closure wins over any
    booking; a cancelled booking shows as "cancelled" only once the day can no longer be booked, until
    then the day reads as if never booked so the parent can book it again. Unknown statuses raise
    ValueError rather than show a parent a wrong state."""
    if attendance is not None:
        if attendance not in ATTENDANCES:
            raise ValueError(f"unknown attendance: {attendance!r}")
        return attendance
    if closed:
        return "closed"
    bookable_in_time = is_before(now, book_until)
    if booking_status is not None:
        if booking_status not in BOOKING_STATUSES:
            raise ValueError(f"unknown booking status: {booking_status!r}")
        if booking_status == "confirmed":
            return "booked"
        if booking_status != "cancelled" or not bookable_in_time:
            return booking_status
    if not eligible:
        return "not_eligible"
    if not bookable_in_time:
        return "locked"
    if places_left <= 0:
        return "full"
    return "open"

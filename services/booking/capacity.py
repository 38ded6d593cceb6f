"""Places: taken and freed by conditional updates on the day's occurrence row, never by counting.

    UPDATE occurrences SET taken = taken + 1 WHERE id = :id AND taken < capacity   -- 1 row: a place

Backed by CHECK (0 <= taken <= capacity). On PostgreSQL the update locks the row until commit. Lock
order, the same in every transaction so that none can deadlock: the activity row (read FOR SHARE
only to create a missing day; written first by a capacity change), then days in (activity, date)
order, then the bookings of a locked day. Every change to a day's bookings (take, free, promote,
leave the list, release a hold) happens after locking that day. On SQLite the first write of a
transaction takes the database's write lock: the same code is serialized.

Waiting list: `waitlist_seq` numbers arrivals per day (UPDATE ... RETURNING under the row lock); a
freed place goes to the lowest position still waiting, if the day has not passed."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import bindparam, delete, select, text, update
from sqlalchemy.orm import Session

from services.booking import events
from services.booking.days import ActivityDays
from services.booking.exceptions import CapacityBelowBookings
from services.booking.models import (
    CONFIRMED,
    PENDING_PAYMENT,
    WAITLISTED,
    Activity,
    Booking,
    Occurrence,
)
from services.common.db import UtcDateTime, insert_for, new_id


def occurrence(session: Session, activity_id: str, day: dt.date) -> Any:
    """The day's occurrence row (id, capacity, taken), created on first use with the activity's
    capacity. Concurrent creators meet on the unique (activity, date) key: one inserts, the others
    do nothing. The activity row is read FOR SHARE (PostgreSQL), so a concurrent capacity change
    either waits for this day to exist and then sees it, or commits first and gives it the new
    capacity. Callers create the days they need before taking any day's lock (see lock order)."""
    row = find(session, activity_id, day)
    if row is not None:
        return row
    capacity = session.execute(
        select(Activity.capacity).where(Activity.id == activity_id).with_for_update(read=True)
    ).scalar_one()
    session.execute(
        insert_for(session, Occurrence)
        .values(id=new_id(), activity_id=activity_id, date=day, capacity=capacity, taken=0, waitlist_seq=0)
        .on_conflict_do_nothing(index_elements=["activity_id", "date"])
    )
    return find(session, activity_id, day)


def find(session: Session, activity_id: str, day: dt.date) -> Any:
    """The day's occurrence row if it exists (reads only)."""
    return session.execute(
        select(Occurrence.id, Occurrence.capacity, Occurrence.taken).where(
            Occurrence.activity_id == activity_id, Occurrence.date == day
        )
    ).first()


def lock(session: Session, occurrence_id: str) -> None:
    """Lock the day before changing its bookings (see the module's lock order). SQLite: a no-op
    write that takes the database's write lock now, so what is read next is current."""
    if session.get_bind().dialect.name == "postgresql":
        # NO KEY UPDATE: bookings being inserted hold KEY SHARE on their day (foreign key); see place()
        session.execute(
            select(Occurrence.id).where(Occurrence.id == occurrence_id).with_for_update(key_share=True)
        )
    else:
        session.execute(
            update(Occurrence)
            .where(Occurrence.id == occurrence_id)
            .values(taken=Occurrence.taken)
            .execution_options(synchronize_session=False)
        )


def take_place(session: Session, occurrence_id: str) -> bool:
    """One place, if one is left (the conditional update); False when the day is full."""
    result = session.execute(
        update(Occurrence)
        .where(Occurrence.id == occurrence_id, Occurrence.taken < Occurrence.capacity)
        .values(taken=Occurrence.taken + 1)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


# PostgreSQL: the place (or the waiting-list number) and the booking's status in ONE statement, so that
# the day's row lock is held for the fewest round trips (it lasts until the commit). The CTE locks the
# day and reads whether a place is left; the UPDATE of occurrences then sees the row it locked. NO KEY
# UPDATE, like a plain UPDATE: the booking rows inserted before hold KEY SHARE locks on their day
# (the foreign key), which FOR UPDATE would wait for, deadlocking two carts of the same day.
_PLACE_OR_QUEUE_PG = text(
    """
    WITH cur AS (
        SELECT id, taken < capacity AS free FROM occurrences WHERE id = :occurrence_id FOR NO KEY UPDATE
    ), occ AS (
        UPDATE occurrences o
        SET taken = o.taken + CASE WHEN cur.free THEN 1 ELSE 0 END,
            waitlist_seq = o.waitlist_seq + CASE WHEN cur.free THEN 0 ELSE 1 END
        FROM cur WHERE o.id = cur.id
        RETURNING cur.free AS free, o.waitlist_seq AS seq
    )
    UPDATE bookings b
    SET status = CASE WHEN occ.free THEN :placed_status ELSE :waitlisted END,
        waitlist_position = CASE WHEN occ.free THEN NULL ELSE occ.seq END,
        hold_expires_at = CASE WHEN occ.free THEN CAST(:hold AS TIMESTAMPTZ) ELSE NULL END,
        updated_at = :now
    FROM occ WHERE b.id = :booking_id
    RETURNING occ.free, occ.seq
    """
).bindparams(bindparam("hold", type_=UtcDateTime()), bindparam("now", type_=UtcDateTime()))

# No waiting list: a full day is not locked at all (the conditional update matches no row).
_PLACE_PG = text(
    """
    WITH occ AS (
        UPDATE occurrences SET taken = taken + 1
        WHERE id = :occurrence_id AND taken < capacity RETURNING id
    )
    UPDATE bookings b
    SET status = :placed_status, hold_expires_at = CAST(:hold AS TIMESTAMPTZ), updated_at = :now
    FROM occ WHERE b.id = :booking_id
    RETURNING b.id
    """
).bindparams(bindparam("hold", type_=UtcDateTime()), bindparam("now", type_=UtcDateTime()))


def place(
    session: Session,
    occurrence_id: str,
    booking_id: str,
    waiting_list: bool,
    placed_status: str,
    hold: dt.datetime | None,
    now: dt.datetime,
) -> tuple[bool, int | None]:
    """Give the booking row `booking_id` (already inserted, not yet visible to anyone) a place of its
    day, with `placed_status` and `hold`, or else its number on the waiting list, or else delete it.
    Returns (placed, waiting-list position): (False, None) means the day is full without a list."""
    params = {
        "occurrence_id": occurrence_id,
        "booking_id": booking_id,
        "placed_status": placed_status,
        "hold": hold,
        "now": now,
    }
    if session.get_bind().dialect.name == "postgresql":
        if waiting_list:
            row = session.execute(_PLACE_OR_QUEUE_PG, {**params, "waitlisted": WAITLISTED}).one()
            return (True, None) if row.free else (False, row.seq)
        placed = session.execute(_PLACE_PG, params).first() is not None
        position = None
    elif take_place(session, occurrence_id):
        placed, position = True, None
    else:
        placed = False
        position = next_waitlist_position(session, occurrence_id) if waiting_list else None
    if placed or position is not None:
        if session.get_bind().dialect.name != "postgresql":
            session.execute(
                update(Booking)
                .where(Booking.id == booking_id)
                .values(
                    status=placed_status if placed else WAITLISTED,
                    waitlist_position=position,
                    hold_expires_at=hold if placed else None,
                    updated_at=now,
                )
                .execution_options(synchronize_session=False)
            )
        return placed, position
    session.execute(
        delete(Booking).where(Booking.id == booking_id).execution_options(synchronize_session=False)
    )
    return False, None


def free_place(session: Session, occurrence_id: str) -> None:
    session.execute(
        update(Occurrence)
        .where(Occurrence.id == occurrence_id, Occurrence.taken > 0)
        .values(taken=Occurrence.taken - 1)
        .execution_options(synchronize_session=False)
    )


def next_waitlist_position(session: Session, occurrence_id: str) -> int:
    """The next position on the day's waiting list (order of arrival); locks the day."""
    return session.execute(
        update(Occurrence)
        .where(Occurrence.id == occurrence_id)
        .values(waitlist_seq=Occurrence.waitlist_seq + 1)
        .returning(Occurrence.waitlist_seq)
        .execution_options(synchronize_session=False)
    ).scalar_one()


def promote(session: Session, days: ActivityDays, occurrence_id: str, day: dt.date, now: dt.datetime) -> int:
    """Give free places of a locked day to the waiting list, first come first served: confirmed
    (postpaid) or held for payment (prepaid). Not for a day already past. Returns how many."""
    if day < days.local_today(now):
        return 0
    activity = days.activity
    promoted = 0
    while True:
        candidate = session.scalars(
            select(Booking)
            .where(Booking.occurrence_id == occurrence_id, Booking.status == WAITLISTED)
            .order_by(Booking.waitlist_position, Booking.created_at, Booking.id)
            .limit(1)
        ).first()
        if candidate is None or not take_place(session, occurrence_id):
            return promoted
        if activity.billing_mode == "prepaid":
            candidate.status = PENDING_PAYMENT
            candidate.hold_expires_at = now + dt.timedelta(minutes=activity.hold_minutes)
        else:
            candidate.status = CONFIRMED
        candidate.updated_at = now
        session.flush()
        events.booking_event(
            session,
            events.BOOKING_PROMOTED,
            candidate,
            child_first_name=candidate.child_first_name,
            activity_name=activity.name,
        )
        follow_up = events.BOOKING_HELD if candidate.status == PENDING_PAYMENT else events.BOOKING_CONFIRMED
        events.booking_event(session, follow_up, candidate)
        promoted += 1


def set_capacity(session: Session, days: ActivityDays, capacity: int, now: dt.datetime) -> None:
    """A new capacity for every day of the activity, refused (CapacityBelowBookings) if a day already
    has more places taken; a larger capacity promotes the waiting lists. The activity row is written
    first (PostgreSQL: locks it, so no day is created meanwhile with the old capacity; SQLite: takes
    the write lock), then its days are locked in date order (the validation engine's order) before
    being checked and changed."""
    activity = days.activity
    previous = activity.capacity
    activity.capacity = capacity
    session.flush()
    rows = session.execute(
        select(Occurrence.id, Occurrence.date, Occurrence.taken)
        .where(Occurrence.activity_id == activity.id)
        .order_by(Occurrence.date)
        .with_for_update(key_share=True)
    ).all()
    if any(row.taken > capacity for row in rows):
        raise CapacityBelowBookings(details={"max_taken": max(row.taken for row in rows)})
    session.execute(
        update(Occurrence)
        .where(Occurrence.activity_id == activity.id)
        .values(capacity=capacity)
        .execution_options(synchronize_session=False)
    )
    if capacity > previous:
        for row in rows:
            promote(session, days, row.id, row.date, now)


_OCCURRENCE = Occurrence.__table__
_TAKEN_BY_DAY = select(
    _OCCURRENCE.c.activity_id, _OCCURRENCE.c.date, _OCCURRENCE.c.capacity, _OCCURRENCE.c.taken
).where(
    _OCCURRENCE.c.activity_id.in_(bindparam("activity_ids", expanding=True)),
    _OCCURRENCE.c.date.between(bindparam("first"), bindparam("last")),
)  # built once: every calendar asks it


def taken_by_day(session: Session, activity_ids: list[str], first: dt.date, last: dt.date) -> dict[Any, Any]:
    """(activity_id, date) -> (capacity, taken) of the occurrences that exist in [first, last]."""
    if not activity_ids:
        return {}
    rows = session.execute(_TAKEN_BY_DAY, {"activity_ids": activity_ids, "first": first, "last": last}).all()
    return {(r.activity_id, r.date): (r.capacity, r.taken) for r in rows}

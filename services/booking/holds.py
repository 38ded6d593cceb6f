"""Prepaid holds that expire unpaid: the sweep (a nameko timer, every HOLD_SWEEP_SECONDS) releases
them one short transaction each: the day is locked, the booking moves pending_payment -> released by
a conditional update (so two sweepers, or a sweep racing a cancellation, release it once), the
place is freed, the waiting list promoted and `booking_released` recorded in the outbox."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.booking import capacity, days, events
from services.booking.models import PENDING_PAYMENT, RELEASED, Activity, Booking

log = logging.getLogger(__name__)


def expired(session: Session, now: dt.datetime, limit: int) -> list[str]:
    """Ids of holds past their expiry, oldest first."""
    return list(
        session.scalars(
            select(Booking.id)
            .where(Booking.status == PENDING_PAYMENT, Booking.hold_expires_at <= now)
            .order_by(Booking.hold_expires_at, Booking.id)
            .limit(limit)
        ).all()
    )


def release(session: Session, booking_id: str, now: dt.datetime) -> bool:
    """Release one expired hold; False if it was paid, cancelled or released meanwhile."""
    row = session.execute(
        select(Booking.occurrence_id, Booking.activity_id, Booking.date).where(Booking.id == booking_id)
    ).first()
    if row is None:
        return False
    capacity.lock(session, row.occurrence_id)
    changed = session.execute(
        update(Booking)
        .where(
            Booking.id == booking_id,
            Booking.status == PENDING_PAYMENT,
            Booking.hold_expires_at <= now,
        )
        .values(status=RELEASED, updated_at=now)
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:
        return False
    capacity.free_place(session, row.occurrence_id)
    booking = session.get(Booking, booking_id, populate_existing=True)
    events.booking_event(session, events.BOOKING_RELEASED, booking)
    activity = session.get(Activity, row.activity_id)
    capacity.promote(session, days.load_one(session, activity), row.occurrence_id, row.date, now)
    return True


def sweep(db: Any, now: dt.datetime, batch: int = 100) -> int:
    """Release every hold expired at `now`, in batches; `db` gives transactions (WorkerDb).
    Returns how many were released."""
    released = 0
    while True:
        with db.transaction() as session:
            ids = expired(session, now, batch)
        done = 0
        for booking_id in ids:
            with db.transaction() as session:
                done += release(session, booking_id, now)
        released += done
        if len(ids) < batch or not done:
            break
    if released:
        log.info("released %d expired prepaid holds", released)
    return released

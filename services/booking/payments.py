"""Billing's `payment_succeeded` in: the paid prepaid holds become confirmed bookings, once per event.

One transaction per event holds everything: the inbox row (`first_delivery`, so a redelivered event
changes nothing), the bookings' new statuses, their `booking_confirmed` events and the
`payment_applied` answer for billing, all in the outbox. Days are locked in (activity, date) order,
each before its bookings are read and changed (capacity.py's lock order), so this races cleanly with
the hold sweep (holds.py), cancellations and other carts.

What becomes of each paid booking is `fate()`, a plain rule:
- pending_payment -> confirmed (the hold is cleared), even if its expiry passed and the sweep has not
  run yet: the payment got there first;
- released (the hold expired unpaid and its place was freed) -> a place again if one is left and the
  child has no other active booking that day (the partial unique index), confirmed; else lost;
- confirmed (or cancel_requested: confirmed, then a cancellation asked) -> unchanged, counted confirmed;
- cancelled (the family or an agent cancelled the unpaid hold), waitlisted, unknown ids, bookings of
  another commune -> lost. Billing refunds the lost days (reason "place_lost").
"""

from __future__ import annotations

import datetime as dt
import logging
from dataclasses import dataclass
from typing import Any

import eventlet
from sqlalchemy import select
from sqlalchemy.exc import IntegrityError, SQLAlchemyError
from sqlalchemy.orm import Session

from services.booking import capacity, events
from services.booking.models import (
    ACTIVE_STATUSES,
    CANCEL_REQUESTED,
    CONFIRMED,
    PENDING_PAYMENT,
    RELEASED,
    Booking,
    ProcessedEvent,
)
from services.common.db import WorkerDb
from services.common.messaging import first_delivery

log = logging.getLogger(__name__)

CONSUMER = "booking.payment_succeeded"
REQUEUE_DELAY_SECONDS = 0.5
MAX_ID = 64

# fate of one paid booking
CONFIRM = "confirm"  # its hold becomes a confirmed booking
RETAKE = "retake"  # its hold was lost: a place is taken again and it is confirmed
UNCHANGED = "unchanged"  # confirmed already
LOST = "lost"  # no place for it: billing refunds it


def fate(status: str | None, place_left: bool, other_active: bool) -> str:
    """What a payment does to a booking with this `status` (None: unknown to booking), given whether
    a place is left on its day and whether the child has another active booking that day."""
    if status == PENDING_PAYMENT:
        return CONFIRM
    if status in (CONFIRMED, CANCEL_REQUESTED):
        return UNCHANGED
    if status == RELEASED and place_left and not other_active:
        return RETAKE
    return LOST


def counts_as_confirmed(outcome: str) -> bool:
    return outcome != LOST


class RetryLater(Exception):
    """The payment could not be applied now (database down, a deadlock): nameko requeues the event.
    Carries the error type only."""


class InvalidPayment(ValueError):
    """A payment_succeeded event booking can never apply (a bug upstream): logged and dropped.
    The message names the field, never its value."""


@dataclass(frozen=True)
class PaymentSucceeded:
    event_id: str
    payment_id: str
    commune_id: str
    booking_ids: tuple[str, ...]  # in the event's order, each once


def _text(payload: dict[str, Any], key: str) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value or len(value) > MAX_ID:
        raise InvalidPayment(f"missing or invalid {key}")
    return value


def parse(payload: Any) -> PaymentSucceeded:
    """The fields booking reads from billing's payment_succeeded (others are ignored)."""
    if not isinstance(payload, dict):
        raise InvalidPayment("payload is not an object")
    booking_ids = payload.get("booking_ids")
    if not isinstance(booking_ids, list) or not all(isinstance(i, str) for i in booking_ids):
        raise InvalidPayment("missing or invalid booking_ids")
    return PaymentSucceeded(
        event_id=_text(payload, "event_id"),
        payment_id=_text(payload, "payment_id"),
        commune_id=_text(payload, "commune_id"),
        booking_ids=tuple(dict.fromkeys(booking_ids)),
    )


def _other_active(session: Session, booking: Booking) -> bool:
    return (
        session.scalar(
            select(Booking.id)
            .where(
                Booking.activity_id == booking.activity_id,
                Booking.child_id == booking.child_id,
                Booking.date == booking.date,
                Booking.status.in_(ACTIVE_STATUSES),
                Booking.id != booking.id,
            )
            .limit(1)
        )
        is not None
    )


def _retake(session: Session, booking: Booking, now: dt.datetime) -> bool:
    """A released booking takes a place again on its (locked) day; False if none is left. The
    savepoint gives the place back if the partial unique index refuses the row."""
    try:
        with session.begin_nested():
            if not capacity.take_place(session, booking.occurrence_id):
                return False
            _confirm(session, booking, now)
    except IntegrityError:
        return False
    return True


def _confirm(session: Session, booking: Booking, now: dt.datetime) -> None:
    booking.status = CONFIRMED
    booking.hold_expires_at = None
    booking.waitlist_position = None
    booking.updated_at = now
    session.flush()


def apply(session: Session, payment: PaymentSucceeded, now: dt.datetime) -> dict[str, list[str]]:
    """Apply a paid payment to its bookings in the caller's transaction: {"confirmed", "lost"}, each
    in the event's order. Records booking_confirmed for each booking it confirms."""
    found = session.scalars(
        select(Booking).where(Booking.id.in_(payment.booking_ids), Booking.commune_id == payment.commune_id)
    ).all()
    outcome: dict[str, str] = {}
    locked: set[str] = set()
    for booking in sorted(found, key=lambda b: (b.activity_id, b.date, b.id)):  # the lock order
        if booking.occurrence_id not in locked:
            capacity.lock(session, booking.occurrence_id)
            locked.add(booking.occurrence_id)
        session.refresh(booking)  # its current status, now that its day is locked
        status = booking.status
        other_active = status == RELEASED and _other_active(session, booking)
        decided = fate(status, place_left=True, other_active=other_active)
        if decided == RETAKE and not _retake(session, booking, now):
            decided = fate(status, place_left=False, other_active=other_active)
        elif decided == CONFIRM:
            _confirm(session, booking, now)
        if decided in (CONFIRM, RETAKE):
            events.booking_event(
                session, events.BOOKING_CONFIRMED, booking, paid=True, payment_id=payment.payment_id
            )
        outcome[booking.id] = decided
    confirmed = [i for i in payment.booking_ids if counts_as_confirmed(outcome.get(i, LOST))]
    lost = [i for i in payment.booking_ids if not counts_as_confirmed(outcome.get(i, LOST))]
    return {"confirmed": confirmed, "lost": lost}


def on_payment_succeeded(db: WorkerDb, payload: Any, now: dt.datetime) -> dict[str, list[str]] | None:
    """Handle one delivery of billing's payment_succeeded: the bookings and `payment_applied` in one
    transaction; None for a redelivery or a malformed event (dropped, logged with ids only). Any
    failure (database down, a deadlock) pauses briefly and raises: nameko requeues the event."""
    try:
        payment = parse(payload)
    except InvalidPayment as exc:
        event_id = payload.get("event_id") if isinstance(payload, dict) else None
        log.error("dropped payment_succeeded %s: %s", str(event_id)[:MAX_ID], exc)
        return None
    try:
        with db.transaction() as session:
            if not first_delivery(session, ProcessedEvent, CONSUMER, payment.event_id):
                log.info("payment_succeeded %s already applied", payment.event_id)
                return None
            result = apply(session, payment, now)
            events.record(session, events.PAYMENT_APPLIED, {"payment_id": payment.payment_id, **result})
    except Exception as exc:
        log.error("payment %s not applied (%s); requeued", payment.payment_id, type(exc).__name__)
        eventlet.sleep(REQUEUE_DELAY_SECONDS)  # don't spin while the database is down
        if isinstance(exc, SQLAlchemyError):  # its message quotes the statement's parameters
            raise RetryLater(type(exc).__name__) from None
        raise
    log.info(
        "payment %s applied: %d confirmed, %d lost",
        payment.payment_id,
        len(result["confirmed"]),
        len(result["lost"]),
    )
    return result

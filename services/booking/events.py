"""Events booking publishes (through its outbox). Every payload has `event_id`; ids only, no
names. Dates are local dates (AAAA-MM-JJ), instants ISO 8601 UTC.

Booking events share one payload: {booking_id, child_id, activity_id, date, commune_id, family_id,
account_id (who booked), status, hold_expires_at (prepaid holds, else null), billing_mode ("prepaid" |
"postpaid", the activity's: billing invoices postpaid days at month end), activity_name}:
- booking_confirmed: a place is the child's (postpaid at validation; or promoted from the waiting list)
- booking_held: a prepaid place is held until hold_expires_at, waiting for the payment
- booking_waitlisted: no place left; + position (order of arrival on that day's waiting list)
- booking_promoted: a waitlisted booking got a freed place (followed by booking_confirmed or
  booking_held for the same booking, so consumers of those need not know about promotions);
  + child_first_name, activity_name (for the parent's email)
- booking_released: a prepaid hold expired unpaid; its place was freed
- booking_cancelled: cancelled at once: by the parent (auto-approved, an unpaid hold, leaving the
  list) or by an agent (+ by_agent: true). Billing credits or refunds these by the activity's rule.
  An approved request gives cancellation_decided instead (never both for one cancellation).
- booking_confirmed by an agent on behalf of a family: + by_agent: true
- booking_confirmed by a payment (billing's payment_succeeded): + paid: true, payment_id
- cancellation_requested: + request_id; an agent must decide (the place stays taken until then)
- cancellation_decided: {request_id, booking_id, child_id, activity_id, date, commune_id, family_id,
  account_id (the parent who asked), decision ("approved" | "rejected"), reason (the agent's, or
  null), billing_mode, decided_by, child_first_name, activity_name}
- attendance_marked: {booking_id, child_id, activity_id, date, commune_id, family_id, status
  ("present" | "absent" | "absent_justified"), marked_by, billing_mode, activity_name}
- booking_changed_by_agent: {commune_id, family_id, child_id, child_first_name, activity_name,
  activity_id, account_id (the agent), lines: [{date, action, outcome, reason}]}: one per on-behalf
  request, for the family's email (notify asks communes for the contact address)
Payments (answers to billing's payment_succeeded, payments.py):
- payment_applied: {payment_id, confirmed: [booking_id, ...], lost: [booking_id, ...]}: every booking
  id of the payment once, in its order; confirmed (now or before) or lost (no place left for a hold
  that expired, cancelled, unknown). Billing refunds the lost ones.
Cart:
- cart_validated: {account_id, idempotency_key, results (as validate_cart returns them), lines:
  [{child_first_name, activity_name, date, action, outcome, reason}]}: one summary email per
  validation
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from services.booking.models import Activity, Booking, OutboxEvent
from services.common.messaging import record_event

BOOKING_CONFIRMED = "booking_confirmed"
BOOKING_HELD = "booking_held"
BOOKING_WAITLISTED = "booking_waitlisted"
BOOKING_PROMOTED = "booking_promoted"
BOOKING_RELEASED = "booking_released"
BOOKING_CANCELLED = "booking_cancelled"
CANCELLATION_REQUESTED = "cancellation_requested"
CART_VALIDATED = "cart_validated"
CANCELLATION_DECIDED = "cancellation_decided"
ATTENDANCE_MARKED = "attendance_marked"
BOOKING_CHANGED_BY_AGENT = "booking_changed_by_agent"
PAYMENT_APPLIED = "payment_applied"


def booking_payload(session: Session, booking: Booking) -> dict[str, Any]:
    activity = session.get(Activity, booking.activity_id)  # an identity-map hit in most paths
    return {
        "booking_id": booking.id,
        "child_id": booking.child_id,
        "activity_id": booking.activity_id,
        "date": booking.date.isoformat(),
        "commune_id": booking.commune_id,
        "family_id": booking.family_id,
        "account_id": booking.account_id,
        "status": booking.status,
        "hold_expires_at": booking.hold_expires_at.isoformat() if booking.hold_expires_at else None,
        "billing_mode": activity.billing_mode if activity is not None else None,
        "activity_name": activity.name if activity is not None else None,
    }


def booking_event(session: Session, event_type: str, booking: Booking, **extra: Any) -> str:
    """Record one booking event in the caller's transaction (the outbox relay publishes it)."""
    return record_event(session, OutboxEvent, event_type, {**booking_payload(session, booking), **extra})


def cart_validated(
    session: Session,
    account_id: str,
    key: str,
    results: list[dict[str, Any]],
    lines: list[dict[str, Any]] | None = None,
) -> str:
    payload = {"account_id": account_id, "idempotency_key": key, "results": results, "lines": lines or []}
    return record_event(session, OutboxEvent, CART_VALIDATED, payload)


def record(session: Session, event_type: str, payload: dict[str, Any]) -> str:
    """Any other event of this module's list, in the caller's transaction."""
    return record_event(session, OutboxEvent, event_type, payload)

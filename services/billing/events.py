"""Events billing publishes (through its outbox). Every payload has `event_id`; ids only, no names.

- payment_succeeded: {payment_id, commune_id, family_id, account_id, amount_cents, total_cents,
  booking_ids}: booking confirms the days (and answers with payment_applied)
- payment_failed: {payment_id, commune_id, family_id, account_id, booking_ids, expires_at (the
  earliest hold's expiry)}: the holds stay until booking releases them at expiry
- refund_issued: {refund_id, payment_id, commune_id, family_id, account_id, amount_cents, reason
  ("cancellation" | "place_lost" | "agent"), booking_ids}
- credit_granted: {commune_id, family_id, account_id, amount_cents, booking_id}
"""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from services.billing.models import OutboxEvent, Payment, Refund
from services.common.messaging import record_event

PAYMENT_SUCCEEDED = "payment_succeeded"
PAYMENT_FAILED = "payment_failed"
REFUND_ISSUED = "refund_issued"
CREDIT_GRANTED = "credit_granted"

# what billing consumes (booking's events)
BOOKING = "booking"
PAYMENT_APPLIED = "payment_applied"
BOOKING_CANCELLED = "booking_cancelled"
CANCELLATION_DECIDED = "cancellation_decided"


def payment_succeeded(session: Session, payment: Payment, booking_ids: list[str]) -> str:
    return record_event(
        session,
        OutboxEvent,
        PAYMENT_SUCCEEDED,
        {
            "payment_id": payment.id,
            "commune_id": payment.commune_id,
            "family_id": payment.family_id,
            "account_id": payment.account_id,
            "amount_cents": payment.amount_cents,
            "total_cents": payment.total_cents,
            "booking_ids": booking_ids,
        },
    )


def payment_failed(session: Session, payment: Payment, booking_ids: list[str]) -> str:
    return record_event(
        session,
        OutboxEvent,
        PAYMENT_FAILED,
        {
            "payment_id": payment.id,
            "commune_id": payment.commune_id,
            "family_id": payment.family_id,
            "account_id": payment.account_id,
            "booking_ids": booking_ids,
            "expires_at": payment.expires_at.isoformat(),
        },
    )


def refund_issued(session: Session, refund: Refund) -> str:
    return record_event(
        session,
        OutboxEvent,
        REFUND_ISSUED,
        {
            "refund_id": refund.id,
            "payment_id": refund.payment_id,
            "commune_id": refund.commune_id,
            "family_id": refund.family_id,
            "account_id": refund.account_id,
            "amount_cents": refund.amount_cents,
            "reason": refund.reason,
            "booking_ids": list(refund.booking_ids or []),
        },
    )


def credit_granted(
    session: Session, commune_id: str, family_id: str, account_id: str, amount_cents: int, booking_id: str
) -> str:
    payload: dict[str, Any] = {
        "commune_id": commune_id,
        "family_id": family_id,
        "account_id": account_id,
        "amount_cents": amount_cents,
        "booking_id": booking_id,
    }
    return record_event(session, OutboxEvent, CREDIT_GRANTED, payload)

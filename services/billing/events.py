"""Events billing publishes (through its outbox). Every payload has `event_id`; ids only, no names.

- payment_succeeded: {payment_id, commune_id, family_id, account_id, amount_cents, total_cents,
  booking_ids}: booking confirms the days (and answers with payment_applied)
- payment_failed: {payment_id, commune_id, family_id, account_id, booking_ids, expires_at (the
  earliest hold's expiry)}: the holds stay until booking releases them at expiry
- refund_issued: {refund_id, payment_id, commune_id, family_id, account_id, amount_cents, reason
  ("cancellation" | "place_lost" | "agent"), booking_ids}
- credit_granted: {commune_id, family_id, account_id, amount_cents, booking_id}
- invoice_issued: {invoice_id, number, commune_id, family_id, month, kind ("invoice" | "credit_note"),
  total_cents, credit_applied_cents, amount_due_cents, due_date}: one per invoice or credit note
  of the month-end run (bulk-inserted, like any outbox row); notify emails the family
- invoice_paid: {invoice_id, number, commune_id, family_id, account_id, payment_id, amount_cents,
  paid_cents, total_cents, status}
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy.orm import Session

from services.billing.models import Invoice, OutboxEvent, Payment, Refund
from services.common import messaging
from services.common.messaging import record_event

PAYMENT_SUCCEEDED = "payment_succeeded"
PAYMENT_FAILED = "payment_failed"
REFUND_ISSUED = "refund_issued"
CREDIT_GRANTED = "credit_granted"
INVOICE_ISSUED = "invoice_issued"
INVOICE_PAID = "invoice_paid"

# what billing consumes (booking's events)
BOOKING = "booking"
PAYMENT_APPLIED = "payment_applied"
BOOKING_CANCELLED = "booking_cancelled"
CANCELLATION_DECIDED = "cancellation_decided"
BOOKING_CONFIRMED = "booking_confirmed"
BOOKING_RELEASED = "booking_released"
ATTENDANCE_MARKED = "attendance_marked"


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


def invoice_issued_payload(row: dict[str, Any]) -> dict[str, Any]:
    """From an invoices row as the run inserts it."""
    return {
        "invoice_id": row["id"],
        "number": row["number"],
        "commune_id": row["commune_id"],
        "family_id": row["family_id"],
        "month": row["month"],
        "kind": row["kind"],
        "total_cents": row["total_cents"],
        "credit_applied_cents": row["credit_applied_cents"],
        "amount_due_cents": row["total_cents"] - row["paid_cents"] if row["kind"] == "invoice" else 0,
        "due_date": row["due_date"].isoformat(),
    }


def record_many(
    session: Session, event_type: str, payloads: Iterable[dict[str, Any]], now: dt.datetime
) -> int:
    """Many events of one type in one INSERT (the month-end run: one per invoice), in the caller's
    transaction; the relay is woken after commit as for record_event."""
    return messaging.record_events(session, OutboxEvent, event_type, payloads, now)


def invoice_paid(session: Session, invoice: Invoice, payment: Payment) -> str:
    return record_event(
        session,
        OutboxEvent,
        INVOICE_PAID,
        {
            "invoice_id": invoice.id,
            "number": invoice.number,
            "commune_id": invoice.commune_id,
            "family_id": invoice.family_id,
            "account_id": payment.account_id,
            "payment_id": payment.id,
            "amount_cents": payment.amount_cents,
            "paid_cents": invoice.paid_cents,
            "total_cents": invoice.total_cents,
            "status": invoice.status,
        },
    )

"""booking's events that move money, each applied once (inbox, same transaction as its effects):
- payment_applied {payment_id, confirmed, lost}: the days whose place was lost are given back:
  refunded to the card (reason place_lost, provider key "lost-<payment_id>"), the rest as credit;
- booking_cancelled, and cancellation_decided with decision "approved", of a PAID day: the
  activity's rule: "refund" (to the card, key "cancel-<booking_id>"; what the card cannot take back,
  because part of the payment was credit, stays as credit), "credit" (credit_granted), "none".
A day is given back at most once (a conditional update of payment_days.returned_at). Provider calls
happen after commit (refunds.complete); this returns the refunds to send."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.billing import events, ledger, payments, pricing, refunds
from services.billing.models import (
    CANCELLATION,
    RULE_CREDIT,
    RULE_REFUND,
    SUCCEEDED,
    Payment,
    PaymentDay,
    ProcessedEvent,
    Tariff,
)
from services.common.messaging import first_delivery

CONSUMER = "billing"


def _take_day(session: Session, day: PaymentDay, reason: str, now: dt.datetime) -> bool:
    """Mark the day given back; False if it already was (another event, a concurrent delivery)."""
    result = session.execute(
        update(PaymentDay)
        .where(PaymentDay.id == day.id, PaymentDay.returned_at.is_(None))
        .values(returned_at=now, returned_reason=reason)
        .execution_options(synchronize_session=False)
    )
    return result.rowcount == 1


def _cancellation_entry(session: Session, payment: Payment, day: PaymentDay, now: dt.datetime) -> None:
    ledger.append(
        session,
        payment.commune_id,
        payment.family_id,
        CANCELLATION,
        day.unit_price_cents,
        f"Annulation du {day.date.strftime('%d/%m/%Y')}",
        now,
        payment_id=payment.id,
        booking_id=day.booking_id,
    )


def _paid_day(session: Session, booking_id: str) -> tuple[Payment, PaymentDay] | None:
    """The succeeded payment of this booking (locked) and its day, if the day was paid."""
    day = session.scalar(
        select(PaymentDay)
        .join(Payment, Payment.id == PaymentDay.payment_id)
        .where(PaymentDay.booking_id == booking_id, Payment.status == SUCCEEDED)
        .order_by(Payment.created_at)
        .limit(1)
    )
    if day is None:
        return None
    payment = payments.lock(session, day.payment_id)
    if payment is None or payment.status != SUCCEEDED:
        return None
    session.refresh(day)
    return payment, day


def on_cancellation(session: Session, payload: dict[str, Any], consumer: str, now: dt.datetime) -> list[str]:
    """A paid day was cancelled (booking_cancelled, or an approved cancellation_decided)."""
    if not first_delivery(session, ProcessedEvent, consumer, payload.get("event_id", "")):
        return []
    if payload.get("decision", "approved") != "approved":
        return []
    booking_id = payload.get("booking_id")
    if not isinstance(booking_id, str):
        return []
    found = _paid_day(session, booking_id)
    if found is None:
        return []
    payment, day = found
    tariff = session.get(Tariff, day.activity_id)
    rule = tariff.cancellation_refund if tariff is not None else RULE_REFUND
    if rule not in (RULE_REFUND, RULE_CREDIT) or day.unit_price_cents <= 0:
        return []
    if not _take_day(session, day, "cancellation", now):
        return []
    _cancellation_entry(session, payment, day, now)
    to_card = 0
    if rule == RULE_REFUND:
        to_card = pricing.refundable(day.unit_price_cents, payment.amount_cents, payment.refunded_cents)
    credit = day.unit_price_cents - to_card
    if credit > 0:
        events.credit_granted(
            session, payment.commune_id, payment.family_id, payment.account_id, credit, booking_id
        )
    if to_card <= 0:
        return []
    refund = refunds.reserve(
        session, payment, to_card, refunds.CANCELLATION, f"cancel-{booking_id}", [booking_id], None, now
    )
    return [refund.id]


def on_payment_applied(session: Session, payload: dict[str, Any], now: dt.datetime) -> list[str]:
    """booking's answer to payment_succeeded: the lost days are given back."""
    if not first_delivery(
        session, ProcessedEvent, f"{CONSUMER}.payment_applied", payload.get("event_id", "")
    ):
        return []
    lost = [b for b in payload.get("lost") or () if isinstance(b, str)]
    payment_id = payload.get("payment_id")
    if not lost or not isinstance(payment_id, str):
        return []
    payment = payments.lock(session, payment_id)
    if payment is None or payment.status != SUCCEEDED:
        return []
    days = [day for day in payments.days(session, payment.id) if day.booking_id in set(lost)]
    given: list[PaymentDay] = [
        day for day in days if day.unit_price_cents > 0 and _take_day(session, day, "place_lost", now)
    ]
    if not given:
        return []
    for day in given:
        _cancellation_entry(session, payment, day, now)
    price = pricing.total(day.unit_price_cents for day in given)
    to_card = pricing.refundable(price, payment.amount_cents, payment.refunded_cents)
    if price - to_card > 0:
        events.credit_granted(
            session,
            payment.commune_id,
            payment.family_id,
            payment.account_id,
            price - to_card,
            given[0].booking_id,
        )
    if to_card <= 0:
        return []
    refund = refunds.reserve(
        session,
        payment,
        to_card,
        refunds.PLACE_LOST,
        f"lost-{payment.id}",
        [day.booking_id for day in given],
        None,
        now,
    )
    return [refund.id]

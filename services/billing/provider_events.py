"""What a provider tells billing (a verified webhook, or the demo page), applied exactly once: the
payment row is locked (FOR UPDATE) and the event id recorded in processed_provider_events in the
same transaction as its effect, so a redelivered or concurrent copy changes nothing. Events may come
out of order: a failure after a success does not undo it; a success after a failure (the parent
tried another card) still counts, the money came in."""

from __future__ import annotations

import datetime as dt
import json
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.billing import events, payments
from services.billing.models import CANCELLED, FAILED, PENDING, SUCCEEDED, Payment, ProcessedProviderEvent
from services.billing.providers.base import PAYMENT_FAILED, PAYMENT_SUCCEEDED, ProviderEvent

log = logging.getLogger(__name__)

PROCESSED = "processed"
IGNORED = "ignored"
DUPLICATE = "duplicate"


def find_payment(session: Session, provider: str, provider_ref: str | None) -> Payment | None:
    if not provider_ref:
        return None
    return session.scalar(
        select(Payment).where(Payment.provider == provider, Payment.provider_ref == provider_ref)
    )


def _lock_target(
    session: Session, provider: str, event: ProviderEvent, payment_id: str | None
) -> Payment | None:
    if payment_id is not None:
        return payments.lock(session, payment_id)
    if not event.provider_ref:
        return None
    return session.scalar(
        select(Payment)
        .where(Payment.provider == provider, Payment.provider_ref == event.provider_ref)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def _first_time(
    session: Session, provider: str, event: ProviderEvent, payment_id: str | None, now: dt.datetime
) -> bool:
    if session.get(ProcessedProviderEvent, (provider, event.event_id)) is not None:
        return False
    try:
        with session.begin_nested():
            session.add(
                ProcessedProviderEvent(
                    provider=provider,
                    event_id=event.event_id,
                    payment_id=payment_id,
                    kind=event.kind[:30],
                    processed_at=now,
                )
            )
    except IntegrityError:  # a concurrent copy of this event (about no known payment) won
        return False
    return True


def apply(
    session: Session, provider: str, event: ProviderEvent, now: dt.datetime, payment_id: str | None = None
) -> str:
    """Apply one verified event; returns processed, ignored or duplicate."""
    payment = _lock_target(session, provider, event, payment_id)
    if not _first_time(session, provider, event, payment.id if payment else None, now):
        return DUPLICATE
    if payment is None:
        return IGNORED
    if event.kind == PAYMENT_SUCCEEDED:
        if payment.status == SUCCEEDED:
            return IGNORED
        if event.amount_cents is not None and event.amount_cents != payment.amount_cents:
            log.warning("payment %s: the provider reports another amount than asked", payment.id)
        payments.succeed(session, payment, now)
        return PROCESSED
    if event.kind == PAYMENT_FAILED:
        if payment.status != PENDING:  # already succeeded (out of order), failed or cancelled
            return IGNORED
        payment.status = FAILED
        payment.settled_at = now
        payment.updated_at = now
        events.payment_failed(
            session, payment, [day.booking_id for day in payments.days(session, payment.id)]
        )
        return PROCESSED
    return IGNORED


def stripe_payment_ref(body: str) -> str | None:
    """The PaymentIntent an (unverified) Stripe event is about, to find whose keys verify it. Nothing
    is trusted or written from this before the signature is checked."""
    try:
        obj = json.loads(body)["data"]["object"]
    except (ValueError, KeyError, TypeError):
        return None
    if not isinstance(obj, dict):
        return None
    if obj.get("object") == "payment_intent" and isinstance(obj.get("id"), str):
        return obj["id"]
    ref = obj.get("payment_intent")
    return ref if isinstance(ref, str) else None


def is_final(payment: Payment) -> bool:
    return payment.status in (SUCCEEDED, FAILED, CANCELLED)


def result(status: str) -> dict[str, Any]:
    return {"status": status}

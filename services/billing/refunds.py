"""Refunds to the card. Never above what was paid, even under concurrent requests: the payment row is
locked (FOR UPDATE) while refunded_cents is checked and raised, in the transaction that stores the
refund (UNIQUE(payment, idempotency key): a replay finds the first). The provider is called after
commit with the refund's stored key (never sent twice: the provider dedupes on it), then the
outcome is recorded: the ledger's refund entry and refund_issued on success; the reserved amount
released on refusal; left pending (retried by a timer) when the provider did not answer."""

from __future__ import annotations

import datetime as dt
import logging
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.billing import events, ledger, payments
from services.billing.checkout import provider_of
from services.billing.exceptions import PaymentNotConfigured, PaymentNotPaid, RefundExceedsPaid
from services.billing.models import (
    REFUND,
    REFUND_FAILED,
    REFUND_PENDING,
    REFUND_SUCCEEDED,
    SUCCEEDED,
    Payment,
    Refund,
)
from services.billing.providers.base import FAILED as PROVIDER_FAILED
from services.billing.providers.base import ProviderRefund, ProviderRejected, ProviderUnavailable
from services.billing.settings import BillingSettings
from services.common import clock
from services.common.db import WorkerDb, new_id
from services.common.errors import ValidationFailed

log = logging.getLogger(__name__)

AGENT = "agent"
CANCELLATION = "cancellation"
PLACE_LOST = "place_lost"
UNAVAILABLE = "unavailable"
MAX_KEY_LENGTH = 200
RETRY_AFTER = dt.timedelta(seconds=30)  # a pending refund younger than this is still being sent


def amount(value: Any) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not 0 < value <= 100_000_000:
        raise ValidationFailed(
            details={"fields": {"amount_cents": ["Le montant est un nombre entier de centimes positif."]}}
        )
    return value


def key(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_KEY_LENGTH:
        raise ValidationFailed(
            details={
                "fields": {
                    "idempotency_key": [
                        f"La clé d'idempotence est une chaîne de 1 à {MAX_KEY_LENGTH} caractères."
                    ]
                }
            }
        )
    return value


def find(session: Session, payment_id: str, idempotency_key: str) -> Refund | None:
    return session.scalar(
        select(Refund).where(Refund.payment_id == payment_id, Refund.idempotency_key == idempotency_key)
    )


def reserve(
    session: Session,
    payment: Payment,
    amount_cents: int,
    reason: str,
    idempotency_key: str,
    booking_ids: list[str],
    created_by: str | None,
    now: dt.datetime,
) -> Refund:
    """Store a refund of a LOCKED payment and reserve its amount; RefundExceedsPaid if it would go
    beyond the amount paid. A refund with this key already stored is returned as it is."""
    existing = find(session, payment.id, idempotency_key)
    if existing is not None:
        return existing
    if payment.status != SUCCEEDED:
        raise PaymentNotPaid()
    if payment.refunded_cents + amount_cents > payment.amount_cents:
        raise RefundExceedsPaid(details={"refundable_cents": payment.amount_cents - payment.refunded_cents})
    refund_id = new_id()
    refund = Refund(
        id=refund_id,
        payment_id=payment.id,
        commune_id=payment.commune_id,
        family_id=payment.family_id,
        account_id=payment.account_id,
        amount_cents=amount_cents,
        reason=reason,
        idempotency_key=idempotency_key,
        provider_idempotency_key=(
            idempotency_key if reason != AGENT else f"refund-{payment.id}-{idempotency_key}"
        )[:250],
        status=REFUND_PENDING,
        booking_ids=list(booking_ids),
        created_at=now,
        created_by=created_by,
    )
    payment.refunded_cents += amount_cents
    payment.updated_at = now
    session.add(refund)
    session.flush()
    return refund


def complete(db: WorkerDb, settings: BillingSettings, refund_id: str) -> None:
    """Send a pending refund to the provider and record the outcome (safe to run twice at once)."""
    with db.transaction() as session:
        refund = session.get(Refund, refund_id)
        if refund is None or refund.status != REFUND_PENDING:
            return
        payment = session.get(Payment, refund.payment_id)
        try:
            provider = provider_of(session, settings, payment)
        except PaymentNotConfigured:
            provider = None
        provider_ref, amount_cents, provider_key = (
            payment.provider_ref,
            refund.amount_cents,
            refund.provider_idempotency_key,
        )
    answer: ProviderRefund | str
    if provider is None or provider_ref is None:
        answer = UNAVAILABLE
    else:
        try:
            answer = provider.refund(provider_ref, amount_cents, provider_key)
        except ProviderUnavailable:
            log.warning("payment provider unavailable for refund %s", refund_id)
            answer = UNAVAILABLE
        except ProviderRejected as exc:
            log.warning("payment provider refused refund %s: %s", refund_id, exc.code)
            answer = PROVIDER_FAILED
    with db.transaction() as session:
        record_outcome(session, refund_id, answer, clock.now())


def record_outcome(session: Session, refund_id: str, answer: ProviderRefund | str, now: dt.datetime) -> None:
    refund = session.get(Refund, refund_id)
    if refund is None:
        return
    payment = payments.lock(session, refund.payment_id)  # lock order: the payment, then its refund
    refund = session.scalar(
        select(Refund)
        .where(Refund.id == refund_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )
    if payment is None or refund is None or refund.status != REFUND_PENDING:
        return
    if answer == UNAVAILABLE:
        refund.provider_error = UNAVAILABLE
        return
    status = answer.status if isinstance(answer, ProviderRefund) else PROVIDER_FAILED
    if status == PROVIDER_FAILED:
        refund.status = REFUND_FAILED
        refund.provider_error = "rejected"
        refund.settled_at = now
        payment.refunded_cents -= refund.amount_cents  # the money stays with the commune
        payment.updated_at = now
        return
    # succeeded, or accepted and pending at the provider (Stripe settles refunds later)
    assert isinstance(answer, ProviderRefund)
    refund.status = REFUND_SUCCEEDED
    refund.provider_ref = answer.provider_ref
    refund.provider_error = None
    refund.settled_at = now
    ledger.append(
        session,
        refund.commune_id,
        refund.family_id,
        REFUND,
        -refund.amount_cents,
        "Remboursement sur la carte",
        now,
        payment_id=refund.payment_id,
        refund_id=refund.id,
    )
    events.refund_issued(session, refund)


def pending_ids(session: Session, now: dt.datetime, limit: int = 100) -> list[str]:
    """Refunds whose provider call did not complete (provider down, process stopped)."""
    return list(
        session.scalars(
            select(Refund.id)
            .where(Refund.status == REFUND_PENDING, Refund.created_at < now - RETRY_AFTER)
            .order_by(Refund.created_at)
            .limit(limit)
        ).all()
    )


def view(refund: Refund) -> dict[str, Any]:
    return {
        "id": refund.id,
        "payment_id": refund.payment_id,
        "amount_cents": refund.amount_cents,
        "status": refund.status,
        "reason": refund.reason,
        "created_at": refund.created_at.isoformat(),
    }

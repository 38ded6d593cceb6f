"""Payments left pending after their holds expired (the parent never paid): cancelled at the
provider (so that a late card payment cannot go through: Stripe refuses to confirm a cancelled
PaymentIntent) and then in billing, which frees the credit they had set aside. A provider that
refuses the cancellation (the money came in meanwhile) leaves the payment pending: its webhook
will settle it, and a success after expiry still counts (booking confirms or reports the day lost)."""

from __future__ import annotations

import datetime as dt
import logging

from sqlalchemy import select

from services.billing import payments
from services.billing.checkout import provider_of
from services.billing.exceptions import PaymentNotConfigured
from services.billing.models import CANCELLED, PENDING, Payment
from services.billing.providers.base import ProviderError
from services.billing.settings import BillingSettings
from services.common import clock
from services.common.db import WorkerDb

log = logging.getLogger(__name__)

GRACE = dt.timedelta(minutes=5)  # a payment finished at the last second still reaches us


def expired_ids(db: WorkerDb, now: dt.datetime, limit: int = 100) -> list[str]:
    with db.transaction() as session:
        return list(
            session.scalars(
                select(Payment.id)
                .where(Payment.status == PENDING, Payment.expires_at < now - GRACE)
                .order_by(Payment.expires_at)
                .limit(limit)
            ).all()
        )


def cancel(db: WorkerDb, settings: BillingSettings, payment_id: str) -> bool:
    """Cancel one expired payment; False if it could not be cancelled now."""
    with db.transaction() as session:
        payment = session.get(Payment, payment_id)
        if payment is None or payment.status != PENDING:
            return False
        ref, key = payment.provider_ref, f"cancel-{payment.id}"
        try:
            provider = provider_of(session, settings, payment) if ref else None
        except PaymentNotConfigured:
            provider = None
    if provider is not None and ref is not None:
        try:
            provider.cancel_payment(ref, key)
        except ProviderError as exc:
            log.warning("payment %s: provider did not cancel (%s)", payment_id, type(exc).__name__)
            return False
    with db.transaction() as session:
        payment = payments.lock(session, payment_id)
        if payment is None or payment.status != PENDING:
            return False
        now = clock.now()
        payment.status = CANCELLED
        payment.settled_at = now
        payment.updated_at = now
    return True

"""The provider side of a payment, outside any transaction (no row lock is held during an HTTP call):
create it at the provider with the payment's stored idempotency key, then record the answer. A
provider that does not answer leaves the payment pending with provider_error "unavailable"; the
next replay or get_payment calls again with the same key (the provider dedupes on it)."""

from __future__ import annotations

import logging
from typing import Any

from sqlalchemy.orm import Session

from services.billing import events, payments
from services.billing.exceptions import PaymentNotConfigured
from services.billing.models import FAILED, PENDING, Invoice, Payment
from services.billing.payment_settings import choice
from services.billing.providers import provider_for
from services.billing.providers.base import (
    PaymentRequest,
    Provider,
    ProviderPayment,
    ProviderRejected,
    ProviderUnavailable,
)
from services.billing.settings import BillingSettings
from services.common import clock
from services.common.db import WorkerDb

log = logging.getLogger(__name__)

UNAVAILABLE = "unavailable"
REJECTED = "rejected"


def needs_provider(payment: Payment) -> bool:
    return payment.status == PENDING and payment.provider_ref is None


def provider_of(session: Session, settings: BillingSettings, payment: Payment) -> Provider:
    """The payment's provider with its commune's current keys (PaymentNotConfigured if the commune
    has moved to another provider since: the payment cannot be completed there)."""
    if payment.provider == "demo":
        return provider_for("demo", {}, settings.provider_config)
    found = choice(session, settings, payment.commune_id)
    if found.name != payment.provider:
        raise PaymentNotConfigured()
    return provider_for(found.name, found.settings, settings.provider_config)


def request_for(payment: Payment, day_count: int, invoice_number: str | None = None) -> PaymentRequest:
    description = f"Portail Famille : {day_count} jour(s) réservé(s)"
    if invoice_number is not None:
        description = f"Portail Famille : facture {invoice_number}"
    return PaymentRequest(
        payment_id=payment.id,
        amount_cents=payment.amount_cents,
        description=description,
        idempotency_key=payment.provider_idempotency_key,
        metadata={"payment_id": payment.id, "commune_id": payment.commune_id},
    )


def ensure_created(db: WorkerDb, settings: BillingSettings, payment_id: str) -> None:
    """Create the payment at its provider if that was not done yet (first call, or a retry)."""
    with db.transaction() as session:
        payment = session.get(Payment, payment_id)
        if payment is None or not needs_provider(payment):
            return
        try:
            provider = provider_of(session, settings, payment)
        except PaymentNotConfigured:
            provider = None
        invoice = session.get(Invoice, payment.invoice_id) if payment.invoice_id else None
        request = request_for(
            payment, len(payments.days(session, payment.id)), invoice.number if invoice else None
        )
    answer: ProviderPayment | str
    if provider is None:
        answer = UNAVAILABLE
    else:
        try:
            answer = provider.create_payment(request)
        except ProviderUnavailable:
            log.warning("payment provider unavailable for payment %s", payment_id)
            answer = UNAVAILABLE
        except ProviderRejected as exc:
            log.warning("payment provider refused payment %s: %s", payment_id, exc.code)
            answer = REJECTED
    with db.transaction() as session:
        record_answer(session, payment_id, answer)


def record_answer(session: Session, payment_id: str, answer: ProviderPayment | str) -> None:
    payment = payments.lock(session, payment_id)
    if payment is None or not needs_provider(payment):
        return  # a concurrent retry recorded it first, or a webhook settled it
    now = clock.now()
    payment.updated_at = now
    if answer == UNAVAILABLE:
        payment.provider_error = UNAVAILABLE
    elif answer == REJECTED:
        payment.provider_error = REJECTED
        payment.status = FAILED
        payment.settled_at = now
        events.payment_failed(
            session, payment, [day.booking_id for day in payments.days(session, payment.id)]
        )
    else:
        assert isinstance(answer, ProviderPayment)
        payment.provider_ref = answer.provider_ref
        payment.checkout_url = answer.checkout_url
        payment.client_secret = answer.client_secret
        payment.provider_error = None


def views(db: WorkerDb, payment_ids: list[str]) -> list[dict[str, Any]]:
    with db.transaction() as session:
        return [payments.full_view(session, session.get(Payment, pid)) for pid in payment_ids]

"""Issued invoices and credit notes: who may see them (the family's parents, the commune's staff;
NotFound for anyone else), their views, and their payment through the cart's payment path (same
payments table and provider webhooks, with invoice_id and no days): on success the ledger's
`payment`, paid_cents and status, and invoice_paid."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.billing import events, invoice_rules, ledger, payments
from services.billing.exceptions import InvoiceAlreadyPaid, InvoiceNotPayable
from services.billing.models import (
    INVOICE,
    PAYMENT,
    PENDING,
    Invoice,
    InvoiceLine,
    Payment,
)
from services.billing.payment_settings import choice
from services.billing.settings import BillingSettings
from services.common.db import new_id
from services.common.errors import NotFound

PAYMENT_MINUTES = 60  # an invoice payment left unpaid this long is cancelled (expiry.py)
MAX_LIST = 500
PAYMENT_INSTRUCTIONS = (
    "Payez en ligne sur le site des factures (carte bancaire), ou à l'accueil de la mairie "
    "(chèque à l'ordre du Trésor public, espèces) en rappelant le numéro de la facture."
)
CREDIT_NOTE_INSTRUCTIONS = (
    "Cet avoir est porté au crédit de votre compte famille : il sera déduit de vos prochaines factures."
)


def get(session: Session, invoice_id: Any) -> Invoice | None:
    return session.get(Invoice, invoice_id) if isinstance(invoice_id, str) and len(invoice_id) <= 64 else None


def item(invoice: Invoice, commune_name: str | None = None) -> dict[str, Any]:
    return {
        "id": invoice.id,
        "number": invoice.number,
        "kind": invoice.kind,
        "commune_id": invoice.commune_id,
        "commune": commune_name or invoice.commune_name,
        "family_id": invoice.family_id,
        "month": invoice.month,
        "total_cents": invoice.total_cents,
        "paid_cents": invoice.paid_cents,
        "credit_applied_cents": invoice.credit_applied_cents,
        "amount_due_cents": amount_due(invoice),
        "status": invoice.status,
        "due_date": invoice.due_date.isoformat(),
        "issued_at": invoice.issued_at.isoformat(),
    }


def amount_due(invoice: Invoice) -> int:
    return max(0, invoice.total_cents - invoice.paid_cents) if invoice.kind == INVOICE else 0


def lines(session: Session, invoice_id: str) -> list[InvoiceLine]:
    return list(
        session.scalars(
            select(InvoiceLine).where(InvoiceLine.invoice_id == invoice_id).order_by(InvoiceLine.position)
        ).all()
    )


def detail(
    session: Session, invoice: Invoice, commune_name: str | None = None, family_name: str | None = None
) -> dict[str, Any]:
    corrects = session.get(Invoice, invoice.corrects_id) if invoice.corrects_id else None
    return {
        **item(invoice, commune_name),
        "family": family_name or invoice.family_name,
        "lines": [
            {
                "child_id": line.child_id,
                "child_first_name": line.child_first_name,
                "activity_id": line.activity_id,
                "activity_name": line.activity_name,
                "unit_price_cents": line.unit_price_cents,
                "quantity": line.quantity,
                "amount_cents": line.amount_cents,
            }
            for line in lines(session, invoice.id)
        ],
        "payment_instructions": PAYMENT_INSTRUCTIONS if invoice.kind == INVOICE else CREDIT_NOTE_INSTRUCTIONS,
        "corrects": corrects.number if corrects is not None else None,
    }


def memberships(answer: Any) -> dict[str, tuple[str, str | None, str | None]]:
    """communes' list_memberships -> {family_id: (commune_id, commune name, family name)}."""
    found: dict[str, tuple[str, str | None, str | None]] = {}
    for entry in answer or ():
        family = entry.get("family") if isinstance(entry, dict) else None
        if (
            isinstance(family, dict)
            and isinstance(family.get("id"), str)
            and isinstance(entry.get("id"), str)
        ):
            found[family["id"]] = (entry["id"], entry.get("name"), family.get("name"))
    return found


def of_families(
    session: Session, families: Mapping[str, tuple[str, str | None, str | None]]
) -> list[dict[str, Any]]:
    """The invoices of these families (in their commune), newest first."""
    if not families:
        return []
    rows = session.scalars(
        select(Invoice)
        .where(Invoice.family_id.in_(sorted(families)))
        .order_by(Invoice.issued_at.desc(), Invoice.number.desc())
        .limit(MAX_LIST)
    ).all()
    return [
        item(row, families[row.family_id][1]) for row in rows if families[row.family_id][0] == row.commune_id
    ]


def lock(session: Session, invoice_id: str) -> Invoice | None:
    return session.scalar(
        select(Invoice)
        .where(Invoice.id == invoice_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def pay(
    session: Session,
    settings: BillingSettings,
    account_id: str,
    key: str,
    invoice_id: str,
    now: dt.datetime,
) -> Payment:
    """The payment of what is left to pay on the invoice: the one this key already made, else a
    pending one still payable for the same amount (a double click pays once), else a new one,
    stored before the provider is called (checkout.ensure_created)."""
    invoice = lock(session, invoice_id)
    if invoice is None:
        raise NotFound()
    existing = payments.made_by_key(session, account_id, key, invoice.commune_id, invoice.family_id)
    if existing is not None:
        return existing
    if invoice.kind != INVOICE:
        raise InvoiceNotPayable()
    due = amount_due(invoice)
    if due <= 0:
        raise InvoiceAlreadyPaid()
    pending = session.scalar(
        select(Payment)
        .where(
            Payment.invoice_id == invoice.id,
            Payment.status == PENDING,
            Payment.amount_cents == due,
            Payment.expires_at > now,
            Payment.provider_error.is_(None),
        )
        .order_by(Payment.created_at.desc())
        .limit(1)
    )
    if pending is not None:
        return pending
    payment_id = new_id()
    payment = Payment(
        id=payment_id,
        account_id=account_id,
        idempotency_key=key,
        commune_id=invoice.commune_id,
        family_id=invoice.family_id,
        invoice_id=invoice.id,
        provider=choice(session, settings, invoice.commune_id).name,
        status=PENDING,
        amount_cents=due,
        total_cents=due,
        credit_used_cents=0,
        refunded_cents=0,
        expires_at=now + dt.timedelta(minutes=PAYMENT_MINUTES),
        provider_idempotency_key=f"payment-{payment_id}",
        created_at=now,
        updated_at=now,
    )
    session.add(payment)
    session.flush()
    return payment


def apply_payment(session: Session, payment: Payment, now: dt.datetime) -> None:
    """An invoice's payment succeeded (the payment row locked): the ledger's payment, the invoice's
    paid_cents (never above its total: money paid twice stays on the family account as credit) and
    status, and invoice_paid."""
    ledger.append(
        session,
        payment.commune_id,
        payment.family_id,
        PAYMENT,
        payment.amount_cents,
        "Paiement en ligne de facture",
        now,
        payment_id=payment.id,
        invoice_id=payment.invoice_id,
    )
    invoice = lock(session, payment.invoice_id or "")
    if invoice is None:
        return
    invoice.paid_cents = min(invoice.total_cents, invoice.paid_cents + payment.amount_cents)
    invoice.status = invoice_rules.status(invoice.total_cents, invoice.paid_cents)
    events.invoice_paid(session, invoice, payment)


def numbers(session: Session, invoice_ids: Iterable[str]) -> dict[str, str]:
    wanted = sorted({i for i in invoice_ids if i})
    if not wanted:
        return {}
    return dict(session.execute(select(Invoice.id, Invoice.number).where(Invoice.id.in_(wanted))).all())


def commune_name(session: Session, commune_id: str) -> str | None:
    """The commune's name as stored on its latest invoice (when communes does not answer with it)."""
    return session.scalar(
        select(Invoice.commune_name)
        .where(Invoice.commune_id == commune_id, Invoice.commune_name.is_not(None))
        .order_by(Invoice.issued_at.desc())
        .limit(1)
    )

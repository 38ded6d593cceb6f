"""Exports for the finance office, per commune and month: invoices (one row per invoice line) and
payments/refunds. CSV that opens correctly in a French spreadsheet (UTF-8 with BOM, `;` separator,
decimal comma, CRLF), or JSON (amounts in integer cents). The answer is an envelope {content_type,
filename, body (text)} the gateway sends as is."""

from __future__ import annotations

import csv
import datetime as dt
import io
import json
from collections.abc import Iterable, Mapping
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.billing import invoice_rules
from services.billing.models import (
    KIND_CREDIT_NOTE,
    REFUND_SUCCEEDED,
    SUCCEEDED,
    Invoice,
    InvoiceLine,
    Payment,
    PaymentDay,
    Refund,
)
from services.common.errors import ValidationFailed

FORMATS = ("csv", "json")
BOM = "\ufeff"
INVOICE_HEADER = (
    "numero",
    "type",
    "date_emission",
    "echeance",
    "famille",
    "famille_id",
    "enfant",
    "activite",
    "prix_unitaire",
    "quantite",
    "montant",
    "total_facture",
    "statut",
)
PAYMENT_HEADER = ("date", "type", "montant", "prestataire", "paiement_id", "famille", "famille_id", "objet")
KIND_LABELS = {"invoice": "facture", KIND_CREDIT_NOTE: "avoir"}
STATUS_LABELS = {"issued": "émise", "partially_paid": "partiellement payée", "paid": "payée"}


def fmt(value: Any) -> str:
    if value not in FORMATS:
        raise ValidationFailed(details={"fields": {"format": ["Le format est csv ou json."]}})
    return value


def euros(cents: int) -> str:
    """12,50 (decimal comma, no thousands separator: spreadsheets read it as a number)."""
    sign = "-" if cents < 0 else ""
    return f"{sign}{abs(cents) // 100},{abs(cents) % 100:02d}"


def _csv(header: Iterable[str], rows: Iterable[Iterable[Any]]) -> str:
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n")
    writer.writerow(header)
    writer.writerows(rows)
    return BOM + out.getvalue()


def _envelope(kind: str, month: str, form: str, body: str) -> dict[str, Any]:
    return {
        "content_type": "text/csv; charset=utf-8" if form == "csv" else "application/json",
        "filename": f"{kind}-{month}.{form}",
        "body": body,
    }


def _local_day(moment: dt.datetime, timezone: str) -> str:
    return moment.astimezone(ZoneInfo(timezone)).date().isoformat()


def export_invoices(
    session: Session, commune_id: str, month: str, form: str, timezone: str = "Europe/Paris"
) -> dict[str, Any]:
    invoice_rules.month_bounds(month)
    form = fmt(form)
    rows = session.execute(
        select(Invoice, InvoiceLine)
        .join(InvoiceLine, InvoiceLine.invoice_id == Invoice.id)
        .where(Invoice.commune_id == commune_id, Invoice.month == month)
        .order_by(Invoice.number, InvoiceLine.position)
    ).all()
    if form == "csv":
        body = _csv(
            INVOICE_HEADER,
            (
                (
                    invoice.number,
                    KIND_LABELS[invoice.kind],
                    _local_day(invoice.issued_at, timezone),
                    invoice.due_date.isoformat(),
                    invoice.family_name or "",
                    invoice.family_id,
                    line.child_first_name,
                    line.activity_name,
                    euros(line.unit_price_cents),
                    line.quantity,
                    euros(line.amount_cents),
                    euros(invoice.total_cents),
                    STATUS_LABELS.get(invoice.status, invoice.status),
                )
                for invoice, line in rows
            ),
        )
        return _envelope("factures", month, form, body)
    documents: dict[str, dict[str, Any]] = {}
    for invoice, line in rows:
        document = documents.setdefault(
            invoice.id,
            {
                "id": invoice.id,
                "number": invoice.number,
                "kind": invoice.kind,
                "issued_at": invoice.issued_at.isoformat(),
                "due_date": invoice.due_date.isoformat(),
                "family": invoice.family_name,
                "family_id": invoice.family_id,
                "total_cents": invoice.total_cents,
                "credit_applied_cents": invoice.credit_applied_cents,
                "paid_cents": invoice.paid_cents,
                "status": invoice.status,
                "lines": [],
            },
        )
        document["lines"].append(
            {
                "child_id": line.child_id,
                "child_first_name": line.child_first_name,
                "activity_id": line.activity_id,
                "activity_name": line.activity_name,
                "unit_price_cents": line.unit_price_cents,
                "quantity": line.quantity,
                "amount_cents": line.amount_cents,
            }
        )
    body = json.dumps(
        {"commune_id": commune_id, "month": month, "invoices": list(documents.values())}, ensure_ascii=False
    )
    return _envelope("factures", month, form, body)


def _month_instants(month: str, timezone: str) -> tuple[dt.datetime, dt.datetime]:
    start, end = invoice_rules.month_bounds(month)
    zone = ZoneInfo(timezone)
    return (
        dt.datetime.combine(start, dt.time(), zone).astimezone(dt.UTC),
        dt.datetime.combine(end, dt.time(), zone).astimezone(dt.UTC),
    )


def export_payments(
    session: Session,
    commune_id: str,
    month: str,
    form: str,
    family_names: Mapping[str, str] | None = None,
    timezone: str = "Europe/Paris",
) -> dict[str, Any]:
    """Succeeded payments and refunds settled in the month (commune time), oldest first."""
    start, end = _month_instants(month, timezone)
    form = fmt(form)
    names = dict(family_names or {})
    payments = session.scalars(
        select(Payment)
        .where(
            Payment.commune_id == commune_id,
            Payment.status == SUCCEEDED,
            Payment.settled_at >= start,
            Payment.settled_at < end,
            Payment.amount_cents > 0,
        )
        .order_by(Payment.settled_at, Payment.id)
    ).all()
    refunds = session.scalars(
        select(Refund)
        .where(
            Refund.commune_id == commune_id,
            Refund.status == REFUND_SUCCEEDED,
            Refund.settled_at >= start,
            Refund.settled_at < end,
        )
        .order_by(Refund.settled_at, Refund.id)
    ).all()
    invoice_ids = {p.invoice_id for p in payments if p.invoice_id}
    numbers: dict[str, str] = {}
    if invoice_ids:
        for invoice in session.scalars(select(Invoice).where(Invoice.id.in_(sorted(invoice_ids)))).all():
            numbers[invoice.id] = invoice.number
            if invoice.family_name:
                names.setdefault(invoice.family_id, invoice.family_name)
    day_counts: dict[str, int] = {}
    booking_payments = [p.id for p in payments if not p.invoice_id]
    if booking_payments:
        for payment_id in session.scalars(
            select(PaymentDay.payment_id).where(PaymentDay.payment_id.in_(booking_payments))
        ):
            day_counts[payment_id] = day_counts.get(payment_id, 0) + 1
    entries: list[dict[str, Any]] = []
    for payment in payments:
        entries.append(
            {
                "date": payment.settled_at,
                "kind": "payment",
                "amount_cents": payment.amount_cents,
                "provider": payment.provider,
                "payment_id": payment.id,
                "family_id": payment.family_id,
                "invoice_number": numbers.get(payment.invoice_id or ""),
                "days": day_counts.get(payment.id, 0),
            }
        )
    for refund in refunds:
        payment = session.get(Payment, refund.payment_id)
        entries.append(
            {
                "date": refund.settled_at,
                "kind": "refund",
                "amount_cents": -refund.amount_cents,
                "provider": payment.provider if payment else "",
                "payment_id": refund.payment_id,
                "family_id": refund.family_id,
                "invoice_number": None,
                "days": len(refund.booking_ids or []),
            }
        )
    entries.sort(key=lambda e: (e["date"], e["payment_id"]))

    def subject(entry: dict[str, Any]) -> str:
        if entry["invoice_number"]:
            return f"facture {entry['invoice_number']}"
        return f"réservation ({entry['days']} jour(s))"

    if form == "csv":
        body = _csv(
            PAYMENT_HEADER,
            (
                (
                    _local_day(e["date"], timezone),
                    "paiement" if e["kind"] == "payment" else "remboursement",
                    euros(e["amount_cents"]),
                    e["provider"],
                    e["payment_id"],
                    names.get(e["family_id"], ""),
                    e["family_id"],
                    subject(e),
                )
                for e in entries
            ),
        )
        return _envelope("paiements", month, form, body)
    body = json.dumps(
        {
            "commune_id": commune_id,
            "month": month,
            "payments": [
                {
                    **{k: v for k, v in e.items() if k != "date"},
                    "date": e["date"].isoformat(),
                    "family": names.get(e["family_id"]),
                    "subject": subject(e),
                }
                for e in entries
            ],
        },
        ensure_ascii=False,
    )
    return _envelope("paiements", month, form, body)

"""What the demo payment page shows, in French: amounts as "12,50 €", dates as "lundi 7 décembre 2026".
Pure functions (no locale setting: the server's locale must not change what a parent reads)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from services.common.french import day_label, euros

STATUS_TEXT = {
    "pending": "En attente de paiement",
    "succeeded": "Paiement accepté",
    "failed": "Paiement refusé",
    "cancelled": "Paiement annulé",
}


def french_date(iso: str) -> str:
    try:
        day = dt.date.fromisoformat(iso)
    except (TypeError, ValueError):
        return str(iso)
    return day_label(day, weekday=True)


def page_context(payment: dict[str, Any]) -> dict[str, Any]:
    """The template's view of a payment: what is paid, for which days, and whether it can still be
    decided (only a pending payment shows the two buttons)."""
    days = sorted(payment.get("days") or [], key=lambda d: (str(d.get("date")), str(d.get("child_id"))))
    return {
        "payment_id": payment["id"],
        "amount": euros(payment.get("amount_cents") or 0),
        "total": euros(payment.get("total_cents") or 0),
        "credit_used": euros(payment["credit_used_cents"]) if payment.get("credit_used_cents") else None,
        "status": payment.get("status"),
        "status_text": STATUS_TEXT.get(str(payment.get("status")), str(payment.get("status"))),
        "pending": payment.get("status") == "pending",
        "invoice_number": payment.get("invoice_number") or ("" if payment.get("invoice_id") else None),
        "days": [
            {"date": french_date(str(d.get("date"))), "price": euros(d.get("unit_price_cents") or 0)}
            for d in days
        ],
    }

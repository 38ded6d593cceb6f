"""How amounts, months, dates and statuses read in French: "1 234,50 €", "novembre 2026",
"15 décembre 2026", "Payée". Jinja filters; plain functions so that they are unit-tested."""

from __future__ import annotations

import datetime as dt

from services.common import french
from services.common.french import month_label

__all__ = ["date_label", "euros", "month_label", "remaining_cents", "status_label"]

STATUSES = {
    "issued": "À payer",
    "partially_paid": "Partiellement payée",
    "paid": "Payée",
}


def euros(cents: object) -> str:
    """Integer cents as French euros: 1250 -> "12,50 €", -300 -> "-3,00 €"; "–" for anything else."""
    if isinstance(cents, bool) or not isinstance(cents, int):
        return "–"
    return french.euros(cents)


def date_label(value: object) -> str:
    """ "2026-12-15" (or an ISO datetime) -> "15 décembre 2026"; "1er" for the first of the month."""
    text = str(value or "")
    try:
        day = dt.date.fromisoformat(text[:10])
    except ValueError:
        return text
    return french.day_label(day)


def status_label(status: object) -> str:
    return STATUSES.get(str(status), str(status or ""))


def remaining_cents(invoice: dict[str, object]) -> int:
    """What is left to pay (never below zero): billing's `amount_due_cents`, else total − paid
    (billing's paid_cents already counts the credit applied at issue)."""
    due = invoice.get("amount_due_cents")
    if isinstance(due, int):
        return max(due, 0)
    total = invoice.get("total_cents")
    paid = invoice.get("paid_cents") or 0
    if not isinstance(total, int) or not isinstance(paid, int):
        return 0
    return max(total - paid, 0)


FILTERS = {"euros": euros, "month": month_label, "date": date_label, "status": status_label}

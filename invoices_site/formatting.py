"""How amounts, months, dates and statuses read in French: "1 234,50 €", "novembre 2026",
"15 décembre 2026", "Payée". Jinja filters; plain functions so that they are unit-tested."""

from __future__ import annotations

import datetime as dt

MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)
NARROW_NBSP = "\u202f"  # between thousands, as French typography (and CLDR) has it
NBSP = "\u00a0"  # before the euro sign, so that it never wraps alone

STATUSES = {
    "issued": "À payer",
    "partially_paid": "Partiellement payée",
    "paid": "Payée",
}


def euros(cents: object) -> str:
    """Integer cents as French euros: 1250 -> "12,50 €", -300 -> "-3,00 €"."""
    if isinstance(cents, bool) or not isinstance(cents, int):
        return "–"
    sign = "-" if cents < 0 else ""
    units, rest = divmod(abs(cents), 100)
    grouped = f"{units:,}".replace(",", NARROW_NBSP)
    return f"{sign}{grouped},{rest:02d}{NBSP}€"


def month_label(value: object) -> str:
    """ "2026-11" (or a date in that month) -> "novembre 2026"; anything else is shown as it came."""
    text = str(value or "")
    try:
        year, month = int(text[0:4]), int(text[5:7])
        if text[4] != "-" or not 1 <= month <= 12:
            raise ValueError(text)
    except (ValueError, IndexError):
        return text
    return f"{MONTHS[month - 1]} {year}"


def date_label(value: object) -> str:
    """ "2026-12-15" (or an ISO datetime) -> "15 décembre 2026"; "1er" for the first of the month."""
    text = str(value or "")
    try:
        day = dt.date.fromisoformat(text[:10])
    except ValueError:
        return text
    number = "1er" if day.day == 1 else str(day.day)
    return f"{number} {MONTHS[day.month - 1]} {day.year}"


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

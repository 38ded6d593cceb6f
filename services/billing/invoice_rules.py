"""Month-end invoicing, pure (no database, no broker): what a family's postpaid days of a month come
to, the difference with what was already issued (a corrective invoice for more, a credit note for
less), the credit applied at issue, an invoice's status. Money is integer cents.

What a day counts as is its activity's tariff's `invoice_basis`:
- "booked": every booked (not cancelled) day, except the days marked absent_justified;
- "attended": present days only (absent, absent_justified and unmarked days are not billed).
A postpaid activity without a tariff is not invoiced (the run reports it)."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field

from services.billing import pricing
from services.billing.pricing import TariffRule
from services.common.errors import ValidationFailed

BOOKED = "booked"
ATTENDED = "attended"
CANCELLED = "cancelled"
PRESENT = "present"
ABSENT_JUSTIFIED = "absent_justified"

ISSUED = "issued"
PARTIALLY_PAID = "partially_paid"
PAID = "paid"

_MONTH = re.compile(r"^(\d{4})-(0[1-9]|1[0-2])$")
MONTH_MESSAGE = "Le mois est au format AAAA-MM."

LineKey = tuple[str, str, int]  # (child_id, activity_id, unit_price_cents)


@dataclass(frozen=True)
class DayGroup:
    """`count` days of one child and activity in one state (one day when read one by one; the run
    reads them grouped by the database)."""

    child_id: str
    activity_id: str
    state: str
    attendance: str | None
    count: int = 1


@dataclass(frozen=True)
class Line:
    child_id: str
    activity_id: str
    unit_price_cents: int
    quantity: int
    child_first_name: str = ""
    activity_name: str = ""

    @property
    def amount_cents(self) -> int:
        return self.unit_price_cents * self.quantity


@dataclass(frozen=True)
class Plan:
    """What to issue for one family and month: a credit note (less than issued), an invoice (the
    first one, or a corrective one for more); either may be empty."""

    credit_note: tuple[Line, ...] = ()
    invoice: tuple[Line, ...] = ()
    skipped_activities: frozenset[str] = field(default_factory=frozenset)


def month_bounds(month: object) -> tuple[dt.date, dt.date]:
    """[first day, first day of the next month) of "AAAA-MM"; ValidationFailed otherwise."""
    found = _MONTH.match(month) if isinstance(month, str) else None
    if found is None:
        raise ValidationFailed(details={"fields": {"month": [MONTH_MESSAGE]}})
    year, number = int(found.group(1)), int(found.group(2))
    start = dt.date(year, number, 1)
    end = dt.date(year + (number == 12), number % 12 + 1, 1)
    return start, end


def previous_month(day: dt.date) -> str:
    first = day.replace(day=1) - dt.timedelta(days=1)
    return f"{first.year:04d}-{first.month:02d}"


def counts(state: str, attendance: str | None, basis: str) -> bool:
    """Whether one day is billed under this basis."""
    if state != BOOKED:
        return False
    if basis == ATTENDED:
        return attendance == PRESENT
    return attendance != ABSENT_JUSTIFIED


def due(
    days: Iterable[DayGroup], tariffs: Mapping[str, TariffRule], quotient: int | None
) -> tuple[dict[LineKey, int], frozenset[str]]:
    """What should be billed: {(child, activity, unit price): days}, and the activities left out
    because they have no tariff."""
    quantities: dict[LineKey, int] = {}
    skipped: set[str] = set()
    for day in days:
        rule = tariffs.get(day.activity_id)
        if rule is None:
            if day.state == BOOKED:
                skipped.add(day.activity_id)
            continue
        if not counts(day.state, day.attendance, rule.invoice_basis):
            continue
        key = (day.child_id, day.activity_id, pricing.unit_price(rule, quotient))
        quantities[key] = quantities.get(key, 0) + day.count
    return {key: qty for key, qty in quantities.items() if qty > 0}, frozenset(skipped)


def differences(
    should: Mapping[LineKey, int], issued: Mapping[LineKey, int]
) -> tuple[dict[LineKey, int], dict[LineKey, int]]:
    """(more, less): what to invoice on top of what was issued (invoices minus credit notes), and
    what to credit back. A free line (unit price 0) is billed like any other (the parent sees it)."""
    more: dict[LineKey, int] = {}
    less: dict[LineKey, int] = {}
    for key in sorted(set(should) | set(issued)):
        gap = should.get(key, 0) - issued.get(key, 0)
        if gap > 0:
            more[key] = gap
        elif gap < 0:
            less[key] = -gap
    return more, less


def lines(
    quantities: Mapping[LineKey, int],
    child_names: Mapping[str, str],
    activity_names: Mapping[str, str],
) -> tuple[Line, ...]:
    """Lines in a stable order: by child name, activity name, then price."""
    built = [
        Line(
            child_id=child_id,
            activity_id=activity_id,
            unit_price_cents=price,
            quantity=qty,
            child_first_name=child_names.get(child_id) or "",
            activity_name=activity_names.get(activity_id) or "",
        )
        for (child_id, activity_id, price), qty in quantities.items()
    ]
    built.sort(
        key=lambda ln: (
            ln.child_first_name,
            ln.child_id,
            ln.activity_name,
            ln.activity_id,
            ln.unit_price_cents,
        )
    )
    return tuple(built)


def plan(
    days: Iterable[DayGroup],
    tariffs: Mapping[str, TariffRule],
    quotient: int | None,
    issued: Mapping[LineKey, int],
    child_names: Mapping[str, str] | None = None,
    activity_names: Mapping[str, str] | None = None,
) -> Plan:
    should, skipped = due(days, tariffs, quotient)
    more, less = differences(should, issued)
    children, activities = child_names or {}, activity_names or {}
    return Plan(
        credit_note=lines(less, children, activities),
        invoice=lines(more, children, activities),
        skipped_activities=skipped,
    )


def total(items: Iterable[Line]) -> int:
    return sum(line.amount_cents for line in items)


def credit_applied(available_credit_cents: int, total_cents: int) -> int:
    """The family's credit (positive balance) used by an invoice at issue."""
    return max(0, min(available_credit_cents, total_cents))


def status(total_cents: int, paid_cents: int) -> str:
    if paid_cents >= total_cents:
        return PAID
    return PARTIALLY_PAID if paid_cents > 0 else ISSUED


def number(year: int, sequence: int) -> str:
    return f"{year}-{sequence:06d}"


def due_date(issue_date: dt.date, due_days: int) -> dt.date:
    return issue_date + dt.timedelta(days=due_days)

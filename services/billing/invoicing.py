"""The month-end run of a commune: one invoice per family that had postpaid days in the month, from
billing's own tables only (billable_days, tariffs, the ledger, what was already issued).

It works in chunks of families (in family id order), each chunk one transaction that first locks the
commune's number sequence, then reads what is due and what was issued for its families, issues the
differences and commits. So:
- numbers are gapless even with concurrent runs (the second waits for the lock, then sees what the
  first issued and finds nothing left to issue);
- a run killed half-way leaves whole chunks; the next run skips the families already invoiced (their
  lines match) and issues the rest: no duplicates, no gaps;
- a change after issue (a late attendance correction, a cancellation) gives a credit note (less) or a
  corrective invoice (more) with its own number; nothing issued is ever updated.
At issue, an invoice uses the family's available credit (credit_applied_cents; paid if it covers
all); the ledger gets `invoice` -total, a credit note `credit_note` +total; one invoice_issued event
per document. Reads are Core selects grouped by the database, writes bulk inserts: memory stays flat
(one chunk at a time) and 200,000 days take seconds."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from collections.abc import Callable, Mapping
from contextlib import AbstractContextManager
from dataclasses import dataclass, field
from typing import Any
from zoneinfo import ZoneInfo

from sqlalchemy import and_, distinct, func, insert, select, update
from sqlalchemy.orm import Session

from services.billing import events, invoice_rules, ledger, numbering
from services.billing.invoice_rules import DayGroup, Line, LineKey
from services.billing.models import (
    CREDIT_NOTE,
    INVOICE,
    ISSUED,
    KIND_CREDIT_NOTE,
    POSTPAID,
    BillableDay,
    Invoice,
    InvoiceLine,
    InvoiceRun,
    LedgerEntry,
)
from services.billing.pricing import TariffRule
from services.billing.tariffs import commune_rules
from services.common import clock
from services.common.db import new_id

Transaction = Callable[[], AbstractContextManager[Session]]
DEFAULT_TIMEZONE = "Europe/Paris"
DEFAULT_DUE_DAYS = 30
UNNAMED_ACTIVITY = "Activité"
UNNAMED_CHILD = "Enfant"


@dataclass
class _Run:
    """What every chunk needs, and what the run issued so far."""

    id: str
    commune_id: str
    month: str
    start: dt.date
    end: dt.date
    year: int
    now: dt.datetime
    due_date: dt.date
    tariffs: dict[str, TariffRule]
    profiles: Mapping[str, Mapping[str, Any]]
    commune_name: str | None
    invoices: int = 0
    credit_notes: int = 0
    total_cents: int = 0
    skipped: dict[str, str | None] = field(default_factory=dict)


def _quotient(profile: Mapping[str, Any] | None) -> int | None:
    value = (profile or {}).get("quotient_familial")
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def _families(session: Session, run: _Run) -> list[str]:
    """Every family with postpaid days in the month, or with documents of the month already issued."""
    with_days = session.scalars(
        select(distinct(BillableDay.family_id)).where(
            BillableDay.commune_id == run.commune_id,
            BillableDay.billing_mode == POSTPAID,
            BillableDay.date >= run.start,
            BillableDay.date < run.end,
        )
    ).all()
    with_documents = session.scalars(
        select(distinct(Invoice.family_id)).where(
            Invoice.commune_id == run.commune_id, Invoice.month == run.month
        )
    ).all()
    return sorted(set(with_days) | set(with_documents))


def run_month(
    transaction: Transaction,
    commune_id: str,
    month: str,
    profiles: dict[str, dict],
    now: dt.datetime,
    chunk_size: int = 500,
    *,
    due_days: int = DEFAULT_DUE_DAYS,
    commune_name: str | None = None,
    timezone: str = DEFAULT_TIMEZONE,
    started_by: str | None = None,
    after_chunk: Callable[[int], None] | None = None,
) -> dict[str, Any]:
    """Run the month for the commune. `transaction()` yields a session in a transaction that commits
    on exit; `profiles` is communes' billing_profiles answer ({family_id: {quotient_familial, name,
    children?: {child_id: first_name}}}). `after_chunk(index)` is called after each committed chunk
    (tests interrupt a run there). Returns the RPC's answer."""
    start, end = invoice_rules.month_bounds(month)
    issue_date = now.astimezone(ZoneInfo(timezone)).date()
    run = _Run(
        id=new_id(),
        commune_id=commune_id,
        month=month,
        start=start,
        end=end,
        year=issue_date.year,
        now=now,
        due_date=invoice_rules.due_date(issue_date, due_days),
        tariffs={},
        profiles=profiles,
        commune_name=commune_name,
    )
    with transaction() as session:
        session.execute(
            insert(InvoiceRun).values(
                id=run.id,
                commune_id=commune_id,
                month=month,
                started_by=started_by,
                started_at=now,
                invoices_issued=0,
                credit_notes_issued=0,
                total_cents=0,
            )
        )
        run.tariffs = commune_rules(session, commune_id)
        families = _families(session, run)
    size = max(1, int(chunk_size))
    for index, offset in enumerate(range(0, len(families), size)):
        chunk = families[offset : offset + size]
        with transaction() as session:
            _chunk(session, run, chunk[0], chunk[-1])
        if after_chunk is not None:
            after_chunk(index)
    with transaction() as session:
        session.execute(
            update(InvoiceRun)
            .where(InvoiceRun.id == run.id)
            .values(
                finished_at=clock.now(),
                invoices_issued=run.invoices,
                credit_notes_issued=run.credit_notes,
                total_cents=run.total_cents,
            )
        )
    return {
        "id": run.id,
        "commune_id": commune_id,
        "month": month,
        "invoices_issued": run.invoices,
        "credit_notes_issued": run.credit_notes,
        "total_cents": run.total_cents,
        "created": bool(run.invoices or run.credit_notes),
        "skipped_activities": [
            {"activity_id": activity_id, "activity_name": name}
            for activity_id, name in sorted(run.skipped.items())
        ],
    }


def _days(
    session: Session, run: _Run, first: str, last: str
) -> tuple[dict[str, list[DayGroup]], dict[str, dict[str, str]], dict[str, str]]:
    """The chunk's days grouped by (family, child, activity, state, attendance), the child names
    the projection knows (per family) and the activity names."""
    rows = session.execute(
        select(
            BillableDay.family_id,
            BillableDay.child_id,
            BillableDay.activity_id,
            BillableDay.state,
            BillableDay.attendance,
            func.count(),
            func.max(BillableDay.child_first_name),
            func.max(BillableDay.activity_name),
        )
        .where(
            BillableDay.commune_id == run.commune_id,
            BillableDay.family_id >= first,
            BillableDay.family_id <= last,
            BillableDay.date >= run.start,
            BillableDay.date < run.end,
            BillableDay.billing_mode == POSTPAID,
        )
        .group_by(
            BillableDay.family_id,
            BillableDay.child_id,
            BillableDay.activity_id,
            BillableDay.state,
            BillableDay.attendance,
        )
    ).all()
    days: dict[str, list[DayGroup]] = defaultdict(list)
    children: dict[str, dict[str, str]] = defaultdict(dict)
    activities: dict[str, str] = {}
    for family_id, child_id, activity_id, state, attendance, count, child_name, activity_name in rows:
        days[family_id].append(DayGroup(child_id, activity_id, state, attendance, int(count)))
        if child_name:
            children[family_id][child_id] = child_name
        if activity_name:
            activities[activity_id] = activity_name
    return days, children, activities


def _issued(
    session: Session, run: _Run, first: str, last: str
) -> tuple[dict[str, dict[LineKey, int]], dict[str, str], dict[str, dict[str, str]], dict[str, str]]:
    """What was issued for the chunk's families this month (invoices minus credit notes, per line
    key), each family's first invoice (what corrections relate to), and the names on those lines."""
    documents = and_(
        Invoice.commune_id == run.commune_id,
        Invoice.month == run.month,
        Invoice.family_id >= first,
        Invoice.family_id <= last,
    )
    rows = session.execute(
        select(
            Invoice.family_id,
            Invoice.kind,
            InvoiceLine.child_id,
            InvoiceLine.activity_id,
            InvoiceLine.unit_price_cents,
            func.sum(InvoiceLine.quantity),
            func.max(InvoiceLine.child_first_name),
            func.max(InvoiceLine.activity_name),
        )
        .join(InvoiceLine, InvoiceLine.invoice_id == Invoice.id)
        .where(documents)
        .group_by(
            Invoice.family_id,
            Invoice.kind,
            InvoiceLine.child_id,
            InvoiceLine.activity_id,
            InvoiceLine.unit_price_cents,
        )
    ).all()
    issued: dict[str, dict[LineKey, int]] = defaultdict(dict)
    children: dict[str, dict[str, str]] = defaultdict(dict)
    activities: dict[str, str] = {}
    for family_id, kind, child_id, activity_id, price, quantity, child_name, activity_name in rows:
        key = (child_id, activity_id, price)
        sign = -1 if kind == KIND_CREDIT_NOTE else 1
        issued[family_id][key] = issued[family_id].get(key, 0) + sign * int(quantity)
        children[family_id].setdefault(child_id, child_name)
        activities.setdefault(activity_id, activity_name)
    originals: dict[str, str] = {}
    for family_id, invoice_id in session.execute(
        select(Invoice.family_id, Invoice.id)
        .where(documents, Invoice.kind == INVOICE, Invoice.corrects_id.is_(None))
        .order_by(Invoice.issued_at)
    ).all():
        originals.setdefault(family_id, invoice_id)
    return issued, originals, children, activities


def _balances(session: Session, commune_id: str, first: str, last: str) -> dict[str, int]:
    rows = session.execute(
        select(LedgerEntry.family_id, func.sum(LedgerEntry.amount_cents))
        .where(
            LedgerEntry.commune_id == commune_id,
            LedgerEntry.family_id >= first,
            LedgerEntry.family_id <= last,
        )
        .group_by(LedgerEntry.family_id)
    ).all()
    return {family_id: int(total or 0) for family_id, total in rows}


def _names(profile: Mapping[str, Any] | None, *found: Mapping[str, str]) -> dict[str, str]:
    """Child first names: communes' profile first, then what billing already knows."""
    names: dict[str, str] = {}
    for source in reversed(found):
        names.update({k: v for k, v in source.items() if v})
    children = (profile or {}).get("children")
    if isinstance(children, Mapping):
        names.update({k: v for k, v in children.items() if isinstance(v, str) and v})
    return names


def _chunk(session: Session, run: _Run, first: str, last: str) -> None:
    next_number = numbering.lock(session, run.commune_id, run.year)  # first: see what others issued
    days, day_children, day_activities = _days(session, run, first, last)
    issued, originals, issued_children, issued_activities = _issued(session, run, first, last)
    activity_names = {**issued_activities, **day_activities}
    plans: list[tuple[str, invoice_rules.Plan]] = []
    for family_id in sorted(set(days) | set(issued)):
        profile = run.profiles.get(family_id)
        plan = invoice_rules.plan(
            days.get(family_id, ()),
            run.tariffs,
            _quotient(profile),
            issued.get(family_id, {}),
            _names(profile, day_children.get(family_id, {}), issued_children.get(family_id, {})),
            activity_names,
        )
        for activity_id in plan.skipped_activities:
            run.skipped.setdefault(activity_id, activity_names.get(activity_id))
        if invoice_rules.total(plan.invoice) > 0 or invoice_rules.total(plan.credit_note) > 0:
            plans.append((family_id, plan))
    if not plans:
        return
    credits = _available_credits(session, run, first, last, plans)
    documents: list[tuple[str, str, tuple[Line, ...]]] = []  # (family, kind, lines), numbering order
    for family_id, plan in plans:
        if invoice_rules.total(plan.credit_note) > 0:
            documents.append((family_id, KIND_CREDIT_NOTE, plan.credit_note))
        if invoice_rules.total(plan.invoice) > 0:
            documents.append((family_id, INVOICE, plan.invoice))
    numbers = numbering.take(session, run.commune_id, run.year, next_number, len(documents))
    invoice_rows, line_rows, ledger_rows = [], [], []
    for (family_id, kind, lines), number in zip(documents, numbers, strict=True):
        invoice_id = new_id()
        total = invoice_rules.total(lines)
        corrects = originals.get(family_id)
        applied = 0
        if kind == INVOICE:
            applied = invoice_rules.credit_applied(credits.get(family_id, 0), total)
            credits[family_id] = credits.get(family_id, 0) - applied
            if corrects is None:
                originals[family_id] = invoice_id  # this is the family's first invoice of the month
        elif family_id in credits:
            credits[family_id] += total  # usable by the corrective invoice issued next
        name = (run.profiles.get(family_id) or {}).get("name")
        row = {
            "id": invoice_id,
            "commune_id": run.commune_id,
            "family_id": family_id,
            "month": run.month,
            "kind": kind,
            "number": number,
            "total_cents": total,
            "credit_applied_cents": applied,
            "paid_cents": applied,
            "status": invoice_rules.status(total, applied) if kind == INVOICE else ISSUED,
            "issued_at": run.now,
            "due_date": run.due_date,
            "family_name": name[:200] if isinstance(name, str) and name else None,
            "commune_name": run.commune_name,
            "corrects_id": corrects,
            "run_id": run.id,
        }
        invoice_rows.append(row)
        line_rows.extend(
            {
                "invoice_id": invoice_id,
                "position": position,
                "child_id": line.child_id,
                "child_first_name": (line.child_first_name or UNNAMED_CHILD)[:100],
                "activity_id": line.activity_id,
                "activity_name": (line.activity_name or UNNAMED_ACTIVITY)[:200],
                "unit_price_cents": line.unit_price_cents,
                "quantity": line.quantity,
                "amount_cents": line.amount_cents,
            }
            for position, line in enumerate(lines)
        )
        label = "Facture" if kind == INVOICE else "Avoir"
        ledger_rows.append(
            {
                "commune_id": run.commune_id,
                "family_id": family_id,
                "kind": INVOICE if kind == INVOICE else CREDIT_NOTE,
                "amount_cents": -total if kind == INVOICE else total,
                "invoice_id": invoice_id,
                "description": f"{label} {number} ({run.month})",
                "created_at": run.now,
            }
        )
        if kind == INVOICE:
            run.invoices += 1
            run.total_cents += total
        else:
            run.credit_notes += 1
            run.total_cents -= total
    session.execute(insert(Invoice), invoice_rows)
    session.execute(insert(InvoiceLine), line_rows)
    session.execute(insert(LedgerEntry), ledger_rows)
    events.record_many(
        session, events.INVOICE_ISSUED, map(events.invoice_issued_payload, invoice_rows), clock.now()
    )


def _available_credit_families(
    balances: Mapping[str, int], plans: list[tuple[str, invoice_rules.Plan]]
) -> list[str]:
    """Families whose invoice may use credit: a positive balance (or a credit note issued now)."""
    return sorted(
        family_id
        for family_id, plan in plans
        if invoice_rules.total(plan.invoice) > 0
        and balances.get(family_id, 0) + invoice_rules.total(plan.credit_note) > 0
    )


def _available_credits(
    session: Session, run: _Run, first: str, last: str, plans: list[tuple[str, invoice_rules.Plan]]
) -> dict[str, int]:
    """family -> balance its invoice may use (before this chunk's credit notes; may be negative: only
    a positive remainder is applied). The few families with credit are locked as a cart payment locks
    them (never the same credit spent twice), and their balance read again under the lock, minus
    what pending payments set aside. Families left out have no credit."""
    found: dict[str, int] = {}
    for family_id in _available_credit_families(_balances(session, run.commune_id, first, last), plans):
        ledger.lock_family(session, run.commune_id, family_id, run.now)
        found[family_id] = ledger.balance(session, run.commune_id, family_id) - ledger.reserved_credit(
            session, run.commune_id, family_id, run.now
        )
    return found


def scheduled_month(now: dt.datetime, day: int, hour: int, timezone: str = DEFAULT_TIMEZONE) -> str | None:
    """The month the timer runs now: the previous one, on `day` of the month from `hour` (local)."""
    local = now.astimezone(ZoneInfo(timezone))
    if local.day != day or local.hour < hour:
        return None
    return invoice_rules.previous_month(local.date())


def communes_to_run(session: Session, month: str) -> list[str]:
    """Communes with postpaid days in the month that the timer has not yet run to the end."""
    start, end = invoice_rules.month_bounds(month)
    with_days = session.scalars(
        select(distinct(BillableDay.commune_id)).where(
            BillableDay.billing_mode == POSTPAID, BillableDay.date >= start, BillableDay.date < end
        )
    ).all()
    done = session.scalars(
        select(distinct(InvoiceRun.commune_id)).where(
            InvoiceRun.month == month, InvoiceRun.started_by.is_(None), InvoiceRun.finished_at.is_not(None)
        )
    ).all()
    return sorted(set(with_days) - set(done))

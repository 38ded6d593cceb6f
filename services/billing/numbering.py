"""Invoice numbers, sequential per commune and year with no gap (`2026-000042`; credit notes share
the sequence). The sequence row is locked (PostgreSQL: FOR UPDATE; SQLite: the INSERT takes the
database's write lock) by a chunk of the month-end run until it commits: numbers taken by a chunk
that rolls back are never used, and two runs never take the same number."""

from __future__ import annotations

from sqlalchemy import update
from sqlalchemy.orm import Session

from services.billing.invoice_rules import number
from services.billing.models import InvoiceSequence
from services.common.db import lock_or_create


def lock(session: Session, commune_id: str, year: int) -> int:
    """The next number of (commune, year), its row locked until the transaction ends."""
    keys = {"commune_id": commune_id, "year": year}
    row = lock_or_create(session, InvoiceSequence, keys, {"next_number": 1})
    return int(row.next_number)


def take(session: Session, commune_id: str, year: int, next_number: int, count: int) -> list[str]:
    """`count` numbers from next_number (read by lock() in this transaction), and the row moved on."""
    if count <= 0:
        return []
    session.execute(
        update(InvoiceSequence)
        .where(InvoiceSequence.commune_id == commune_id, InvoiceSequence.year == year)
        .values(next_number=next_number + count)
    )
    return [number(year, n) for n in range(next_number, next_number + count)]

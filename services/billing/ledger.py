"""The family account: entries per (commune, family), never changed (append-only triggers); the
balance is their sum (positive: the family has credit). The credit a new payment may use is the
balance minus what pending payments already set aside, read under the family account's row lock."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.billing.models import PENDING, FamilyAccount, LedgerEntry, Payment
from services.common.db import lock_or_create


def append(
    session: Session,
    commune_id: str,
    family_id: str,
    kind: str,
    amount_cents: int,
    description: str,
    now: dt.datetime,
    payment_id: str | None = None,
    booking_id: str | None = None,
    refund_id: str | None = None,
    invoice_id: str | None = None,
) -> LedgerEntry:
    entry = LedgerEntry(
        commune_id=commune_id,
        family_id=family_id,
        kind=kind,
        amount_cents=int(amount_cents),
        description=description[:200],
        payment_id=payment_id,
        booking_id=booking_id,
        refund_id=refund_id,
        invoice_id=invoice_id,
        created_at=now,
    )
    session.add(entry)
    return entry


def balance(session: Session, commune_id: str, family_id: str) -> int:
    total = session.scalar(
        select(func.coalesce(func.sum(LedgerEntry.amount_cents), 0)).where(
            LedgerEntry.commune_id == commune_id, LedgerEntry.family_id == family_id
        )
    )
    return int(total or 0)


def lock_family(session: Session, commune_id: str, family_id: str, now: dt.datetime) -> None:
    """Serialize the payments of one family account (created on first use)."""
    keys = {"commune_id": commune_id, "family_id": family_id}
    lock_or_create(session, FamilyAccount, keys, {"created_at": now})


def reserved_credit(session: Session, commune_id: str, family_id: str, now: dt.datetime) -> int:
    """Credit promised to payments still pending and not expired (it is spent when they succeed;
    an abandoned payment stops holding it once its holds have expired)."""
    total = session.scalar(
        select(func.coalesce(func.sum(Payment.credit_used_cents), 0)).where(
            Payment.commune_id == commune_id,
            Payment.family_id == family_id,
            Payment.status == PENDING,
            Payment.expires_at > now,
        )
    )
    return int(total or 0)


def available_credit(session: Session, commune_id: str, family_id: str, now: dt.datetime) -> int:
    """Call under lock_family: the positive balance not yet promised to a pending payment."""
    reserved = reserved_credit(session, commune_id, family_id, now)
    return max(0, balance(session, commune_id, family_id) - reserved)


def entries(session: Session, commune_id: str, family_id: str, limit: int = 500) -> list[dict[str, Any]]:
    rows = session.scalars(
        select(LedgerEntry)
        .where(LedgerEntry.commune_id == commune_id, LedgerEntry.family_id == family_id)
        .order_by(LedgerEntry.id.desc())
        .limit(limit)
    ).all()
    return [
        {
            "id": str(row.id),
            "kind": row.kind,
            "amount_cents": row.amount_cents,
            "payment_id": row.payment_id,
            "booking_id": row.booking_id,
            "description": row.description,
            "created_at": row.created_at.isoformat(),
        }
        for row in rows
    ]

"""Tariffs per activity, set by the commune's staff. The activity's commune is checked by booking
(`get_activity`, before the transaction); here only the row is written and read."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.billing.models import Tariff
from services.billing.pricing import DEFAULT_BASIS, TariffRule
from services.common.errors import NotFound


def rule_of(row: Tariff | None) -> TariffRule | None:
    if row is None:
        return None
    bands = None
    if row.bands is not None:
        bands = tuple((band["qf_max"], int(band["unit_price_cents"])) for band in row.bands)
    return TariffRule(
        unit_price_cents=row.unit_price_cents,
        bands=bands,
        cancellation_refund=row.cancellation_refund,
        invoice_basis=row.invoice_basis or DEFAULT_BASIS,
    )


def view(row: Tariff) -> dict[str, Any]:
    return {
        "activity_id": row.activity_id,
        "commune_id": row.commune_id,
        **rule_of(row).as_fields(),  # type: ignore[union-attr]
        "updated_at": row.updated_at.isoformat(),
    }


def set_tariff(
    session: Session,
    commune_id: str,
    activity_id: str,
    rule: TariffRule,
    account_id: str | None,
    now: dt.datetime,
) -> dict[str, Any]:
    fields = rule.as_fields()
    row = session.get(Tariff, activity_id, with_for_update=True)
    if row is None:
        row = Tariff(activity_id=activity_id, commune_id=commune_id)
        session.add(row)
    elif row.commune_id != commune_id:  # booking said the activity is this commune's
        raise NotFound()
    row.unit_price_cents = fields["unit_price_cents"]
    row.bands = fields["bands"]
    row.cancellation_refund = fields["cancellation_refund"]
    row.invoice_basis = fields["invoice_basis"]
    row.updated_at = now
    row.updated_by = account_id
    session.flush()
    return view(row)


def get_tariff(session: Session, commune_id: str, activity_id: Any) -> dict[str, Any]:
    row = session.get(Tariff, activity_id) if isinstance(activity_id, str) else None
    if row is None or row.commune_id != commune_id:
        raise NotFound()
    return view(row)


def rules(session: Session, activity_ids: Iterable[str]) -> dict[str, tuple[str, TariffRule]]:
    """activity_id -> (its commune, its rule), for the activities that have a tariff."""
    wanted = sorted({a for a in activity_ids if isinstance(a, str)})
    if not wanted:
        return {}
    rows = session.scalars(select(Tariff).where(Tariff.activity_id.in_(wanted))).all()
    return {row.activity_id: (row.commune_id, rule_of(row)) for row in rows}  # type: ignore[misc]


def commune_rules(session: Session, commune_id: str) -> dict[str, TariffRule]:
    """activity_id -> rule, for every tariff of the commune (the month-end run reads them once)."""
    rows = session.scalars(select(Tariff).where(Tariff.commune_id == commune_id)).all()
    return {row.activity_id: rule_of(row) for row in rows}  # type: ignore[misc]

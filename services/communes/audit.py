"""The audit trail: who (account id) read or changed which family or child record, in which
commune, when. Ids and action names only, never names, emails or codes. Written in the
transaction of the read or change it records; the table refuses UPDATE and DELETE."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common import clock
from services.communes.models import AuditEntry

FAMILY = "family"
CHILD = "child"
COMMUNE = "commune"


def record(
    session: Session,
    account_id: str | None,
    role: str,
    action: str,
    entity_type: str,
    entity_id: str | None,
    commune_id: str,
) -> None:
    session.add(
        AuditEntry(
            at=clock.now(),
            account_id=account_id,
            role=role,
            action=action,
            entity_type=entity_type,
            entity_id=entity_id,
            commune_id=commune_id,
        )
    )


def entries(session: Session, commune_id: str, limit: int) -> list[dict[str, Any]]:
    """The commune's newest entries first."""
    rows = session.scalars(
        select(AuditEntry)
        .where(AuditEntry.commune_id == commune_id)
        .order_by(AuditEntry.id.desc())
        .limit(limit)
    ).all()
    return [
        {
            "id": str(row.id),
            "at": row.at.isoformat(),
            "account_id": row.account_id,
            "role": row.role,
            "action": row.action,
            "entity_type": row.entity_type,
            "entity_id": row.entity_id,
            "commune_id": row.commune_id,
        }
        for row in rows
    ]

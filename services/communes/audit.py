"""The audit trail: who (account id) read or changed which family or child record, in which
commune, when. Ids and action names only, never names, emails or codes. Written in the
transaction of the read or change it records; the table refuses UPDATE and DELETE."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from services.common import audit as common_audit
from services.communes.models import AuditEntry

FAMILY = "family"
CHILD = "child"
COMMUNE = "commune"
ROSTER = "roster"  # one entry per roster read; the children's ids are not listed


def record(
    session: Session,
    account_id: str | None,
    role: str,
    action: str,
    entity_type: str,
    entity_id: str | None,
    commune_id: str,
) -> None:
    common_audit.record(
        session,
        AuditEntry,
        account_id=account_id,
        role=role,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        commune_id=commune_id,
    )


def entries(session: Session, commune_id: str, limit: int) -> list[dict[str, Any]]:
    """The commune's newest entries first."""
    return common_audit.entries(session, AuditEntry, commune_id, limit)

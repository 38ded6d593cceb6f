"""The agents' audit trail in booking: who (account id and role) booked, cancelled, decided or
marked what, for which child, in which commune, when. Ids and action names only. Written in the
transaction of the act it records; the table refuses UPDATE and DELETE (triggers)."""

from __future__ import annotations

from typing import Any

from sqlalchemy.orm import Session

from services.booking.models import BookingAuditEntry
from services.common import audit as common_audit

BOOKING = "booking"
CANCELLATION_REQUEST = "cancellation_request"
ATTENDANCE = "attendance"
ROSTER = "roster"

BOOK_ON_BEHALF = "book_on_behalf"
CANCEL_ON_BEHALF = "cancel_on_behalf"
APPROVE_CANCELLATION = "approve_cancellation"
REJECT_CANCELLATION = "reject_cancellation"
MARK_ATTENDANCE = "mark_attendance"
READ_ROSTER = "read_roster"


def record(
    session: Session,
    account_id: str | None,
    role: str,
    action: str,
    entity_type: str,
    entity_id: str | None,
    commune_id: str,
    child_id: str | None = None,
) -> None:
    common_audit.record(
        session,
        BookingAuditEntry,
        account_id=account_id,
        role=role,
        action=action,
        entity_type=entity_type,
        entity_id=entity_id,
        child_id=child_id,
        commune_id=commune_id,
    )


def entries(session: Session, commune_id: str, limit: int = 100) -> list[dict[str, Any]]:
    """The commune's newest entries first."""
    return common_audit.entries(session, BookingAuditEntry, commune_id, limit)

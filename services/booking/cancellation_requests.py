"""Agents decide the cancellation requests of activities whose cancellations they approve
(`cancellation_approval: "agent"`). A request is decided once: the conditional update from
`pending` makes a second decision (or two agents at once) ALREADY_DECIDED.

- approve: the booking is cancelled, its place freed and the day's waiting list promoted (as an
  automatic cancellation does);
- reject: the booking is confirmed again, with the agent's reason for the parent.
Either way `cancellation_decided` is recorded (billing credits or refunds an approval by the
activity's rule; notify emails the parent) and the act is audited. Lock order as everywhere: the
day (occurrence) first, then its bookings."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select, update
from sqlalchemy.orm import Session

from services.booking import access, audit, capacity, days, events
from services.booking.exceptions import AlreadyDecided
from services.booking.models import (
    CANCEL_REQUESTED,
    CANCELLED,
    CONFIRMED,
    Activity,
    Booking,
    CancellationRequest,
)
from services.common.context import Caller
from services.common.errors import NotFound, ValidationFailed

PENDING = "pending"
APPROVED = "approved"
REJECTED = "rejected"
STATUSES = (PENDING, APPROVED, REJECTED)
DECISIONS = {"approve": APPROVED, "reject": REJECTED}
MAX_REASON = 500
MAX_LISTED = 500


def _view(request: CancellationRequest, booking: Booking, activity: Activity) -> dict[str, Any]:
    return {
        "id": request.id,
        "booking_id": booking.id,
        "child_id": booking.child_id,
        "child_first_name": booking.child_first_name,
        "family_id": booking.family_id,
        "activity_id": activity.id,
        "activity_name": activity.name,
        "date": booking.date.isoformat(),
        "status": request.status,
        "reason": request.reason,
        "requested_by": request.account_id,
        "created_at": request.created_at.isoformat(),
        "decided_at": request.decided_at.isoformat() if request.decided_at else None,
        "decided_by": request.decided_by,
    }


def list_requests(
    session: Session, caller: Caller, commune_id: Any, status: Any = PENDING
) -> list[dict[str, Any]]:
    """The commune's requests with this status, oldest first (pending: the agents' queue)."""
    access.staff_role(caller, commune_id)
    if status not in STATUSES:
        raise ValidationFailed(
            details={"fields": {"status": ["Valeur attendue parmi : " + ", ".join(STATUSES) + "."]}}
        )
    rows = session.execute(
        select(CancellationRequest, Booking, Activity)
        .join(Booking, Booking.id == CancellationRequest.booking_id)
        .join(Activity, Activity.id == Booking.activity_id)
        .where(CancellationRequest.commune_id == commune_id, CancellationRequest.status == status)
        .order_by(CancellationRequest.created_at, CancellationRequest.id)
        .limit(MAX_LISTED)
    ).all()
    return [_view(request, booking, activity) for request, booking, activity in rows]


def reason_text(reason: Any) -> str | None:
    if reason is None:
        return None
    if not isinstance(reason, str) or len(reason) > MAX_REASON:
        raise ValidationFailed(details={"fields": {"reason": [f"Au plus {MAX_REASON} caractères."]}})
    return reason.strip() or None


def decided_payload(
    request: CancellationRequest, booking: Booking, activity: Activity, decision: str
) -> dict[str, Any]:
    return {
        "request_id": request.id,
        "booking_id": booking.id,
        "child_id": booking.child_id,
        "activity_id": activity.id,
        "date": booking.date.isoformat(),
        "commune_id": booking.commune_id,
        "family_id": booking.family_id,
        "account_id": request.account_id,
        "decision": decision,
        "reason": request.reason,
        "billing_mode": activity.billing_mode,
        "decided_by": request.decided_by,
        "child_first_name": booking.child_first_name,
        "activity_name": activity.name,
    }


def close_request(
    session: Session,
    request: CancellationRequest,
    decision: str,
    account_id: str | None,
    reason: str | None,
    now: dt.datetime,
) -> None:
    """pending -> decision by conditional update (AlreadyDecided if it was decided meanwhile)."""
    changed = session.execute(
        update(CancellationRequest)
        .where(CancellationRequest.id == request.id, CancellationRequest.status == PENDING)
        .values(status=decision, decided_at=now, decided_by=account_id, reason=reason)
        .execution_options(synchronize_session=False)
    ).rowcount
    if changed != 1:
        raise AlreadyDecided()
    session.refresh(request)


def decide(
    session: Session,
    caller: Caller,
    commune_id: Any,
    request_id: Any,
    decision: Any,
    reason: Any,
    now: dt.datetime,
) -> dict[str, Any]:
    """Approve or reject a pending request (`decision`: "approve" | "reject")."""
    role = access.staff_role(caller, commune_id)
    if decision not in DECISIONS:
        raise ValidationFailed(details={"fields": {"decision": ["approve ou reject."]}})
    reason = reason_text(reason)
    request = session.get(CancellationRequest, request_id) if isinstance(request_id, str) else None
    if request is None or request.commune_id != commune_id:
        raise NotFound()
    booking = session.get(Booking, request.booking_id)
    capacity.lock(session, booking.occurrence_id)  # the day first, then its bookings
    session.refresh(request)
    session.refresh(booking)
    if request.status != PENDING:
        raise AlreadyDecided()
    outcome = DECISIONS[decision]
    close_request(session, request, outcome, caller.account_id, reason, now)
    activity = session.get(Activity, booking.activity_id)
    if booking.status == CANCEL_REQUESTED:
        if outcome == APPROVED:
            booking.status = CANCELLED
            booking.updated_at = now
            session.flush()
            capacity.free_place(session, booking.occurrence_id)
            capacity.promote(
                session, days.load_one(session, activity), booking.occurrence_id, booking.date, now
            )
        else:
            booking.status = CONFIRMED
            booking.updated_at = now
            session.flush()
    events.record(session, events.CANCELLATION_DECIDED, decided_payload(request, booking, activity, outcome))
    action = audit.APPROVE_CANCELLATION if outcome == APPROVED else audit.REJECT_CANCELLATION
    audit.record(
        session,
        caller.account_id,
        role,
        action,
        audit.CANCELLATION_REQUEST,
        request.id,
        request.commune_id,
        booking.child_id,
    )
    return _view(request, booking, activity)


def pending_for(session: Session, booking_id: str) -> CancellationRequest | None:
    return session.scalars(
        select(CancellationRequest).where(
            CancellationRequest.booking_id == booking_id, CancellationRequest.status == PENDING
        )
    ).first()

"""Agents book and cancel for a family (a phone request, a correction after the fact): any day the
activity runs, past days included, closures and deadlines aside; eligibility (age, class) still
applies and capacity is still enforced by the same conditional update (a full day waitlists if the
activity keeps a list and the day has not passed, else FULL). Cancellations take effect at once.

Results have the cart validation's shape ({child_id, activity_id, date, action, outcome, reason?,
booking_id?}). One transaction per request; the days are created first, then locked in date order
(the validation engine's lock order). Every act is audited; `booking_changed_by_agent` carries the
lines for the family's email. Repeating a request changes nothing (ALREADY_BOOKED / NOT_BOOKED).

Bookings made this way are confirmed at once whatever the billing mode (no online payment is
waited for: the family pays them like postpaid days; billing reads `by_agent: true`)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.booking import audit, capacity, days, events, fields, outcomes
from services.booking.access import ChildInfo
from services.booking.cancellation_requests import APPROVED, close_request, decided_payload, pending_for
from services.booking.models import (
    ACTIVE_STATUSES,
    BOOK,
    CANCEL,
    CANCEL_REQUESTED,
    CANCELLED,
    CONFIRMED,
    PLACE_STATUSES,
    WAITLISTED,
    Activity,
    Booking,
)
from services.common.errors import NotFound

AGENT_CANCELLED_REASON = "Annulé par un agent de la commune."


def _activity(session: Session, commune_id: str, activity_id: Any) -> Activity:
    activity = session.get(Activity, fields.identifier(activity_id))
    if activity is None or activity.commune_id != commune_id:
        raise NotFound()
    return activity


def _active(session: Session, activity_id: str, child_id: str, day: dt.date) -> Booking | None:
    return session.scalars(
        select(Booking).where(
            Booking.activity_id == activity_id,
            Booking.child_id == child_id,
            Booking.date == day,
            Booking.status.in_(ACTIVE_STATUSES),
        )
    ).first()


class _Acts:
    def __init__(
        self,
        session: Session,
        account_id: str,
        role: str,
        child: ChildInfo,
        activity: Activity,
        now: dt.datetime,
    ) -> None:
        self.session = session
        self.account_id = account_id
        self.role = role
        self.child = child
        self.activity = activity
        self.rules = days.load_one(session, activity)
        self.now = now

    def base(self, day: dt.date, action: str) -> dict[str, Any]:
        return {
            "child_id": self.child.id,
            "activity_id": self.activity.id,
            "date": day.isoformat(),
            "action": action,
        }

    def audit(self, action: str, booking: Booking) -> None:
        audit.record(
            self.session,
            self.account_id,
            self.role,
            action,
            audit.BOOKING,
            booking.id,
            self.activity.commune_id,
            self.child.id,
        )

    # --- booking -------------------------------------------------------------------------------

    def book(self, day: dt.date, occurrence_id: str | None) -> dict[str, Any]:
        if occurrence_id is None:
            if not self.rules.scheduled(day):
                return {"outcome": outcomes.REJECTED, "reason": outcomes.NOT_SCHEDULED}
            return {"outcome": outcomes.REJECTED, "reason": outcomes.NOT_ELIGIBLE}
        capacity.lock(self.session, occurrence_id)
        if _active(self.session, self.activity.id, self.child.id, day) is not None:
            return {"outcome": outcomes.REJECTED, "reason": outcomes.ALREADY_BOOKED}
        try:
            with self.session.begin_nested():
                position = None
                if capacity.take_place(self.session, occurrence_id):
                    status = CONFIRMED
                elif self.activity.waiting_list and day >= self.rules.local_today(self.now):
                    status = WAITLISTED
                    position = capacity.next_waitlist_position(self.session, occurrence_id)
                else:
                    return {"outcome": outcomes.REJECTED, "reason": outcomes.FULL}
                booking = Booking(
                    activity_id=self.activity.id,
                    occurrence_id=occurrence_id,
                    commune_id=self.activity.commune_id,
                    family_id=self.child.family_id,
                    child_id=self.child.id,
                    account_id=self.account_id,
                    date=day,
                    status=status,
                    waitlist_position=position,
                    child_first_name=self.child.first_name,
                    created_at=self.now,
                    updated_at=self.now,
                )
                self.session.add(booking)
        except IntegrityError:
            if _active(self.session, self.activity.id, self.child.id, day) is None:
                raise
            return {"outcome": outcomes.REJECTED, "reason": outcomes.ALREADY_BOOKED}
        if status == CONFIRMED:
            events.booking_event(self.session, events.BOOKING_CONFIRMED, booking, by_agent=True)
        else:
            events.booking_event(
                self.session, events.BOOKING_WAITLISTED, booking, position=position, by_agent=True
            )
        self.audit(audit.BOOK_ON_BEHALF, booking)
        return {"outcome": status, "booking_id": booking.id}

    # --- cancelling ----------------------------------------------------------------------------

    def cancel(self, day: dt.date) -> dict[str, Any]:
        booking = _active(self.session, self.activity.id, self.child.id, day)
        if booking is None:
            return {"outcome": outcomes.REJECTED, "reason": outcomes.NOT_BOOKED}
        capacity.lock(self.session, booking.occurrence_id)
        self.session.refresh(booking)
        if booking.status not in ACTIVE_STATUSES:
            return {"outcome": outcomes.REJECTED, "reason": outcomes.NOT_BOOKED}
        held_place = booking.status in PLACE_STATUSES
        was_requested = booking.status == CANCEL_REQUESTED
        booking.status = CANCELLED
        booking.updated_at = self.now
        self.session.flush()
        if was_requested and (request := pending_for(self.session, booking.id)) is not None:
            # the parent's pending request is settled by this act: one event for billing, not two
            close_request(self.session, request, APPROVED, self.account_id, AGENT_CANCELLED_REASON, self.now)
            payload = decided_payload(request, booking, self.activity, APPROVED)
            events.record(self.session, events.CANCELLATION_DECIDED, payload)
        else:
            events.booking_event(self.session, events.BOOKING_CANCELLED, booking, by_agent=True)
        if held_place:
            capacity.free_place(self.session, booking.occurrence_id)
            capacity.promote(self.session, self.rules, booking.occurrence_id, day, self.now)
        self.audit(audit.CANCEL_ON_BEHALF, booking)
        return {"outcome": outcomes.CANCELLED, "booking_id": booking.id}


def _changed_by_agent(acts: _Acts, results: list[dict[str, Any]]) -> None:
    events.record(
        acts.session,
        events.BOOKING_CHANGED_BY_AGENT,
        {
            "commune_id": acts.activity.commune_id,
            "family_id": acts.child.family_id,
            "child_id": acts.child.id,
            "child_first_name": acts.child.first_name,
            "activity_id": acts.activity.id,
            "activity_name": acts.activity.name,
            "account_id": acts.account_id,
            "lines": [
                {"date": r["date"], "action": r["action"], "outcome": r["outcome"], "reason": r.get("reason")}
                for r in results
            ],
        },
    )


def book(
    session: Session,
    account_id: str,
    role: str,
    child: ChildInfo,
    activity_id: Any,
    dates: Any,
    now: dt.datetime,
) -> dict[str, Any]:
    """{"results": [...]} for each date (in date order)."""
    activity = _activity(session, child.commune_id, activity_id)
    wanted = sorted(set(fields.dates(dates)))
    acts = _Acts(session, account_id, role, child, activity, now)
    occurrences: dict[dt.date, str | None] = {}
    for day in wanted:  # every day that can be booked exists before any is locked
        if acts.rules.scheduled(day) and acts.rules.eligible(child, day):
            occurrences[day] = capacity.occurrence(session, activity.id, day).id
        else:
            occurrences[day] = None
    results = [{**acts.base(day, BOOK), **acts.book(day, occurrences[day])} for day in wanted]
    _changed_by_agent(acts, results)
    return {"results": results}


def cancel(
    session: Session,
    account_id: str,
    role: str,
    child: ChildInfo,
    activity_id: Any,
    dates: Any,
    now: dt.datetime,
) -> dict[str, Any]:
    """{"results": [...]}: each booked (or waitlisted, or requested) day cancelled at once."""
    activity = _activity(session, child.commune_id, activity_id)
    wanted = sorted(set(fields.dates(dates)))
    acts = _Acts(session, account_id, role, child, activity, now)
    results = [{**acts.base(day, CANCEL), **acts.cancel(day)} for day in wanted]
    _changed_by_agent(acts, results)
    return {"results": results}

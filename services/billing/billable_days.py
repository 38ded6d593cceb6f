"""billing's own copy of the postpaid days to invoice (`billable_days`, one row per booking), kept from
booking's events, each applied once (inbox, same transaction): booking_confirmed (booked),
booking_cancelled, cancellation_decided "approved" and booking_released (cancelled), attendance_marked
(the day's attendance). The month-end run reads only this table.

Events of different types come through different queues, so they may arrive in any order: every
event upserts the whole row; a cancelled booking stays cancelled (a rebooking is a new booking id);
an attendance is kept when booking_confirmed arrives after it. Days of prepaid activities (and events
without billing_mode, from an older booking) are not kept: they are paid when booked."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import case
from sqlalchemy.orm import Session

from services.billing.models import DAY_BOOKED, DAY_CANCELLED, POSTPAID, BillableDay, ProcessedEvent
from services.common.db import insert_for
from services.common.messaging import first_delivery

CONSUMER = "billing.days"
ATTENDANCES = ("present", "absent", "absent_justified")
_ID_MAX = 64


def _text(payload: dict[str, Any], key: str, limit: int) -> str | None:
    value = payload.get(key)
    return value[:limit] if isinstance(value, str) and value else None


def _row(payload: dict[str, Any], state: str, now: dt.datetime) -> dict[str, Any] | None:
    """The row an event describes, or None (not postpaid, or not a well-formed booking event)."""
    if payload.get("billing_mode") != POSTPAID:
        return None
    ids = {
        key: payload.get(key) for key in ("booking_id", "commune_id", "family_id", "child_id", "activity_id")
    }
    if not all(isinstance(v, str) and 0 < len(v) <= _ID_MAX for v in ids.values()):
        return None
    try:
        day = dt.date.fromisoformat(str(payload.get("date")))
    except ValueError:
        return None
    return {
        **ids,
        "child_first_name": _text(payload, "child_first_name", 100),
        "activity_name": _text(payload, "activity_name", 200),
        "date": day,
        "billing_mode": POSTPAID,
        "state": state,
        "attendance": None,
        "updated_at": now,
    }


def _upsert(session: Session, row: dict[str, Any], attendance: str | None) -> None:
    table = BillableDay.__table__
    statement = insert_for(session, BillableDay).values(**{**row, "attendance": attendance})
    excluded = statement.excluded
    changes: dict[str, Any] = {
        # cancelled is final; booked never overrides it (a late booking_confirmed)
        "state": case((table.c.state == DAY_CANCELLED, DAY_CANCELLED), else_=excluded.state),
        "child_first_name": case(
            (excluded.child_first_name.is_(None), table.c.child_first_name), else_=excluded.child_first_name
        ),
        "activity_name": case(
            (excluded.activity_name.is_(None), table.c.activity_name), else_=excluded.activity_name
        ),
        "updated_at": excluded.updated_at,
    }
    if attendance is not None:
        changes["attendance"] = excluded.attendance
    session.execute(statement.on_conflict_do_update(index_elements=["booking_id"], set_=changes))


def _first(session: Session, payload: dict[str, Any], event_type: str) -> bool:
    return first_delivery(session, ProcessedEvent, f"{CONSUMER}.{event_type}", payload.get("event_id", ""))


def on_booking_event(session: Session, event_type: str, payload: dict[str, Any], now: dt.datetime) -> bool:
    """booking_confirmed, booking_cancelled, booking_released, cancellation_decided; True if the
    projection changed."""
    if not isinstance(payload, dict) or not _first(session, payload, event_type):
        return False
    if event_type == "cancellation_decided" and payload.get("decision") != "approved":
        return False
    state = DAY_BOOKED if event_type == "booking_confirmed" else DAY_CANCELLED
    row = _row(payload, state, now)
    if row is None:
        return False
    _upsert(session, row, None)
    return True


def on_attendance_marked(session: Session, payload: dict[str, Any], now: dt.datetime) -> bool:
    if not isinstance(payload, dict) or not _first(session, payload, "attendance_marked"):
        return False
    attendance = payload.get("status")
    row = _row(payload, DAY_BOOKED, now)  # marked: the day was booked then
    if row is None or attendance not in ATTENDANCES:
        return False
    _upsert(session, row, attendance)
    return True

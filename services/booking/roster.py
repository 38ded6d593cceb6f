"""The day's roster of one activity, as agents and the kitchen use it: the children holding a place
(confirmed, or whose cancellation is being decided: `cancel_requested`, still expected until an
agent decides), their attendance, the headcount and how many wait. Children's first and last names
come from communes (the service asks `roster_children` once for all the children), falling back to
the first name kept on the booking (no last name) for a child communes does not return. CSV for a
French spreadsheet: UTF-8 with BOM, `;`, French header, CRLF, cells that a spreadsheet would read
as a formula prefixed with an apostrophe."""

from __future__ import annotations

import csv
import datetime as dt
import io
from typing import Any

from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.booking import access, audit, fields
from services.booking.activities import activity_in
from services.booking.models import CANCEL_REQUESTED, CONFIRMED, WAITLISTED, Attendance, Booking
from services.common.context import Caller

ON_ROSTER = (CONFIRMED, CANCEL_REQUESTED)
CSV_HEADER = ("Date", "Activité", "Prénom", "Nom", "Identifiant enfant", "Réservation", "Présence")
BOOKING_LABELS = {CONFIRMED: "réservé", CANCEL_REQUESTED: "annulation demandée"}
ATTENDANCE_LABELS = {"present": "présent", "absent": "absent", "absent_justified": "absence justifiée"}
_FORMULA_START = ("=", "+", "-", "@", "\t", "\r")


def roster(session: Session, caller: Caller, commune_id: Any, activity_id: Any, day: Any) -> dict[str, Any]:
    """{activity_id, activity_name, date, headcount, waitlisted, children: [{child_id, booking_id,
    booking_status, attendance, first_name, last_name}]} (names filled by the service: with_names;
    until then the first name kept on the booking and no last name)."""
    role = access.staff_role(caller, commune_id)
    activity = activity_in(session, commune_id, activity_id)
    day = fields.dates([day])[0]
    rows = session.execute(
        select(Booking, Attendance.status)
        .outerjoin(
            Attendance,
            (Attendance.activity_id == Booking.activity_id)
            & (Attendance.child_id == Booking.child_id)
            & (Attendance.date == Booking.date),
        )
        .where(Booking.activity_id == activity.id, Booking.date == day, Booking.status.in_(ON_ROSTER))
        .order_by(Booking.child_first_name, Booking.child_id)
    ).all()
    waiting = session.scalar(
        select(func.count())
        .select_from(Booking)
        .where(Booking.activity_id == activity.id, Booking.date == day, Booking.status == WAITLISTED)
    )
    audit.record(session, caller.account_id, role, audit.READ_ROSTER, audit.ROSTER, activity.id, commune_id)
    return {
        "activity_id": activity.id,
        "activity_name": activity.name,
        "date": day.isoformat(),
        "headcount": len(rows),
        "waitlisted": int(waiting or 0),
        "children": [
            {
                "child_id": booking.child_id,
                "first_name": booking.child_first_name,
                "last_name": None,
                "booking_id": booking.id,
                "booking_status": booking.status,
                "attendance": status,
            }
            for booking, status in rows
        ],
    }


def with_names(data: dict[str, Any], names: dict[str, dict[str, Any]]) -> dict[str, Any]:
    """The roster with communes' current first and last names (`{child_id: {first_name, last_name,
    ...}}`, as communes' roster_children gives them); a child communes did not return keeps the
    first name kept on the booking and no last name. Sorted by first name, then last name."""
    children = []
    for child in data["children"]:
        known = names.get(child["child_id"]) or {}
        children.append(
            {
                **child,
                "first_name": known.get("first_name") or child["first_name"],
                "last_name": known.get("last_name") or child.get("last_name"),
            }
        )
    children.sort(
        key=lambda c: ((c["first_name"] or "").casefold(), (c["last_name"] or "").casefold(), c["child_id"])
    )
    return {**data, "children": children}


def _cell(value: Any) -> str:
    text = "" if value is None else str(value)
    return "'" + text if text.startswith(_FORMULA_START) else text


def to_csv(data: dict[str, Any]) -> str:
    """The roster as CSV text starting with the BOM (encode it as UTF-8), `;`, one row per child."""
    out = io.StringIO()
    writer = csv.writer(out, delimiter=";", lineterminator="\r\n", quoting=csv.QUOTE_MINIMAL)
    writer.writerow(CSV_HEADER)
    day = dt.date.fromisoformat(data["date"]).strftime("%d/%m/%Y")
    for child in data["children"]:
        writer.writerow(
            [
                _cell(day),
                _cell(data["activity_name"]),
                _cell(child["first_name"]),
                _cell(child.get("last_name")),
                _cell(child["child_id"]),
                _cell(BOOKING_LABELS.get(child["booking_status"], child["booking_status"])),
                _cell(ATTENDANCE_LABELS.get(child["attendance"], "")),
            ]
        )
    return "\ufeff" + out.getvalue()

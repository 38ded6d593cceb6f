"""Activities and their closures, as a commune's staff manage them, and the list parents see. Plain
functions over a session (the caller's rights and the commune's time zone come in as arguments;
the RPCs that find them are the service's part), unit-tested on SQLite."""

from __future__ import annotations

import zoneinfo
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.booking import access, capacity, days, fields, views
from services.booking.models import Activity, Closure
from services.common import clock
from services.common.context import Caller
from services.common.errors import NotFound

DEFAULT_TIMEZONE = "Europe/Paris"


def activity_in(session: Session, commune_id: Any, activity_id: Any) -> Activity:
    """The activity, if it belongs to this commune (else NotFound, whether it exists or not)."""
    row = session.get(Activity, activity_id) if isinstance(activity_id, str) else None
    if row is None or row.commune_id != commune_id:
        raise NotFound()
    return row


def known_timezone(name: Any) -> str:
    """The commune's time zone as communes gave it; Europe/Paris if missing or unknown."""
    try:
        zoneinfo.ZoneInfo(name)
    except (TypeError, ValueError, zoneinfo.ZoneInfoNotFoundError):
        return DEFAULT_TIMEZONE
    return name


def check_new(caller: Caller, commune_id: Any, data: Any) -> dict[str, Any]:
    """The caller may create activities in this commune and the fields are valid: the checked
    values (before the service asks communes for the time zone)."""
    access.staff_role(caller, commune_id)
    return fields.activity_fields(data)


def create_activity(
    session: Session, caller: Caller, commune_id: str, timezone: Any, data: dict[str, Any]
) -> dict[str, Any]:
    values = check_new(caller, commune_id, data)
    timezone = known_timezone(timezone)
    now = clock.now()
    row = Activity(
        commune_id=commune_id,
        timezone=timezone,
        created_at=now,
        updated_at=now,
        created_by=caller.account_id,
        **values,
    )
    session.add(row)
    session.flush()
    return views.activity(row)


def _closures(session: Session, activity_id: str) -> list[Closure]:
    return list(
        session.scalars(
            select(Closure).where(Closure.activity_id == activity_id).order_by(Closure.start_date, Closure.id)
        ).all()
    )


def get_activity(session: Session, caller: Caller, commune_id: Any, activity_id: Any) -> dict[str, Any]:
    access.staff_role(caller, commune_id)
    row = activity_in(session, commune_id, activity_id)
    return {**views.activity(row), "closures": [views.closure(c) for c in _closures(session, row.id)]}


def list_activities(session: Session, commune_id: str) -> list[dict[str, Any]]:
    """Every activity of the commune (the caller's right to see them is checked by the service)."""
    rows = session.scalars(
        select(Activity)
        .where(Activity.commune_id == commune_id)
        .order_by(Activity.start_date, Activity.name, Activity.id)
    ).all()
    return [views.activity(row) for row in rows]


def update_activity(
    session: Session, caller: Caller, commune_id: Any, activity_id: Any, changes: Any
) -> dict[str, Any]:
    """PATCH: only the given fields change. The capacity may not go below the places already taken
    on any day (CAPACITY_BELOW_BOOKINGS); raising it promotes waiting lists. Bookings already made
    are kept when the period, weekdays or rules change."""
    access.staff_role(caller, commune_id)
    row = activity_in(session, commune_id, activity_id)
    current = {key: getattr(row, key) for key in fields.ACTIVITY_FIELDS}
    values = fields.activity_fields(changes, current=current)
    now = clock.now()
    new_capacity = values.pop("capacity", None)
    for key, value in values.items():
        setattr(row, key, value)
    row.updated_at = now
    if new_capacity is not None and new_capacity != row.capacity:
        capacity.set_capacity(session, days.load_one(session, row), new_capacity, now)
    session.flush()
    return views.activity(row)


def add_closure(
    session: Session, caller: Caller, commune_id: Any, activity_id: Any, start: Any, end: Any, reason: Any
) -> dict[str, Any]:
    """The activity does not run from `start` to `end` (both included). Bookings already made on
    those days are left for agents to handle (the calendar shows the days as closed)."""
    access.staff_role(caller, commune_id)
    row = activity_in(session, commune_id, activity_id)
    values = fields.closure_fields(start, end, reason)
    closure = Closure(activity_id=row.id, created_at=clock.now(), created_by=caller.account_id, **values)
    session.add(closure)
    session.flush()
    return views.closure(closure)

"""The RPC shapes: rows as JSON-ready dicts (ids as strings, dates and times ISO 8601)."""

from __future__ import annotations

from typing import Any

from services.booking.fields import weekday_names
from services.booking.models import Activity, Booking, CartItem, Closure


def activity(row: Activity) -> dict[str, Any]:
    return {
        "id": row.id,
        "commune_id": row.commune_id,
        "name": row.name,
        "kind": row.kind,
        "billing_mode": row.billing_mode,
        "capacity": row.capacity,
        "weekdays": weekday_names(row.weekdays),
        "start_date": row.start_date.isoformat(),
        "end_date": row.end_date.isoformat(),
        "booking_deadline": row.booking_deadline,
        "cancellation_deadline": row.cancellation_deadline,
        "cancellation_approval": row.cancellation_approval,
        "waiting_list": row.waiting_list,
        "min_age": row.min_age,
        "max_age": row.max_age,
        "classes": row.classes,
        "hold_minutes": row.hold_minutes,
        "timezone": row.timezone,
        "created_at": row.created_at.isoformat(),
        "updated_at": row.updated_at.isoformat(),
    }


def closure(row: Closure) -> dict[str, Any]:
    return {
        "id": row.id,
        "activity_id": row.activity_id,
        "from": row.start_date.isoformat(),
        "to": row.end_date.isoformat(),
        "reason": row.reason,
        "created_at": row.created_at.isoformat(),
    }


def cart_item(row: CartItem, state: str) -> dict[str, Any]:
    return {
        "id": row.id,
        "child_id": row.child_id,
        "activity_id": row.activity_id,
        "date": row.date.isoformat(),
        "action": row.action,
        "state": state,
    }


def child_booking(row: Booking) -> dict[str, Any]:
    return {
        "id": row.id,
        "activity_id": row.activity_id,
        "date": row.date.isoformat(),
        "status": row.status,
        "created_at": row.created_at.isoformat(),
    }

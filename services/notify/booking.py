"""Booking's events in: what each one says (validated), whom to write to, and what the email shows.

A booking event names its recipient by id only: an account (`account_id`, whose address and language
identity gives, `contact`) or a family (`family_id`, whose contact address communes gives,
`family_contact`). The address is asked for when the event is handled (inbound.py), then stored with
the message like any other. Nothing here talks to the broker or the database.

Every field the email shows is checked (InvalidPayload names the field, never its value): an event
that can never become an email is dropped, not requeued forever. Fields notify does not read are
ignored (`results`, `idempotency_key`, the ids other than the recipient's...).
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from services.notify import events
from services.notify.delivery import InvalidPayload, _name, _required_text

# kinds of email (outgoing_messages.kind, at most 40 characters)
BOOKING_SUMMARY = "booking_summary"
PLACE_FREED = "place_freed"
CANCELLATION_DECISION = "cancellation_decision"
AGENT_BOOKING_CHANGE = "agent_booking_change"

KIND_OF_BOOKING_EVENT: dict[str, str] = {
    events.CART_VALIDATED: BOOKING_SUMMARY,
    events.BOOKING_PROMOTED: PLACE_FREED,
    events.CANCELLATION_DECIDED: CANCELLATION_DECISION,
    events.BOOKING_CHANGED_BY_AGENT: AGENT_BOOKING_CHANGE,
}

ACCOUNT = "account"  # the recipient is an account: identity's `contact`
FAMILY = "family"  # the recipient is a family's contact address: communes' `family_contact`

ACTIONS = ("book", "cancel")
OUTCOMES = ("confirmed", "waitlisted", "pending_payment", "requested", "cancelled", "rejected")
REASONS = (
    "FULL",
    "DEADLINE_PASSED",
    "CLOSED",
    "NOT_ELIGIBLE",
    "ALREADY_BOOKED",
    "NOT_BOOKED",
    "CANCELLATION_NOT_ALLOWED",
    "NOT_SCHEDULED",
)
PROMOTED_STATUSES = ("confirmed", "pending_payment")
DECISIONS = ("approved", "rejected")
BILLING_MODES = ("prepaid", "postpaid")
MAX_LINES = 500  # booking refuses carts of more items (CART_TOO_LARGE)
MAX_ID = 64
MAX_DECISION_REASON = 1000

_DATE = re.compile(r"\d{4}-\d{2}-\d{2}")


@dataclass(frozen=True)
class Notice:
    """A booking event, validated: the email it asks for, short of the recipient's address."""

    event_id: str
    kind: str
    recipient: str  # ACCOUNT or FAMILY
    recipient_id: str  # the account id or the family id
    context: dict[str, Any]
    expires_at: dt.datetime | None = None  # when the email stops being true (a payment deadline)


# ---------------------------------------------------------------- field checks


def _id(payload: dict[str, Any], key: str) -> str:
    return _required_text(payload, key, MAX_ID)


def _choice(value: Any, key: str, allowed: tuple[str, ...]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise InvalidPayload(f"missing or invalid {key}")
    return value


def _date(value: Any, key: str = "date") -> dt.date:
    if not isinstance(value, str) or not _DATE.fullmatch(value):
        raise InvalidPayload(f"missing or invalid {key}")
    try:
        return dt.date.fromisoformat(value)
    except ValueError as exc:
        raise InvalidPayload(f"missing or invalid {key}") from exc


def _instant(value: Any, key: str) -> dt.datetime:
    if not isinstance(value, str) or not value.strip():
        raise InvalidPayload(f"missing or invalid {key}")
    try:
        moment = dt.datetime.fromisoformat(value)
    except ValueError as exc:
        raise InvalidPayload(f"missing or invalid {key}") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _free_text(payload: dict[str, Any], key: str, max_length: int) -> str | None:
    """Optional text written by a person (an agent's reason): on one line, no control characters."""
    value = payload.get(key)
    if value is None:
        return None
    if not isinstance(value, str) or len(value) > max_length:
        raise InvalidPayload(f"invalid {key}")
    if any((ord(char) < 32 and char not in "\t\r\n") or ord(char) == 127 for char in value):
        raise InvalidPayload(f"invalid {key}")
    return " ".join(value.split()) or None


def _line(item: Any, key: str) -> dict[str, Any]:
    """One day of a cart or of an agent's change: {date, action, outcome, reason}."""
    if not isinstance(item, dict):
        raise InvalidPayload(f"missing or invalid {key}")
    reason = item.get("reason")
    return {
        "date": _date(item.get("date"), f"{key}.date"),
        "action": _choice(item.get("action"), f"{key}.action", ACTIONS),
        "outcome": _choice(item.get("outcome"), f"{key}.outcome", OUTCOMES),
        "reason": None if reason is None else _choice(reason, f"{key}.reason", REASONS),
    }


def _lines(payload: dict[str, Any], with_names: bool) -> list[dict[str, Any]]:
    items = payload.get("lines")
    if not isinstance(items, list) or not items or len(items) > MAX_LINES:
        raise InvalidPayload("missing or invalid lines")
    lines = []
    for item in items:
        line = _line(item, "lines")
        if with_names:  # null when booking no longer knows the child or activity: a neutral label
            line["child_first_name"] = _name(item, "child_first_name", required=False)
            line["activity_name"] = _name(item, "activity_name", required=False)
        lines.append(line)
    return lines


def group_lines(lines: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Cart lines grouped by child, then activity (in the order they first appear), each activity's
    days in date order: [{"first_name", "activities": [{"name", "lines": [...]}]}]."""
    children: dict[str | None, dict[str | None, list[dict[str, Any]]]] = {}
    for line in lines:
        children.setdefault(line["child_first_name"], {}).setdefault(line["activity_name"], []).append(line)
    return [
        {
            "first_name": child,
            "activities": [
                {"name": name, "lines": sorted(days, key=lambda line: line["date"])}
                for name, days in activities.items()
            ],
        }
        for child, activities in children.items()
    ]


# ---------------------------------------------------------------- one reader per event

Reader = Callable[[dict[str, Any], str], tuple[str, str, dict[str, Any], dt.datetime | None]]


def _cart_validated(payload: dict[str, Any], portal_url: str) -> tuple[str, str, dict[str, Any], None]:
    lines = _lines(payload, with_names=True)
    context = {"children": group_lines(lines), "outcomes": sorted({line["outcome"] for line in lines})}
    return ACCOUNT, _id(payload, "account_id"), context, None


def _booking_promoted(
    payload: dict[str, Any], portal_url: str
) -> tuple[str, str, dict[str, Any], dt.datetime | None]:
    status = _choice(payload.get("status"), "status", PROMOTED_STATUSES)
    hold = payload.get("hold_expires_at")
    hold_expires_at = _instant(hold, "hold_expires_at") if status == "pending_payment" else None
    context = {
        "child_first_name": _name(payload, "child_first_name"),
        "activity_name": _name(payload, "activity_name"),
        "date": _date(payload.get("date")),
        "status": status,
        "hold_expires_at": hold_expires_at,
        "portal_url": portal_url,
    }
    # a payment deadline that passed: the place went to the next family, the email would mislead
    return ACCOUNT, _id(payload, "account_id"), context, hold_expires_at


def _cancellation_decided(payload: dict[str, Any], portal_url: str) -> tuple[str, str, dict[str, Any], None]:
    billing_mode = payload.get("billing_mode")
    context = {
        "child_first_name": _name(payload, "child_first_name"),
        "activity_name": _name(payload, "activity_name"),
        "date": _date(payload.get("date")),
        "decision": _choice(payload.get("decision"), "decision", DECISIONS),
        "reason": _free_text(payload, "reason", MAX_DECISION_REASON),
        "billing_mode": None
        if billing_mode is None
        else _choice(billing_mode, "billing_mode", BILLING_MODES),
    }
    return ACCOUNT, _id(payload, "account_id"), context, None


def _booking_changed_by_agent(
    payload: dict[str, Any], portal_url: str
) -> tuple[str, str, dict[str, Any], None]:
    lines = sorted(_lines(payload, with_names=False), key=lambda line: line["date"])
    context = {
        "child_first_name": _name(payload, "child_first_name"),
        "activity_name": _name(payload, "activity_name"),
        "lines": lines,
    }
    return FAMILY, _id(payload, "family_id"), context, None


_READERS: dict[str, Reader] = {
    events.CART_VALIDATED: _cart_validated,
    events.BOOKING_PROMOTED: _booking_promoted,
    events.CANCELLATION_DECIDED: _cancellation_decided,
    events.BOOKING_CHANGED_BY_AGENT: _booking_changed_by_agent,
}


def notice_from_event(event_type: str, payload: Any, portal_url: str) -> Notice:
    """The email a booking event asks for, or InvalidPayload."""
    if event_type not in _READERS:
        raise InvalidPayload("unknown event type")
    if not isinstance(payload, dict):
        raise InvalidPayload("payload is not an object")
    event_id = _required_text(payload, "event_id", 36)
    recipient, recipient_id, context, expires_at = _READERS[event_type](payload, portal_url)
    return Notice(event_id, KIND_OF_BOOKING_EVENT[event_type], recipient, recipient_id, context, expires_at)

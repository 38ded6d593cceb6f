"""Billing's events in: what each one says (validated) and what its email shows. Every billing email
goes to the account that paid (`account_id`, whose address and language identity's `contact`
gives when the event is handled, as for booking's events: inbound.py), except invoice_issued, which
goes to the family's contact address (communes' `family_contact`, in French, as
booking_changed_by_agent). Nothing here talks to the broker or the database.

Amounts are integer cents (shown in euros by rendering.euros). Every field the email shows is
checked (InvalidPayload names the field, never its value); fields notify does not read are ignored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from services.notify import events
from services.notify.booking import ACCOUNT, FAMILY, MAX_ID, Notice, _date, _instant
from services.notify.delivery import InvalidPayload, _required_text

# kinds of email (outgoing_messages.kind, at most 40 characters)
PAYMENT_RECEIPT = "payment_receipt"
REFUND = "refund"
CREDIT = "credit"
PAYMENT_FAILED = "payment_failed"
INVOICE_ISSUED = "invoice_issued"

KIND_OF_BILLING_EVENT: dict[str, str] = {
    events.PAYMENT_SUCCEEDED: PAYMENT_RECEIPT,
    events.REFUND_ISSUED: REFUND,
    events.CREDIT_GRANTED: CREDIT,
    events.PAYMENT_FAILED: PAYMENT_FAILED,
    events.INVOICE_ISSUED: INVOICE_ISSUED,
}
INVOICE_KINDS = ("invoice", "credit_note")
MAX_NUMBER = 20

REFUND_REASONS = ("cancellation", "place_lost", "agent")
MAX_CENTS = 100_000_000  # a million euros: anything above is a bug upstream
MAX_DAYS = 1000


def _cents(payload: dict[str, Any], key: str, minimum: int = 0) -> int:
    value = payload.get(key)
    if not isinstance(value, int) or isinstance(value, bool) or not minimum <= value <= MAX_CENTS:
        raise InvalidPayload(f"missing or invalid {key}")
    return value


def _days(payload: dict[str, Any], required: bool) -> int:
    """How many days the event is about: its distinct booking ids (a list of ids; may be absent or
    empty when not required, e.g. a refund an agent decided)."""
    ids = payload.get("booking_ids")
    if ids is None and not required:
        return 0
    if (
        not isinstance(ids, list)
        or len(ids) > MAX_DAYS
        or not all(isinstance(i, str) and 0 < len(i) <= MAX_ID for i in ids)
        or (required and not ids)
    ):
        raise InvalidPayload("missing or invalid booking_ids")
    return len(set(ids))


def _payment_id(payload: dict[str, Any]) -> str:
    return _required_text(payload, "payment_id", MAX_ID)


Read = tuple[dict[str, Any], dt.datetime | None]


def _payment_succeeded(payload: dict[str, Any], portal_url: str) -> Read:
    amount = _cents(payload, "amount_cents")
    total = _cents(payload, "total_cents")
    if total < amount:
        raise InvalidPayload("invalid total_cents")
    context = {
        "payment_id": _payment_id(payload),
        "amount_cents": amount,
        "total_cents": total,
        "credit_used_cents": total - amount,  # the family's credit paid the rest
        "days": _days(payload, required=True),
        "portal_url": portal_url,
    }
    return context, None


def _refund_issued(payload: dict[str, Any], portal_url: str) -> Read:
    reason = payload.get("reason")
    if reason not in REFUND_REASONS:
        raise InvalidPayload("missing or invalid reason")
    context = {
        "payment_id": _payment_id(payload),
        "amount_cents": _cents(payload, "amount_cents", minimum=1),
        "reason": reason,
        "days": _days(payload, required=False),
        "portal_url": portal_url,
    }
    return context, None


def _credit_granted(payload: dict[str, Any], portal_url: str) -> Read:
    return {"amount_cents": _cents(payload, "amount_cents", minimum=1), "portal_url": portal_url}, None


def _payment_failed(payload: dict[str, Any], portal_url: str) -> Read:
    value = payload.get("expires_at")  # the holds' expiry: optional in billing's contract
    expires_at = None if value in (None, "") else _instant(value, "expires_at")
    context = {
        "payment_id": _payment_id(payload),
        "days": _days(payload, required=False),
        "expires_at": expires_at,
        "portal_url": portal_url,
    }
    # once the holds are released, "pay again before ..." would mislead: the email is not sent
    return context, expires_at


_READERS: dict[str, Callable[[dict[str, Any], str], Read]] = {
    events.PAYMENT_SUCCEEDED: _payment_succeeded,
    events.REFUND_ISSUED: _refund_issued,
    events.CREDIT_GRANTED: _credit_granted,
    events.PAYMENT_FAILED: _payment_failed,
}


def _month(payload: dict[str, Any]) -> dt.date:
    value = payload.get("month")
    try:
        if not isinstance(value, str) or len(value) != 7:
            raise ValueError
        return dt.date.fromisoformat(f"{value}-01")
    except ValueError:
        raise InvalidPayload("missing or invalid month") from None


def invoice_issued(payload: Any, invoices_url: str) -> Notice:
    """invoice_issued -> the family's email: number, month, amount, due date, link to the invoices site."""
    if not isinstance(payload, dict):
        raise InvalidPayload("payload is not an object")
    event_id = _required_text(payload, "event_id", 36)
    kind = payload.get("kind")
    if kind not in INVOICE_KINDS:
        raise InvalidPayload("missing or invalid kind")
    total = _cents(payload, "total_cents")
    due = payload.get("amount_due_cents", total)
    payload = {**payload, "amount_due_cents": due}
    context = {
        "number": _required_text(payload, "number", MAX_NUMBER),
        "kind": kind,
        "month": _month(payload),
        "total_cents": total,
        "amount_due_cents": _cents(payload, "amount_due_cents"),
        "credit_applied_cents": total - _cents(payload, "amount_due_cents") if kind == "invoice" else 0,
        "due_date": _date(payload.get("due_date"), "due_date"),
        "invoices_url": invoices_url,
    }
    _required_text(payload, "invoice_id", MAX_ID)
    family_id = _required_text(payload, "family_id", MAX_ID)
    return Notice(event_id, INVOICE_ISSUED, FAMILY, family_id, context, None)


def notice_from_event(
    event_type: str, payload: Any, portal_url: str, invoices_url: str | None = None
) -> Notice:
    """The email a billing event asks for, or InvalidPayload."""
    if event_type == events.INVOICE_ISSUED:
        return invoice_issued(payload, invoices_url or portal_url)
    if event_type not in _READERS:
        raise InvalidPayload("unknown event type")
    if not isinstance(payload, dict):
        raise InvalidPayload("payload is not an object")
    event_id = _required_text(payload, "event_id", 36)
    account_id = _required_text(payload, "account_id", MAX_ID)
    context, expires_at = _READERS[event_type](payload, portal_url)
    return Notice(event_id, KIND_OF_BILLING_EVENT[event_type], ACCOUNT, account_id, context, expires_at)

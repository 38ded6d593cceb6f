"""Events in and requests in: validate, dedupe and queue, in one transaction per delivery."""

from __future__ import annotations

import logging
from typing import Any

import eventlet
from sqlalchemy.exc import SQLAlchemyError

from services.common.db import WorkerDb, new_id
from services.common.errors import ValidationFailed
from services.notify import delivery
from services.notify.rendering import pick_locale
from services.notify.settings import NotifySettings

log = logging.getLogger(__name__)


class RetryLater(Exception):
    """The event could not be stored (database down): nameko requeues it (`requeue_on_error`).
    Carries the error type only: database errors quote statement parameters (addresses)."""


def _event_id_of(payload: Any) -> str:
    value = payload.get("event_id") if isinstance(payload, dict) else None
    return value if isinstance(value, str) and len(value) <= 64 else "?"


def handle_event(db: WorkerDb, settings: NotifySettings, event_type: str, payload: Any) -> str | None:
    """Queue the email an event asks for; the id of the new message, None if there is none.

    An event that can never become an email is logged and dropped (requeuing it would loop
    forever). Any other failure pauses briefly, then raises so that the broker redelivers."""
    try:
        with db.transaction() as session:
            message = delivery.accept_event(session, event_type, payload, settings.portal_url)
            return message.id if message is not None else None
    except delivery.InvalidPayload as exc:
        log.error("dropped event %s (%s): %s", _event_id_of(payload), event_type, exc)
        return None
    except Exception as exc:
        log.error(
            "event %s (%s) not stored (%s); requeued", _event_id_of(payload), event_type, type(exc).__name__
        )
        eventlet.sleep(settings.requeue_delay_seconds)  # don't spin while the database is down
        if isinstance(exc, SQLAlchemyError):
            raise RetryLater(type(exc).__name__) from None
        raise


def queue_test(db: WorkerDb, to: Any, locale: Any) -> dict[str, Any]:
    """A test email to `to` (admins checking the mail set-up)."""
    try:
        address = delivery.parse_address(to.strip() if isinstance(to, str) else "")
    except delivery.InvalidPayload:
        raise ValidationFailed(details={"to": "Adresse e-mail invalide."}) from None
    request = delivery.Request(
        source_event_id=new_id(), kind=delivery.TEST, to=address, locale=pick_locale(locale), context={}
    )
    with db.transaction() as session:
        message = delivery.queue(session, request)
        assert message is not None  # a fresh source id cannot collide
        log.info("queued message %s kind=%s (test)", message.id, message.kind)
        return delivery.describe(message)


def status_of(db: WorkerDb, source_event_id: Any) -> dict[str, Any] | None:
    if not isinstance(source_event_id, str) or not source_event_id or len(source_event_id) > 64:
        raise ValidationFailed(details={"source_event_id": "Identifiant invalide."})
    with db.transaction() as session:
        messages = delivery.messages_for_source(session, source_event_id)
        return delivery.describe(messages[-1]) if messages else None

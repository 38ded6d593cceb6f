"""Events in and requests in: validate, dedupe and queue, in one transaction per delivery."""

from __future__ import annotations

import logging
from email.headerregistry import Address
from typing import Any

import eventlet
from sqlalchemy.exc import SQLAlchemyError

from services.common.db import WorkerDb, new_id
from services.common.errors import ServiceError, ServiceTimeout, ServiceUnavailable, ValidationFailed
from services.notify import billing, booking, delivery
from services.notify.rendering import DEFAULT_LOCALE, pick_locale
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


def recipient_of(notice: booking.Notice, identity: Any, communes: Any) -> tuple[Address, str, dict] | None:
    """(address, locale, extra context) of a booking email's recipient, asked now over RPC; None if
    the account or family does not exist. A family has no language of its own: French.
    Raises what the RPC raises (ServiceUnavailable, ServiceTimeout...); InvalidPayload for an address
    that can never be written to."""
    if notice.recipient == booking.ACCOUNT:
        found = identity.contact(notice.recipient_id)
        if found is None:
            return None
        return _address(found), pick_locale(found.get("locale")), {}
    found = communes.family_contact(notice.recipient_id)
    if found is None:
        return None
    try:
        family_name = delivery._name(found, "name", required=False)
    except delivery.InvalidPayload:  # a name we cannot print on one line: the email goes without it
        family_name = None
    return _address(found), DEFAULT_LOCALE, {"family_name": family_name}


def _address(found: Any) -> Address:
    email = found.get("email") if isinstance(found, dict) else None
    if not isinstance(email, str) or len(email) > 254:
        raise delivery.InvalidPayload("recipient has no valid email")
    try:
        return delivery.parse_address(email.strip())
    except delivery.InvalidPayload:
        raise delivery.InvalidPayload("recipient has no valid email") from None


def notice_of(
    event_type: str, payload: Any, portal_url: str, invoices_url: str | None = None
) -> booking.Notice:
    """The email a booking or billing event asks for (event names are distinct), or InvalidPayload."""
    if event_type in billing.KIND_OF_BILLING_EVENT:
        return billing.notice_from_event(event_type, payload, portal_url, invoices_url)
    return booking.notice_from_event(event_type, payload, portal_url)


def handle_booking_event(
    db: WorkerDb, settings: NotifySettings, identity: Any, communes: Any, event_type: str, payload: Any
) -> str | None:
    """Queue the email a booking (or billing) event asks for, to the address identity (an account) or
    communes (a family) gives now; the id of the new message, None if there is none.

    Dropped with a log line (ids only): an event that can never become an email, a recipient that
    does not exist (or whose address is unusable), a refusal by identity or communes. Anything else
    (identity, communes or the database down or slow) pauses briefly, then raises so that the broker
    redelivers: the email is not lost."""
    try:
        notice = notice_of(event_type, payload, settings.portal_url, settings.invoices_url)
    except delivery.InvalidPayload as exc:
        log.error("dropped event %s (%s): %s", _event_id_of(payload), event_type, exc)
        return None
    try:
        with db.transaction() as session:  # a redelivery after the email was queued: no RPC
            if delivery.already_handled(session, event_type, notice.event_id):
                log.info("event %s (%s) already handled", notice.event_id, event_type)
                return None
        found = recipient_of(notice, identity, communes)
        if found is None:
            log.warning(
                "dropped event %s (%s): no %s %s",
                notice.event_id,
                event_type,
                notice.recipient,
                notice.recipient_id,
            )
            return None
        to, locale, extra = found
        request = delivery.Request(
            source_event_id=notice.event_id,
            kind=notice.kind,
            to=to,
            locale=locale,
            context={**notice.context, **extra},
            expires_at=notice.expires_at,
        )
        with db.transaction() as session:
            message = delivery.accept_request(session, event_type, request)
            return message.id if message is not None else None
    except delivery.InvalidPayload as exc:
        log.error(
            "dropped event %s (%s) for %s %s: %s",
            notice.event_id,
            event_type,
            notice.recipient,
            notice.recipient_id,
            exc,
        )
        return None
    except ServiceError as exc:
        if not isinstance(exc, ServiceTimeout | ServiceUnavailable):  # refused for good: retrying won't help
            log.error(
                "dropped event %s (%s): recipient lookup refused (%s)", notice.event_id, event_type, exc.code
            )
            return None
        log.error("event %s (%s) not handled (%s); requeued", notice.event_id, event_type, exc.code)
        eventlet.sleep(settings.requeue_delay_seconds)
        raise
    except Exception as exc:
        log.error("event %s (%s) not handled (%s); requeued", notice.event_id, event_type, type(exc).__name__)
        eventlet.sleep(settings.requeue_delay_seconds)
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

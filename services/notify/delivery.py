"""The rules of delivery, without a broker: what an event turns into, the retry schedule, the
RFC 5322 message, and the claim / outcome steps the sender runs.

A message goes `pending` -> `sent`, or `pending` -> (retries) -> `failed`. The sender claims a due
message in a short transaction (counting the attempt and pushing `next_attempt_at` one claim lease
ahead, so no other sender takes it meanwhile), sends it outside any transaction, then records the
outcome in a second short transaction, guarded by the attempt number it claimed: if its lease ran
out and another sender took over, the stale outcome changes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
import re
import unicodedata
from collections.abc import Callable
from dataclasses import dataclass
from email.header import Header
from email.headerregistry import Address
from email.message import EmailMessage
from email.utils import format_datetime
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.common import clock
from services.common.messaging import first_delivery, record_event
from services.notify import events
from services.notify.models import (
    FAILED,
    PENDING,
    SENT,
    OutboxEvent,
    OutgoingMessage,
    ProcessedEvent,
)
from services.notify.rendering import pick_locale, render
from services.notify.settings import DEFAULT_PUBLIC_URL, NotifySettings

log = logging.getLogger(__name__)

QUEUED_FLAG = "notify_messages_queued"
_MAX_CLAIM_TRIES = 20
CONSUMER = "notify"

VERIFY_EMAIL = "verify_email"
RESET_PASSWORD = "reset_password"  # noqa: S105 - a kind of email, not a secret
PASSWORD_CHANGED = "password_changed"  # noqa: S105
TEST = "test"
ADHESION_CODE = "adhesion_code"
AGENT_INVITATION = "agent_invitation"

# event type (from identity or communes) -> kind of email; _CONTEXT_OF_KIND reads the rest of the payload
KIND_OF_EVENT: dict[str, str] = {
    events.EMAIL_VERIFICATION_REQUESTED: VERIFY_EMAIL,
    events.PASSWORD_RESET_REQUESTED: RESET_PASSWORD,
    events.PASSWORD_CHANGED: PASSWORD_CHANGED,
    events.ADHESION_CODE_ISSUED: ADHESION_CODE,
    events.AGENT_INVITED: AGENT_INVITATION,
}

# an adhesion code as communes displays it: three groups of four capitals or digits
ADHESION_CODE_FORMAT = re.compile(r"[A-Z0-9]{4}(?:-[A-Z0-9]{4}){2}")


class InvalidPayload(ValueError):
    """An event we can never turn into an email (a bug upstream): dropped, not requeued forever.
    The message names the field, never its value."""


# ---------------------------------------------------------------- retry schedule


def retry_delay(failed_attempts: int, base_seconds: float, max_seconds: float) -> dt.timedelta:
    """Wait after the n-th failed attempt: base, 2 x base, 4 x base, ... capped at max_seconds."""
    if failed_attempts < 1:
        raise ValueError("failed_attempts starts at 1")
    exponent = min(failed_attempts - 1, 62)  # no overflow for absurd counts
    return dt.timedelta(seconds=min(base_seconds * (2**exponent), max_seconds))


def after_failure(
    attempts: int, now: dt.datetime, settings: NotifySettings, permanent: bool = False
) -> tuple[str, dt.datetime | None]:
    """(status, next_attempt_at) once attempt number `attempts` has failed."""
    if permanent or attempts >= settings.max_attempts:
        return FAILED, None
    return PENDING, now + retry_delay(attempts, settings.retry_base_seconds, settings.retry_max_seconds)


# ---------------------------------------------------------------- events -> pending messages


def _required_text(payload: dict[str, Any], key: str, max_length: int) -> str:
    value = payload.get(key)
    if not isinstance(value, str) or not value.strip() or len(value) > max_length:
        raise InvalidPayload(f"missing or invalid {key}")
    return value.strip()


def parse_address(value: str) -> Address:
    """One mailbox, or InvalidPayload (no header injection, no list of recipients)."""
    if any(ch in value for ch in '\r\n,;<>"') or value.count("@") != 1:
        raise InvalidPayload("missing or invalid email")
    username, domain = value.rsplit("@", 1)
    if not username or "." not in domain or " " in value:
        raise InvalidPayload("missing or invalid email")
    try:
        return Address(username=username, domain=domain)
    except (ValueError, IndexError) as exc:
        raise InvalidPayload("missing or invalid email") from exc


def _parse_link(payload: dict[str, Any]) -> str:
    link = _required_text(payload, "link", 2000)
    parts = urlsplit(link)
    if parts.scheme not in ("http", "https") or not parts.netloc or any(c.isspace() for c in link):
        raise InvalidPayload("missing or invalid link")
    return link


def _parse_expiry(payload: dict[str, Any]) -> dt.datetime | None:
    value = payload.get("expires_at")
    if value in (None, ""):
        return None
    try:
        moment = dt.datetime.fromisoformat(str(value))
    except ValueError as exc:
        raise InvalidPayload("invalid expires_at") from exc
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)


def _required_expiry(payload: dict[str, Any]) -> dt.datetime:
    expires_at = _parse_expiry(payload)
    if expires_at is None:
        raise InvalidPayload("missing or invalid expires_at")
    return expires_at


def _name(payload: dict[str, Any], key: str, required: bool = True) -> str | None:
    """A name shown in the email (commune, family): one line of printable text."""
    if not required and payload.get(key) in (None, ""):
        return None
    value = _required_text(payload, key, 200)
    # no line breaks nor control characters to reshape the text part (a no-break space is fine)
    if any(unicodedata.category(char) in ("Cc", "Zl", "Zp") for char in value):
        raise InvalidPayload(f"missing or invalid {key}")
    return value


def _parse_code(payload: dict[str, Any]) -> str:
    """The adhesion code, exactly as the family must type it. The error never quotes it."""
    code = payload.get("code")
    if not isinstance(code, str) or not ADHESION_CODE_FORMAT.fullmatch(code):
        raise InvalidPayload("missing or invalid code")
    return code


# ---- what each kind of email shows, read from its event: (template context, expiry of the message)

Context = tuple[dict[str, Any], dt.datetime | None]


def _no_context(payload: dict[str, Any], to: Address, portal_url: str) -> Context:
    return {}, None


def _link_context(payload: dict[str, Any], to: Address, portal_url: str) -> Context:
    expires_at = _parse_expiry(payload)
    return {"link": _parse_link(payload), "expires_at": expires_at}, expires_at


def _adhesion_code_context(payload: dict[str, Any], to: Address, portal_url: str) -> Context:
    expires_at = _required_expiry(payload)
    context = {
        "code": _parse_code(payload),
        "commune_name": _name(payload, "commune_name"),
        "family_name": _name(payload, "family_name", required=False),
        "expires_at": expires_at,
        "portal_url": portal_url,
    }
    return context, expires_at


def _agent_invitation_context(payload: dict[str, Any], to: Address, portal_url: str) -> Context:
    expires_at = _parse_expiry(payload)
    context = {
        "link": _parse_link(payload),
        "commune_name": _name(payload, "commune_name"),
        "email": to.addr_spec,
        "expires_at": expires_at,
    }
    return context, expires_at


_CONTEXT_OF_KIND: dict[str, Callable[[dict[str, Any], Address, str], Context]] = {
    VERIFY_EMAIL: _link_context,
    RESET_PASSWORD: _link_context,
    PASSWORD_CHANGED: _no_context,
    ADHESION_CODE: _adhesion_code_context,
    AGENT_INVITATION: _agent_invitation_context,
}


@dataclass(frozen=True)
class Request:
    """What to send, validated: the source of one email."""

    source_event_id: str
    kind: str
    to: Address
    locale: str
    context: dict[str, Any]
    expires_at: dt.datetime | None = None


def request_from_event(
    event_type: str, payload: dict[str, Any], portal_url: str = f"{DEFAULT_PUBLIC_URL}/"
) -> Request:
    """The email an event asks for, or InvalidPayload. `portal_url`: the portal's home page
    (NotifySettings.portal_url), for emails that send people there to create an account."""
    if event_type not in KIND_OF_EVENT:
        raise InvalidPayload("unknown event type")
    if not isinstance(payload, dict):
        raise InvalidPayload("payload is not an object")
    kind = KIND_OF_EVENT[event_type]
    event_id = _required_text(payload, "event_id", 36)
    to = parse_address(_required_text(payload, "email", 254))
    context, expires_at = _CONTEXT_OF_KIND[kind](payload, to, portal_url)
    return Request(event_id, kind, to, pick_locale(payload.get("locale")), context, expires_at)


def queue(session: Session, request: Request) -> OutgoingMessage | None:
    """Render and store a pending message (in the caller's transaction); None if this source already
    produced one. The sender is woken once the transaction commits."""
    rendered = render(request.kind, request.locale, request.context)
    now = clock.now()
    message = OutgoingMessage(
        source_event_id=request.source_event_id,
        kind=request.kind,
        to_address=str(request.to.addr_spec),
        locale=request.locale,
        subject=rendered.subject,
        text_body=rendered.text,
        html_body=rendered.html,
        status=PENDING,
        attempts=0,
        next_attempt_at=now,
        expires_at=request.expires_at,
        created_at=now,
    )
    try:
        with session.begin_nested():
            session.add(message)
    except IntegrityError:  # the unique (source_event_id, kind): belt and braces behind the inbox
        return None
    session.info[QUEUED_FLAG] = True
    return message


def accept_event(
    session: Session, event_type: str, payload: dict[str, Any], portal_url: str = f"{DEFAULT_PUBLIC_URL}/"
) -> OutgoingMessage | None:
    """An event from identity or communes: at most one pending message per event, however often it
    arrives. Raises InvalidPayload (before touching the database) for an event that can never be sent."""
    return accept_request(session, event_type, request_from_event(event_type, payload, portal_url))


def already_handled(session: Session, event_type: str, event_id: str) -> bool:
    """Whether this event already produced its email (a read: no lock, no row written)."""
    return session.get(ProcessedEvent, (f"{CONSUMER}.{event_type}", event_id)) is not None


def accept_request(session: Session, event_type: str, request: Request) -> OutgoingMessage | None:
    """Record the event as handled and queue its email, in the caller's transaction; None if the event
    was handled before (a redelivery)."""
    if not first_delivery(session, ProcessedEvent, f"{CONSUMER}.{event_type}", request.source_event_id):
        log.info("event %s (%s) already handled", request.source_event_id, event_type)
        return None
    message = queue(session, request)
    if message is not None:
        log.info("queued message %s kind=%s for event %s", message.id, message.kind, request.source_event_id)
    return message


def describe(message: OutgoingMessage) -> dict[str, Any]:
    """Delivery state for ops and tests: no address, no body."""

    def iso(moment: dt.datetime | None) -> str | None:
        return moment.isoformat() if moment else None

    return {
        "message_id": message.id,
        "source_event_id": message.source_event_id,
        "kind": message.kind,
        "locale": message.locale,
        "status": message.status,
        "attempts": message.attempts,
        "next_attempt_at": iso(message.next_attempt_at),
        "last_error": message.last_error,
        "created_at": iso(message.created_at),
        "sent_at": iso(message.sent_at),
    }


def messages_for_source(session: Session, source_event_id: str) -> list[OutgoingMessage]:
    query = select(OutgoingMessage).where(OutgoingMessage.source_event_id == source_event_id)
    return list(session.scalars(query.order_by(OutgoingMessage.created_at)).all())


# ---------------------------------------------------------------- the RFC 5322 message


def message_id_header(message_id: str, settings: NotifySettings) -> str:
    return f"<{message_id}@{settings.from_address.domain}>"


def build_email(message: OutgoingMessage | Claim, settings: NotifySettings) -> EmailMessage:
    """multipart/alternative (text, then HTML). Built from the stored row only, with its creation
    time as Date: a re-send produces the same message."""
    email = EmailMessage()
    email["From"] = settings.from_address
    email["To"] = parse_address(message.to_address)
    _set_subject(email, message.subject)
    email["Date"] = format_datetime(message.created_at.astimezone(dt.UTC))
    email["Message-ID"] = message_id_header(message.id, settings)
    email["Auto-Submitted"] = "auto-generated"  # RFC 3834: no auto-replies please
    # 8bit text: the link stays on one line, readable and copyable from the raw file or a terminal
    email.set_content(message.text_body, cte="8bit")
    email.add_alternative(message.html_body, subtype="html")
    email["Content-Language"] = message.locale  # after the bodies: set_content drops Content-* headers
    return email


def _set_subject(email: EmailMessage, subject: str) -> None:
    """An ASCII subject folds at its spaces as usual. A non-ASCII one is written as a run of RFC 2047
    encoded words, every line within 78 characters: the standard folder can leave a doubled space
    where it folds between a plain word and an encoded one (`member  (Saint-Étienne)`)."""
    if subject.isascii():
        email["Subject"] = subject
    else:
        email.set_raw("Subject", Header(subject, "utf-8", header_name="Subject").encode())


# ---------------------------------------------------------------- claim and outcome (sender side)


@dataclass(frozen=True)
class Claim:
    """A snapshot of the claimed row: what the send needs, outside any transaction."""

    id: str
    source_event_id: str
    kind: str
    to_address: str
    locale: str
    subject: str
    text_body: str
    html_body: str
    created_at: dt.datetime
    attempt: int  # the attempt number this claim owns


def _event_payload(message_id: str, kind: str, source_event_id: str) -> dict[str, Any]:
    return {"message_id": message_id, "kind": kind, "source_event_id": source_event_id}


def claim_next(session: Session, settings: NotifySettings, skip_locked: bool) -> Claim | None:
    """Take the next due message, or None. Runs in the caller's (short) transaction.

    On PostgreSQL the candidate row is read `FOR UPDATE SKIP LOCKED`, so concurrent senders
    (several notify instances) each take a different row without waiting. The update is also
    conditional on the attempt count read, which keeps SQLite (no row locks) correct too.
    Messages whose link or code expired before they could go are failed here instead of sent."""
    now = clock.now()
    for _ in range(_MAX_CLAIM_TRIES):
        query = (
            select(OutgoingMessage)
            .where(OutgoingMessage.status == PENDING, OutgoingMessage.next_attempt_at <= now)
            .order_by(OutgoingMessage.next_attempt_at, OutgoingMessage.id)
            .limit(1)
        )
        if skip_locked:
            query = query.with_for_update(skip_locked=True)
        row = session.scalars(query).first()
        if row is None:
            return None
        guard = (
            OutgoingMessage.id == row.id,
            OutgoingMessage.status == PENDING,
            OutgoingMessage.attempts == row.attempts,
        )
        if row.expires_at is not None and row.expires_at <= now:
            values: dict[str, Any] = {"status": FAILED, "next_attempt_at": None, "last_error": "expired"}
            expired = update(OutgoingMessage).where(*guard).values(**values)
            if session.execute(expired.execution_options(synchronize_session=False)).rowcount == 1:
                payload = _event_payload(row.id, row.kind, row.source_event_id)
                record_event(session, OutboxEvent, events.MESSAGE_FAILED, payload)
                log.warning("message %s kind=%s expired before delivery", row.id, row.kind)
            continue
        attempt = row.attempts + 1
        lease_end = now + dt.timedelta(seconds=settings.claim_seconds)
        claimed = session.execute(
            update(OutgoingMessage)
            .where(*guard)
            .values(attempts=attempt, next_attempt_at=lease_end)
            .execution_options(synchronize_session=False)
        ).rowcount
        if claimed != 1:  # another sender got there first (SQLite); look for the next one
            continue
        return Claim(
            id=row.id,
            source_event_id=row.source_event_id,
            kind=row.kind,
            to_address=row.to_address,
            locale=row.locale,
            subject=row.subject,
            text_body=row.text_body,
            html_body=row.html_body,
            created_at=row.created_at,
            attempt=attempt,
        )
    return None  # kept losing races: let the next round try again


def _owned(claim: Claim) -> tuple[Any, ...]:
    return (
        OutgoingMessage.id == claim.id,
        OutgoingMessage.status == PENDING,
        OutgoingMessage.attempts == claim.attempt,
    )


def record_sent(session: Session, claim: Claim) -> bool:
    """Mark the claim sent and publish message_sent (outbox); False if the claim was lost."""
    updated = session.execute(
        update(OutgoingMessage)
        .where(*_owned(claim))
        .values(status=SENT, sent_at=clock.now(), next_attempt_at=None, last_error=None)
        .execution_options(synchronize_session=False)
    ).rowcount
    if updated == 1:
        payload = _event_payload(claim.id, claim.kind, claim.source_event_id)
        record_event(session, OutboxEvent, events.MESSAGE_SENT, payload)
    return updated == 1


def record_failure(
    session: Session, claim: Claim, settings: NotifySettings, reason: str, permanent: bool
) -> str | None:
    """Schedule a retry with backoff, or give up (`failed` + message_failed). Returns the new status,
    None if the claim was lost."""
    status, next_at = after_failure(claim.attempt, clock.now(), settings, permanent)
    updated = session.execute(
        update(OutgoingMessage)
        .where(*_owned(claim))
        .values(status=status, next_attempt_at=next_at, last_error=reason[:200])
        .execution_options(synchronize_session=False)
    ).rowcount
    if updated != 1:
        return None
    if status == FAILED:
        payload = _event_payload(claim.id, claim.kind, claim.source_event_id)
        record_event(session, OutboxEvent, events.MESSAGE_FAILED, payload)
    return status

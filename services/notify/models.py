"""Notify's tables: outgoing messages and their delivery state, plus the outbox and inbox."""

from __future__ import annotations

import datetime as dt
import secrets
import time
import uuid

from sqlalchemy import Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import UtcDateTime
from services.common.messaging import messaging_tables

PENDING = "pending"
SENT = "sent"
FAILED = "failed"


class Base(DeclarativeBase):
    pass


OutboxEvent, ProcessedEvent = messaging_tables(Base)

_last_id_time = [0, 0]  # (milliseconds, sequence) of the last id made by this process


def time_ordered_id() -> str:
    """A UUID in the version 7 layout (RFC 9562): 48-bit Unix milliseconds, a 12-bit sequence within
    the millisecond, 62 random bits. Message ids, and so the `.eml` file names, sort in creation order
    (within one process; across instances, to the millisecond)."""
    millis = time.time_ns() // 1_000_000
    last_millis, sequence = _last_id_time
    if millis <= last_millis:
        millis, sequence = last_millis, sequence + 1
        if sequence > 0xFFF:
            millis, sequence = millis + 1, 0
    else:
        sequence = 0
    _last_id_time[:] = [millis, sequence]
    value = (millis << 80) | (0x7 << 76) | (sequence << 64) | (0b10 << 62) | secrets.randbits(62)
    return str(uuid.UUID(int=value))


class OutgoingMessage(Base):
    """One email. `(source_event_id, kind)` is unique: an event never yields two emails.

    `attempts` counts the sends started; `next_attempt_at` is when the sender may take it (again);
    `last_error` names the failure (exception type, SMTP code), never an address nor server text.
    `expires_at` (optional) is when its content (a link, a code) stops being useful: not sent after that."""

    __tablename__ = "outgoing_messages"
    __table_args__ = (
        UniqueConstraint("source_event_id", "kind", name="uq_outgoing_messages_source"),
        Index("ix_outgoing_messages_due", "status", "next_attempt_at"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=time_ordered_id)
    source_event_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(40))
    to_address: Mapped[str] = mapped_column(String(254))
    locale: Mapped[str] = mapped_column(String(5))
    subject: Mapped[str] = mapped_column(String(300))
    text_body: Mapped[str] = mapped_column(Text)
    html_body: Mapped[str] = mapped_column(Text)
    status: Mapped[str] = mapped_column(String(10), default=PENDING)
    attempts: Mapped[int] = mapped_column(Integer, default=0)
    next_attempt_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    last_error: Mapped[str | None] = mapped_column(String(200), nullable=True)
    expires_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    sent_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)

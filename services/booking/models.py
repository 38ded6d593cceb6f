"""booking's tables: activities and their closures, occurrences (one row per activity and day: the
places, taken by conditional update), bookings, cancellation requests, carts and the idempotency
record of each cart validation; attendance, calendar feeds and the agents' audit trail."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    Boolean,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
    text,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.audit import make_append_only
from services.common.db import UtcDateTime, new_id
from services.common.messaging import messaging_tables

# Booking statuses. "released": a prepaid hold that expired unpaid.
CONFIRMED = "confirmed"
PENDING_PAYMENT = "pending_payment"
WAITLISTED = "waitlisted"
CANCEL_REQUESTED = "cancel_requested"
CANCELLED = "cancelled"
RELEASED = "released"
ACTIVE_STATUSES = (CONFIRMED, PENDING_PAYMENT, WAITLISTED, CANCEL_REQUESTED)
# the statuses that hold one of the day's places (counted in occurrences.taken)
PLACE_STATUSES = (CONFIRMED, PENDING_PAYMENT, CANCEL_REQUESTED)

BOOK = "book"
CANCEL = "cancel"

# One active booking per child, activity and day (a partial unique index: PostgreSQL and SQLite).
ACTIVE_PREDICATE = text("status IN ('confirmed', 'pending_payment', 'waitlisted', 'cancel_requested')")


class Base(DeclarativeBase):
    pass


OutboxEvent, ProcessedEvent = messaging_tables(Base)


class Activity(Base):
    """Something a commune runs on some weekdays of a period, with its rules. `timezone` is the
    commune's, copied at creation: deadlines are local times there."""

    __tablename__ = "activities"
    __table_args__ = (
        CheckConstraint("capacity >= 0", name="ck_activities_capacity"),
        CheckConstraint("start_date <= end_date", name="ck_activities_period"),
        Index("ix_activities_commune", "commune_id", "name"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    commune_id: Mapped[str] = mapped_column(String(36))
    name: Mapped[str] = mapped_column(String(200))
    kind: Mapped[str] = mapped_column(String(30))
    billing_mode: Mapped[str] = mapped_column(String(10))
    capacity: Mapped[int] = mapped_column(Integer)
    weekdays: Mapped[list[Any]] = mapped_column(JSON)  # sorted numbers, 0 = Monday
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date] = mapped_column(Date)
    booking_deadline: Mapped[dict[str, Any]] = mapped_column(JSON)
    cancellation_deadline: Mapped[dict[str, Any]] = mapped_column(JSON)
    cancellation_approval: Mapped[str] = mapped_column(String(10))
    waiting_list: Mapped[bool] = mapped_column(Boolean)
    min_age: Mapped[int | None] = mapped_column(Integer, nullable=True)
    max_age: Mapped[int | None] = mapped_column(Integer, nullable=True)
    classes: Mapped[list[Any] | None] = mapped_column(JSON, nullable=True)
    hold_minutes: Mapped[int] = mapped_column(Integer)
    timezone: Mapped[str] = mapped_column(String(64))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    created_by: Mapped[str | None] = mapped_column(String(36), nullable=True)


class Closure(Base):
    """Days (inclusive range) an activity does not run: strike, holidays, works..."""

    __tablename__ = "closures"
    __table_args__ = (CheckConstraint("start_date <= end_date", name="ck_closures_period"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    activity_id: Mapped[str] = mapped_column(ForeignKey("activities.id"), index=True)
    start_date: Mapped[dt.date] = mapped_column(Date)
    end_date: Mapped[dt.date] = mapped_column(Date)
    reason: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    created_by: Mapped[str | None] = mapped_column(String(36), nullable=True)


class Occurrence(Base):
    """One day of one activity: its places. Created on first use. `taken` counts the bookings that
    hold a place (PLACE_STATUSES); it only moves by conditional updates, and the CHECKs make an
    oversold day impossible even for a buggy writer. `waitlist_seq` numbers the waiting list."""

    __tablename__ = "occurrences"
    __table_args__ = (
        UniqueConstraint("activity_id", "date", name="uq_occurrences_day"),
        CheckConstraint("taken >= 0", name="ck_occurrences_taken_positive"),
        CheckConstraint("taken <= capacity", name="ck_occurrences_taken_capacity"),
        CheckConstraint("capacity >= 0", name="ck_occurrences_capacity"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    activity_id: Mapped[str] = mapped_column(ForeignKey("activities.id"))
    date: Mapped[dt.date] = mapped_column(Date)
    capacity: Mapped[int] = mapped_column(Integer)
    taken: Mapped[int] = mapped_column(Integer)
    waitlist_seq: Mapped[int] = mapped_column(Integer)


class Booking(Base):
    """A child booked (or waiting) for one day of an activity. Rows are never deleted: a cancelled
    or released booking stays as history and a new booking of the same day is a new row."""

    __tablename__ = "bookings"
    __table_args__ = (
        Index(
            "uq_bookings_active",
            "activity_id",
            "child_id",
            "date",
            unique=True,
            postgresql_where=ACTIVE_PREDICATE,
            sqlite_where=ACTIVE_PREDICATE,
        ),
        Index("ix_bookings_child_date", "child_id", "date"),
        Index("ix_bookings_waitlist", "occurrence_id", "status", "waitlist_position"),
        Index("ix_bookings_holds", "status", "hold_expires_at"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    activity_id: Mapped[str] = mapped_column(ForeignKey("activities.id"))
    occurrence_id: Mapped[str] = mapped_column(ForeignKey("occurrences.id"))
    commune_id: Mapped[str] = mapped_column(String(36))
    family_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    child_id: Mapped[str] = mapped_column(String(36))
    account_id: Mapped[str | None] = mapped_column(String(36), nullable=True)  # who booked
    date: Mapped[dt.date] = mapped_column(Date)
    status: Mapped[str] = mapped_column(String(20))
    waitlist_position: Mapped[int | None] = mapped_column(Integer, nullable=True)
    hold_expires_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    cart_validation_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    # The child's first name as communes gave it when the booking was made: the one personal datum
    # booking keeps, so that events about this booking (a promotion, a decision) can be emailed
    # without calling communes back inside a transaction. Refreshed by nothing; never shown to others.
    child_first_name: Mapped[str | None] = mapped_column(String(100), nullable=True)


class CancellationRequest(Base):
    """A parent asked to cancel a booking of an activity whose cancellations agents approve."""

    __tablename__ = "cancellation_requests"
    __table_args__ = (Index("ix_cancellation_requests_commune", "commune_id", "status"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    booking_id: Mapped[str] = mapped_column(ForeignKey("bookings.id"), index=True)
    commune_id: Mapped[str] = mapped_column(String(36))
    account_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    status: Mapped[str] = mapped_column(String(20))  # pending, approved, rejected
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    decided_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    decided_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    reason: Mapped[str | None] = mapped_column(String(500), nullable=True)  # the agent's, told to the parent


class CartItem(Base):
    """One day to book or cancel, waiting in an account's cart until validation. One item per
    account, child, activity and day (adding it again is ignored)."""

    __tablename__ = "cart_items"
    __table_args__ = (
        UniqueConstraint("account_id", "child_id", "activity_id", "date", name="uq_cart_items_day"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(String(36))
    child_id: Mapped[str] = mapped_column(String(36))
    activity_id: Mapped[str] = mapped_column(ForeignKey("activities.id"))
    date: Mapped[dt.date] = mapped_column(Date)
    action: Mapped[str] = mapped_column(String(10))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class CartValidation(Base):
    """The idempotency record of one cart validation, stored before any place is taken and in the
    same transaction: the key, the cart it validated and the response a replay gets back."""

    __tablename__ = "cart_validations"
    __table_args__ = (UniqueConstraint("account_id", "idempotency_key", name="uq_cart_validations_key"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(String(36))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    cart: Mapped[list[Any]] = mapped_column(JSON)
    response: Mapped[dict[str, Any] | None] = mapped_column(JSON, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class Attendance(Base):
    """What happened on a booked day: present, absent or absent with justification. One row per
    activity, child and day; marking again overwrites it."""

    __tablename__ = "attendance"
    __table_args__ = (
        UniqueConstraint("activity_id", "child_id", "date", name="uq_attendance_day"),
        CheckConstraint("status IN ('present', 'absent', 'absent_justified')", name="ck_attendance_status"),
        Index("ix_attendance_child_date", "child_id", "date"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    booking_id: Mapped[str] = mapped_column(ForeignKey("bookings.id"))
    activity_id: Mapped[str] = mapped_column(ForeignKey("activities.id"))
    child_id: Mapped[str] = mapped_column(String(36))
    date: Mapped[dt.date] = mapped_column(Date)
    commune_id: Mapped[str] = mapped_column(String(36))
    status: Mapped[str] = mapped_column(String(20))
    marked_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    marked_by: Mapped[str | None] = mapped_column(String(36), nullable=True)


class CalendarFeed(Base):
    """A child's private iCalendar feed: the secret token (256 bits) is stored as its SHA-256 only.
    One feed per child: a new one replaces (revokes) the previous; revoking deletes the row. The
    account that made it is kept: the feed stops when that account loses access to the child."""

    __tablename__ = "calendar_feeds"
    __table_args__ = (UniqueConstraint("child_id", name="uq_calendar_feeds_child"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    child_id: Mapped[str] = mapped_column(String(36))
    commune_id: Mapped[str] = mapped_column(String(36))
    account_id: Mapped[str] = mapped_column(String(36))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class BookingAuditEntry(Base):
    """Who (account id, role) did what to which booking, request or attendance, in which commune, and
    when: agents' and admins' acts for families. Ids and action names only. Append-only: triggers
    refuse UPDATE and DELETE (migration 0002; APPEND_ONLY_TRIGGERS below for create_all)."""

    __tablename__ = "booking_audit"
    __table_args__ = (Index("ix_booking_audit_commune", "commune_id", "id"),)
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    account_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    role: Mapped[str] = mapped_column(String(10))
    action: Mapped[str] = mapped_column(String(40))
    entity_type: Mapped[str] = mapped_column(String(30))
    entity_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    child_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    commune_id: Mapped[str] = mapped_column(String(36))


make_append_only(BookingAuditEntry.__table__)  # migration 0002 runs the same statements

"""billing's tables: tariffs per activity, payment settings per commune (secrets encrypted), payments
and the days they pay for, refunds, the families' ledger (append-only), the provider events already
applied, the outbox/inbox of its events, and month-end invoicing: the days to invoice (projection of
booking's events), invoices and credit notes with their lines, their numbering, and the runs."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    Text,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.audit import make_append_only
from services.common.db import UtcDateTime, new_id
from services.common.messaging import messaging_tables

# payments.status
PENDING = "pending"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"

# refunds.status
REFUND_PENDING = "pending"
REFUND_SUCCEEDED = "succeeded"
REFUND_FAILED = "failed"

# ledger_entries.kind (sign: positive = the family's credit grows)
CHARGE = "charge"
PAYMENT = "payment"
CANCELLATION = "cancellation"
REFUND = "refund"
INVOICE = "invoice"  # an issued invoice: -total (its credit applied is the balance it uses up)
CREDIT_NOTE = "credit_note"  # an issued credit note: +total

# invoices.kind (INVOICE above) and invoices.status
KIND_CREDIT_NOTE = "credit_note"
ISSUED = "issued"
PARTIALLY_PAID = "partially_paid"
PAID = "paid"

# billable_days.state, .billing_mode
DAY_BOOKED = "booked"
DAY_CANCELLED = "cancelled"
POSTPAID = "postpaid"

# tariffs.cancellation_refund
RULE_REFUND = "refund"
RULE_CREDIT = "credit"
RULE_NONE = "none"

CREDIT_PROVIDER = "credit"  # a payment fully covered by the family's credit


class Base(DeclarativeBase):
    pass


OutboxEvent, ProcessedEvent = messaging_tables(Base)


class Tariff(Base):
    """The price of one day of an activity: flat (unit_price_cents) or by bands of quotient familial
    (bands: [{qf_max, unit_price_cents}], the last qf_max null). One tariff per activity."""

    __tablename__ = "tariffs"
    __table_args__ = (
        CheckConstraint("(unit_price_cents IS NULL) <> (bands IS NULL)", name="ck_tariffs_flat_or_bands"),
        CheckConstraint("cancellation_refund IN ('refund', 'credit', 'none')", name="ck_tariffs_rule"),
        Index("ix_tariffs_commune", "commune_id"),
    )
    activity_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    commune_id: Mapped[str] = mapped_column(String(36))
    unit_price_cents: Mapped[int | None] = mapped_column(Integer, nullable=True)
    bands: Mapped[list[Any] | None] = mapped_column(JSON(none_as_null=True), nullable=True)
    cancellation_refund: Mapped[str] = mapped_column(String(10))
    # what a postpaid day counts as on the month's invoice: booked days or attended (present) days
    invoice_basis: Mapped[str] = mapped_column(String(10), server_default="booked")
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    updated_by: Mapped[str | None] = mapped_column(String(36), nullable=True)


class PaymentSettings(Base):
    """A commune's payment provider. Secrets are Fernet tokens (PAYMENT_SECRETS_KEY), never returned."""

    __tablename__ = "payment_settings"
    commune_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    provider: Mapped[str] = mapped_column(String(20))
    publishable_key: Mapped[str | None] = mapped_column(String(255), nullable=True)
    secret_key_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    webhook_secret_enc: Mapped[str | None] = mapped_column(Text, nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    updated_by: Mapped[str | None] = mapped_column(String(36), nullable=True)


class FamilyAccount(Base):
    """One row per (commune, family): locked FOR UPDATE while a payment decides how much credit it
    uses, so that two payments never spend the same credit."""

    __tablename__ = "family_accounts"
    commune_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    family_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class Payment(Base):
    """One payment per (account, idempotency key, commune, family), stored with its days BEFORE the
    provider is called; provider_idempotency_key is sent on every call about it."""

    __tablename__ = "payments"
    __table_args__ = (
        UniqueConstraint("account_id", "idempotency_key", "commune_id", "family_id", name="uq_payments_key"),
        UniqueConstraint("provider", "provider_ref", name="uq_payments_provider_ref"),
        CheckConstraint("amount_cents >= 0", name="ck_payments_amount"),
        CheckConstraint("credit_used_cents >= 0", name="ck_payments_credit"),
        CheckConstraint("amount_cents + credit_used_cents = total_cents", name="ck_payments_total"),
        CheckConstraint("refunded_cents >= 0", name="ck_payments_refunded_positive"),
        CheckConstraint("refunded_cents <= amount_cents", name="ck_payments_refunded_max"),
        CheckConstraint(
            "status IN ('pending', 'succeeded', 'failed', 'cancelled')", name="ck_payments_status"
        ),
        Index("ix_payments_family", "commune_id", "family_id", "status"),
        Index("ix_payments_invoice", "invoice_id"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(String(36))
    invoice_id: Mapped[str | None] = mapped_column(String(36), nullable=True)  # an invoice's payment
    idempotency_key: Mapped[str] = mapped_column(String(200))
    commune_id: Mapped[str] = mapped_column(String(36))
    family_id: Mapped[str] = mapped_column(String(36))
    provider: Mapped[str] = mapped_column(String(20))
    provider_ref: Mapped[str | None] = mapped_column(String(255), nullable=True)
    provider_idempotency_key: Mapped[str] = mapped_column(String(100))
    provider_error: Mapped[str | None] = mapped_column(String(30), nullable=True)
    checkout_url: Mapped[str | None] = mapped_column(String(500), nullable=True)
    client_secret: Mapped[str | None] = mapped_column(String(255), nullable=True)
    status: Mapped[str] = mapped_column(String(10))
    amount_cents: Mapped[int] = mapped_column(Integer)
    total_cents: Mapped[int] = mapped_column(Integer)
    credit_used_cents: Mapped[int] = mapped_column(Integer)
    refunded_cents: Mapped[int] = mapped_column(Integer, default=0)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    settled_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class PaymentDay(Base):
    """A held day a payment pays for, at its price when the payment was made. `returned_at` is set
    once (conditional update) when the day's price is given back (cancellation, place lost)."""

    __tablename__ = "payment_days"
    __table_args__ = (
        UniqueConstraint("payment_id", "booking_id", name="uq_payment_days_booking"),
        CheckConstraint("unit_price_cents >= 0", name="ck_payment_days_price"),
        Index("ix_payment_days_booking", "booking_id"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"))
    booking_id: Mapped[str] = mapped_column(String(36))
    child_id: Mapped[str] = mapped_column(String(36))
    activity_id: Mapped[str] = mapped_column(String(36))
    date: Mapped[dt.date] = mapped_column(Date)
    unit_price_cents: Mapped[int] = mapped_column(Integer)
    returned_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    returned_reason: Mapped[str | None] = mapped_column(String(20), nullable=True)


class Refund(Base):
    """Money sent back to the card of a payment. Its amount is reserved on payments.refunded_cents in
    the transaction that creates it (payment row locked), so refunds never exceed what was paid."""

    __tablename__ = "refunds"
    __table_args__ = (
        UniqueConstraint("payment_id", "idempotency_key", name="uq_refunds_key"),
        CheckConstraint("amount_cents > 0", name="ck_refunds_amount"),
        CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="ck_refunds_status"),
        CheckConstraint("reason IN ('agent', 'cancellation', 'place_lost')", name="ck_refunds_reason"),
        Index("ix_refunds_pending", "status", "created_at"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    payment_id: Mapped[str] = mapped_column(ForeignKey("payments.id"))
    commune_id: Mapped[str] = mapped_column(String(36))
    family_id: Mapped[str] = mapped_column(String(36))
    account_id: Mapped[str] = mapped_column(String(36))  # the parent who paid
    amount_cents: Mapped[int] = mapped_column(Integer)
    reason: Mapped[str] = mapped_column(String(20))
    idempotency_key: Mapped[str] = mapped_column(String(200))
    provider_idempotency_key: Mapped[str] = mapped_column(String(250))
    provider_ref: Mapped[str | None] = mapped_column(String(255), nullable=True)
    provider_error: Mapped[str | None] = mapped_column(String(30), nullable=True)
    status: Mapped[str] = mapped_column(String(10))
    booking_ids: Mapped[list[Any]] = mapped_column(JSON)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    created_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    settled_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class LedgerEntry(Base):
    """The family account: balance = sum(amount_cents), positive = credit. Append-only (triggers)."""

    __tablename__ = "ledger_entries"
    __table_args__ = (
        CheckConstraint(
            "kind IN ('charge', 'payment', 'cancellation', 'refund', 'invoice', 'credit_note')",
            name="ck_ledger_kind",
        ),
        Index("ix_ledger_family", "commune_id", "family_id", "id"),
    )
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    commune_id: Mapped[str] = mapped_column(String(36))
    family_id: Mapped[str] = mapped_column(String(36))
    kind: Mapped[str] = mapped_column(String(20))
    amount_cents: Mapped[int] = mapped_column(Integer)
    payment_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    booking_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    refund_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    invoice_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    description: Mapped[str] = mapped_column(String(200))
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


make_append_only(LedgerEntry.__table__)


class ProcessedProviderEvent(Base):
    """A provider event already applied: recorded in the transaction of its effect."""

    __tablename__ = "processed_provider_events"
    provider: Mapped[str] = mapped_column(String(20), primary_key=True)
    event_id: Mapped[str] = mapped_column(String(255), primary_key=True)
    payment_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    kind: Mapped[str] = mapped_column(String(30))
    processed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class BillableDay(Base):
    """billing's copy of a postpaid booking (one row per booking), kept from booking's events: the
    month-end run reads only this. A cancelled booking stays cancelled (events may arrive out of
    order across queues: a late booking_confirmed never revives it)."""

    __tablename__ = "billable_days"
    __table_args__ = (
        CheckConstraint("state IN ('booked', 'cancelled')", name="ck_billable_days_state"),
        CheckConstraint(
            "attendance IS NULL OR attendance IN ('present', 'absent', 'absent_justified')",
            name="ck_billable_days_attendance",
        ),
        Index("ix_billable_days_family", "commune_id", "family_id", "date"),
    )
    booking_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    commune_id: Mapped[str] = mapped_column(String(36))
    family_id: Mapped[str] = mapped_column(String(36))
    child_id: Mapped[str] = mapped_column(String(36))
    child_first_name: Mapped[str | None] = mapped_column(String(100), nullable=True)
    activity_id: Mapped[str] = mapped_column(String(36))
    activity_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    date: Mapped[dt.date] = mapped_column(Date)
    billing_mode: Mapped[str] = mapped_column(String(10))
    state: Mapped[str] = mapped_column(String(10))
    attendance: Mapped[str | None] = mapped_column(String(20), nullable=True)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class InvoiceSequence(Base):
    """The next number of a commune's invoices and credit notes in a year: locked FOR UPDATE by each
    chunk of a run until it commits, so numbers are gapless even with concurrent runs."""

    __tablename__ = "invoice_sequences"
    commune_id: Mapped[str] = mapped_column(String(36), primary_key=True)
    year: Mapped[int] = mapped_column(Integer, primary_key=True)
    next_number: Mapped[int] = mapped_column(Integer)


class InvoiceRun(Base):
    """One call of the month-end run (by an agent, the timer or a tool), and what it issued."""

    __tablename__ = "invoice_runs"
    __table_args__ = (Index("ix_invoice_runs_month", "commune_id", "month"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    commune_id: Mapped[str] = mapped_column(String(36))
    month: Mapped[str] = mapped_column(String(7))
    started_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    started_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    finished_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    invoices_issued: Mapped[int] = mapped_column(Integer, default=0)
    credit_notes_issued: Mapped[int] = mapped_column(Integer, default=0)
    total_cents: Mapped[int] = mapped_column(Integer, default=0)


class Invoice(Base):
    """An invoice or a credit note (kind), never changed once issued except paid_cents and status as
    payments arrive. total_cents is positive for both kinds; a credit note's `corrects_id` (and a
    corrective invoice's) is the family's first invoice of the month."""

    __tablename__ = "invoices"
    __table_args__ = (
        UniqueConstraint("commune_id", "number", name="uq_invoices_number"),
        CheckConstraint("kind IN ('invoice', 'credit_note')", name="ck_invoices_kind"),
        CheckConstraint("status IN ('issued', 'partially_paid', 'paid')", name="ck_invoices_status"),
        CheckConstraint("total_cents >= 0", name="ck_invoices_total"),
        CheckConstraint("credit_applied_cents >= 0", name="ck_invoices_credit"),
        CheckConstraint("paid_cents >= 0 AND paid_cents <= total_cents", name="ck_invoices_paid"),
        Index("ix_invoices_month", "commune_id", "month", "family_id"),
        Index("ix_invoices_family", "family_id", "issued_at"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    commune_id: Mapped[str] = mapped_column(String(36))
    family_id: Mapped[str] = mapped_column(String(36))
    month: Mapped[str] = mapped_column(String(7))
    kind: Mapped[str] = mapped_column(String(12))
    number: Mapped[str] = mapped_column(String(20))
    total_cents: Mapped[int] = mapped_column(Integer)
    credit_applied_cents: Mapped[int] = mapped_column(Integer)
    paid_cents: Mapped[int] = mapped_column(Integer)
    status: Mapped[str] = mapped_column(String(16))
    issued_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    due_date: Mapped[dt.date] = mapped_column(Date)
    family_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    commune_name: Mapped[str | None] = mapped_column(String(200), nullable=True)
    corrects_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    run_id: Mapped[str | None] = mapped_column(String(36), nullable=True)


class InvoiceLine(Base):
    """One child and activity at one unit price: quantity days, amount = unit price x quantity."""

    __tablename__ = "invoice_lines"
    __table_args__ = (
        CheckConstraint("quantity > 0", name="ck_invoice_lines_quantity"),
        Index("ix_invoice_lines_invoice", "invoice_id", "position"),
    )
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    invoice_id: Mapped[str] = mapped_column(ForeignKey("invoices.id"))
    position: Mapped[int] = mapped_column(Integer)
    child_id: Mapped[str] = mapped_column(String(36))
    child_first_name: Mapped[str] = mapped_column(String(100))
    activity_id: Mapped[str] = mapped_column(String(36))
    activity_name: Mapped[str] = mapped_column(String(200))
    unit_price_cents: Mapped[int] = mapped_column(Integer)
    quantity: Mapped[int] = mapped_column(Integer)
    amount_cents: Mapped[int] = mapped_column(Integer)

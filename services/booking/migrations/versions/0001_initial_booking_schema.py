"""initial booking schema: activities (rules, the commune's time zone), closures, occurrences (one
row per activity and day: capacity and places taken, CHECK 0 <= taken <= capacity), bookings (one
active booking per activity, child and day: a partial unique index on PostgreSQL and SQLite),
cancellation requests, cart items, cart validations (idempotency keys, UNIQUE per account), and the
outbox/inbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-26 05:01:57.300698
"""

from alembic import op
import sqlalchemy as sa
import services.common.db


revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "activities",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("commune_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=200), nullable=False),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("billing_mode", sa.String(length=10), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("weekdays", sa.JSON(), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("booking_deadline", sa.JSON(), nullable=False),
        sa.Column("cancellation_deadline", sa.JSON(), nullable=False),
        sa.Column("cancellation_approval", sa.String(length=10), nullable=False),
        sa.Column("waiting_list", sa.Boolean(), nullable=False),
        sa.Column("min_age", sa.Integer(), nullable=True),
        sa.Column("max_age", sa.Integer(), nullable=True),
        sa.Column("classes", sa.JSON(), nullable=True),
        sa.Column("hold_minutes", sa.Integer(), nullable=False),
        sa.Column("timezone", sa.String(length=64), nullable=False),
        sa.Column("created_at", services.common.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", services.common.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=True),
        sa.CheckConstraint("capacity >= 0", name="ck_activities_capacity"),
        sa.CheckConstraint("start_date <= end_date", name="ck_activities_period"),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_activities_commune", "activities", ["commune_id", "name"], unique=False)
    op.create_table(
        "cart_validations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("cart", sa.JSON(), nullable=False),
        sa.Column("response", sa.JSON(), nullable=True),
        sa.Column("created_at", services.common.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "idempotency_key", name="uq_cart_validations_key"),
    )
    op.create_table(
        "outbox_events",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("event_type", sa.String(length=100), nullable=False),
        sa.Column("payload", sa.JSON(), nullable=False),
        sa.Column("created_at", services.common.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("attempts", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("event_id"),
    )
    op.create_table(
        "processed_events",
        sa.Column("consumer", sa.String(length=120), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("processed_at", services.common.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
    )
    op.create_table(
        "cart_items",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("child_id", sa.String(length=36), nullable=False),
        sa.Column("activity_id", sa.String(length=36), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("action", sa.String(length=10), nullable=False),
        sa.Column("created_at", services.common.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["activity_id"],
            ["activities.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("account_id", "child_id", "activity_id", "date", name="uq_cart_items_day"),
    )
    op.create_table(
        "closures",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("activity_id", sa.String(length=36), nullable=False),
        sa.Column("start_date", sa.Date(), nullable=False),
        sa.Column("end_date", sa.Date(), nullable=False),
        sa.Column("reason", sa.String(length=200), nullable=False),
        sa.Column("created_at", services.common.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=True),
        sa.CheckConstraint("start_date <= end_date", name="ck_closures_period"),
        sa.ForeignKeyConstraint(
            ["activity_id"],
            ["activities.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(op.f("ix_closures_activity_id"), "closures", ["activity_id"], unique=False)
    op.create_table(
        "occurrences",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("activity_id", sa.String(length=36), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("capacity", sa.Integer(), nullable=False),
        sa.Column("taken", sa.Integer(), nullable=False),
        sa.Column("waitlist_seq", sa.Integer(), nullable=False),
        sa.CheckConstraint("capacity >= 0", name="ck_occurrences_capacity"),
        sa.CheckConstraint("taken <= capacity", name="ck_occurrences_taken_capacity"),
        sa.CheckConstraint("taken >= 0", name="ck_occurrences_taken_positive"),
        sa.ForeignKeyConstraint(
            ["activity_id"],
            ["activities.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("activity_id", "date", name="uq_occurrences_day"),
    )
    op.create_table(
        "bookings",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("activity_id", sa.String(length=36), nullable=False),
        sa.Column("occurrence_id", sa.String(length=36), nullable=False),
        sa.Column("commune_id", sa.String(length=36), nullable=False),
        sa.Column("family_id", sa.String(length=36), nullable=True),
        sa.Column("child_id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=True),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("waitlist_position", sa.Integer(), nullable=True),
        sa.Column("hold_expires_at", services.common.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("cart_validation_id", sa.String(length=36), nullable=True),
        sa.Column("created_at", services.common.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", services.common.db.UtcDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["activity_id"],
            ["activities.id"],
        ),
        sa.ForeignKeyConstraint(
            ["occurrence_id"],
            ["occurrences.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_bookings_child_date", "bookings", ["child_id", "date"], unique=False)
    op.create_index("ix_bookings_holds", "bookings", ["status", "hold_expires_at"], unique=False)
    op.create_index(
        "ix_bookings_waitlist", "bookings", ["occurrence_id", "status", "waitlist_position"], unique=False
    )
    op.create_index(
        "uq_bookings_active",
        "bookings",
        ["activity_id", "child_id", "date"],
        unique=True,
        postgresql_where=sa.text(
            "status IN ('confirmed', 'pending_payment', 'waitlisted', 'cancel_requested')"
        ),
        sqlite_where=sa.text("status IN ('confirmed', 'pending_payment', 'waitlisted', 'cancel_requested')"),
    )
    op.create_table(
        "cancellation_requests",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("booking_id", sa.String(length=36), nullable=False),
        sa.Column("commune_id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=True),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", services.common.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("decided_at", services.common.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("decided_by", sa.String(length=36), nullable=True),
        sa.ForeignKeyConstraint(
            ["booking_id"],
            ["bookings.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index(
        op.f("ix_cancellation_requests_booking_id"), "cancellation_requests", ["booking_id"], unique=False
    )
    op.create_index(
        "ix_cancellation_requests_commune", "cancellation_requests", ["commune_id", "status"], unique=False
    )


def downgrade() -> None:
    op.drop_index("ix_cancellation_requests_commune", table_name="cancellation_requests")
    op.drop_index(op.f("ix_cancellation_requests_booking_id"), table_name="cancellation_requests")
    op.drop_table("cancellation_requests")
    op.drop_index(
        "uq_bookings_active",
        table_name="bookings",
        postgresql_where=sa.text(
            "status IN ('confirmed', 'pending_payment', 'waitlisted', 'cancel_requested')"
        ),
        sqlite_where=sa.text("status IN ('confirmed', 'pending_payment', 'waitlisted', 'cancel_requested')"),
    )
    op.drop_index("ix_bookings_waitlist", table_name="bookings")
    op.drop_index("ix_bookings_holds", table_name="bookings")
    op.drop_index("ix_bookings_child_date", table_name="bookings")
    op.drop_table("bookings")
    op.drop_table("occurrences")
    op.drop_index(op.f("ix_closures_activity_id"), table_name="closures")
    op.drop_table("closures")
    op.drop_table("cart_items")
    op.drop_table("processed_events")
    op.drop_table("outbox_events")
    op.drop_table("cart_validations")
    op.drop_index("ix_activities_commune", table_name="activities")
    op.drop_table("activities")

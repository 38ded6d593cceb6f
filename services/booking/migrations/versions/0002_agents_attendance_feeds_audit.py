"""agents' slice: cancellation decisions (reason), the child's first name on bookings (for the
emails events enable), attendance (one row per activity, child and day), private calendar feeds
(token stored as SHA-256, one per child), and booking_audit, made append-only by triggers
(PostgreSQL: a plpgsql function refusing UPDATE, DELETE and TRUNCATE; SQLite: RAISE(ABORT)).

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-27 09:00:00
"""

from alembic import op
import sqlalchemy as sa
import services.common.db

# Copied here (not imported from models) so that this migration never changes after the fact.
PG_AUDIT_FUNCTION = """
CREATE OR REPLACE FUNCTION booking_audit_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'booking_audit is append-only';
END;
$$ LANGUAGE plpgsql
"""
PG_AUDIT_TRIGGERS = (
    "CREATE TRIGGER booking_audit_no_change BEFORE UPDATE OR DELETE ON booking_audit "
    "FOR EACH ROW EXECUTE FUNCTION booking_audit_append_only()",
    "CREATE TRIGGER booking_audit_no_truncate BEFORE TRUNCATE ON booking_audit "
    "FOR EACH STATEMENT EXECUTE FUNCTION booking_audit_append_only()",
)
SQLITE_AUDIT_TRIGGERS = (
    "CREATE TRIGGER booking_audit_no_update BEFORE UPDATE ON booking_audit "
    "BEGIN SELECT RAISE(ABORT, 'booking_audit is append-only'); END",
    "CREATE TRIGGER booking_audit_no_delete BEFORE DELETE ON booking_audit "
    "BEGIN SELECT RAISE(ABORT, 'booking_audit is append-only'); END",
)


revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("bookings") as batch:
        batch.add_column(sa.Column("child_first_name", sa.String(length=100), nullable=True))
    with op.batch_alter_table("cancellation_requests") as batch:
        batch.add_column(sa.Column("reason", sa.String(length=500), nullable=True))
    op.create_table(
        "attendance",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("booking_id", sa.String(length=36), nullable=False),
        sa.Column("activity_id", sa.String(length=36), nullable=False),
        sa.Column("child_id", sa.String(length=36), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("commune_id", sa.String(length=36), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("marked_at", services.common.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("marked_by", sa.String(length=36), nullable=True),
        sa.CheckConstraint(
            "status IN ('present', 'absent', 'absent_justified')", name="ck_attendance_status"
        ),
        sa.ForeignKeyConstraint(["activity_id"], ["activities.id"]),
        sa.ForeignKeyConstraint(["booking_id"], ["bookings.id"]),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("activity_id", "child_id", "date", name="uq_attendance_day"),
    )
    op.create_index("ix_attendance_child_date", "attendance", ["child_id", "date"], unique=False)
    op.create_table(
        "calendar_feeds",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("token_hash", sa.String(length=64), nullable=False),
        sa.Column("child_id", sa.String(length=36), nullable=False),
        sa.Column("commune_id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", services.common.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("token_hash"),
        sa.UniqueConstraint("child_id", name="uq_calendar_feeds_child"),
    )
    op.create_table(
        "booking_audit",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("at", services.common.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=True),
        sa.Column("role", sa.String(length=10), nullable=False),
        sa.Column("action", sa.String(length=40), nullable=False),
        sa.Column("entity_type", sa.String(length=30), nullable=False),
        sa.Column("entity_id", sa.String(length=36), nullable=True),
        sa.Column("child_id", sa.String(length=36), nullable=True),
        sa.Column("commune_id", sa.String(length=36), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_booking_audit_commune", "booking_audit", ["commune_id", "id"], unique=False)
    dialect = op.get_bind().dialect.name
    if dialect == "postgresql":
        for statement in (PG_AUDIT_FUNCTION, *PG_AUDIT_TRIGGERS):
            op.execute(statement)
    elif dialect == "sqlite":
        for statement in SQLITE_AUDIT_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS booking_audit_no_change ON booking_audit")
        op.execute("DROP TRIGGER IF EXISTS booking_audit_no_truncate ON booking_audit")
        op.execute("DROP FUNCTION IF EXISTS booking_audit_append_only()")
    op.drop_index("ix_booking_audit_commune", table_name="booking_audit")
    op.drop_table("booking_audit")
    op.drop_table("calendar_feeds")
    op.drop_index("ix_attendance_child_date", table_name="attendance")
    op.drop_table("attendance")
    with op.batch_alter_table("cancellation_requests") as batch:
        batch.drop_column("reason")
    with op.batch_alter_table("bookings") as batch:
        batch.drop_column("child_first_name")

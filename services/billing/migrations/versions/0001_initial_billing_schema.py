"""billing's first schema: tariffs, payment settings (secrets encrypted), family accounts (credit
lock), payments and their days, refunds, the ledger (made append-only by triggers: PostgreSQL, a
plpgsql function refusing UPDATE, DELETE and TRUNCATE; SQLite, RAISE(ABORT)), the provider events
already applied, and the outbox/inbox.

Revision ID: 0001
Revises:
Create Date: 2026-11-26 07:00:00
"""

from alembic import op
import sqlalchemy as sa
import services.common.db

# Copied here (not imported from services.common.audit) so that this migration never changes.
PG_LEDGER_FUNCTION = """
CREATE OR REPLACE FUNCTION ledger_entries_append_only() RETURNS trigger AS $$
BEGIN
    RAISE EXCEPTION 'ledger_entries is append-only';
END;
$$ LANGUAGE plpgsql
"""
PG_LEDGER_TRIGGERS = (
    "CREATE TRIGGER ledger_entries_no_change BEFORE UPDATE OR DELETE ON ledger_entries "
    "FOR EACH ROW EXECUTE FUNCTION ledger_entries_append_only()",
    "CREATE TRIGGER ledger_entries_no_truncate BEFORE TRUNCATE ON ledger_entries "
    "FOR EACH STATEMENT EXECUTE FUNCTION ledger_entries_append_only()",
)
SQLITE_LEDGER_TRIGGERS = (
    "CREATE TRIGGER ledger_entries_no_update BEFORE UPDATE ON ledger_entries "
    "BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only'); END",
    "CREATE TRIGGER ledger_entries_no_delete BEFORE DELETE ON ledger_entries "
    "BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only'); END",
)


revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "family_accounts",
        sa.Column("commune_id", sa.String(length=36), nullable=False),
        sa.Column("family_id", sa.String(length=36), nullable=False),
        sa.Column("created_at", services.common.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("commune_id", "family_id"),
    )
    op.create_table(
        "ledger_entries",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("commune_id", sa.String(length=36), nullable=False),
        sa.Column("family_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("payment_id", sa.String(length=36), nullable=True),
        sa.Column("booking_id", sa.String(length=36), nullable=True),
        sa.Column("refund_id", sa.String(length=36), nullable=True),
        sa.Column("description", sa.String(length=200), nullable=False),
        sa.Column("created_at", services.common.db.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("kind IN ('charge', 'payment', 'cancellation', 'refund')", name="ck_ledger_kind"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.create_index("ix_ledger_family", ["commune_id", "family_id", "id"], unique=False)

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
        "payment_settings",
        sa.Column("commune_id", sa.String(length=36), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("publishable_key", sa.String(length=255), nullable=True),
        sa.Column("secret_key_enc", sa.Text(), nullable=True),
        sa.Column("webhook_secret_enc", sa.Text(), nullable=True),
        sa.Column("updated_at", services.common.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=36), nullable=True),
        sa.PrimaryKeyConstraint("commune_id"),
    )
    op.create_table(
        "payments",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("commune_id", sa.String(length=36), nullable=False),
        sa.Column("family_id", sa.String(length=36), nullable=False),
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("provider_ref", sa.String(length=255), nullable=True),
        sa.Column("provider_idempotency_key", sa.String(length=100), nullable=False),
        sa.Column("provider_error", sa.String(length=30), nullable=True),
        sa.Column("checkout_url", sa.String(length=500), nullable=True),
        sa.Column("client_secret", sa.String(length=255), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("total_cents", sa.Integer(), nullable=False),
        sa.Column("credit_used_cents", sa.Integer(), nullable=False),
        sa.Column("refunded_cents", sa.Integer(), nullable=False),
        sa.Column("expires_at", services.common.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("created_at", services.common.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_at", services.common.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("settled_at", services.common.db.UtcDateTime(timezone=True), nullable=True),
        sa.CheckConstraint(
            "status IN ('pending', 'succeeded', 'failed', 'cancelled')", name="ck_payments_status"
        ),
        sa.CheckConstraint("amount_cents + credit_used_cents = total_cents", name="ck_payments_total"),
        sa.CheckConstraint("amount_cents >= 0", name="ck_payments_amount"),
        sa.CheckConstraint("credit_used_cents >= 0", name="ck_payments_credit"),
        sa.CheckConstraint("refunded_cents <= amount_cents", name="ck_payments_refunded_max"),
        sa.CheckConstraint("refunded_cents >= 0", name="ck_payments_refunded_positive"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint(
            "account_id", "idempotency_key", "commune_id", "family_id", name="uq_payments_key"
        ),
        sa.UniqueConstraint("provider", "provider_ref", name="uq_payments_provider_ref"),
    )
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.create_index("ix_payments_family", ["commune_id", "family_id", "status"], unique=False)

    op.create_table(
        "processed_events",
        sa.Column("consumer", sa.String(length=120), nullable=False),
        sa.Column("event_id", sa.String(length=36), nullable=False),
        sa.Column("processed_at", services.common.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("consumer", "event_id"),
    )
    op.create_table(
        "processed_provider_events",
        sa.Column("provider", sa.String(length=20), nullable=False),
        sa.Column("event_id", sa.String(length=255), nullable=False),
        sa.Column("payment_id", sa.String(length=36), nullable=True),
        sa.Column("kind", sa.String(length=30), nullable=False),
        sa.Column("processed_at", services.common.db.UtcDateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("provider", "event_id"),
    )
    op.create_table(
        "tariffs",
        sa.Column("activity_id", sa.String(length=36), nullable=False),
        sa.Column("commune_id", sa.String(length=36), nullable=False),
        sa.Column("unit_price_cents", sa.Integer(), nullable=True),
        sa.Column("bands", sa.JSON(none_as_null=True), nullable=True),
        sa.Column("cancellation_refund", sa.String(length=10), nullable=False),
        sa.Column("updated_at", services.common.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("updated_by", sa.String(length=36), nullable=True),
        sa.CheckConstraint("cancellation_refund IN ('refund', 'credit', 'none')", name="ck_tariffs_rule"),
        sa.CheckConstraint("(unit_price_cents IS NULL) <> (bands IS NULL)", name="ck_tariffs_flat_or_bands"),
        sa.PrimaryKeyConstraint("activity_id"),
    )
    with op.batch_alter_table("tariffs", schema=None) as batch_op:
        batch_op.create_index("ix_tariffs_commune", ["commune_id"], unique=False)

    op.create_table(
        "payment_days",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("payment_id", sa.String(length=36), nullable=False),
        sa.Column("booking_id", sa.String(length=36), nullable=False),
        sa.Column("child_id", sa.String(length=36), nullable=False),
        sa.Column("activity_id", sa.String(length=36), nullable=False),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("unit_price_cents", sa.Integer(), nullable=False),
        sa.Column("returned_at", services.common.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("returned_reason", sa.String(length=20), nullable=True),
        sa.CheckConstraint("unit_price_cents >= 0", name="ck_payment_days_price"),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("payment_id", "booking_id", name="uq_payment_days_booking"),
    )
    with op.batch_alter_table("payment_days", schema=None) as batch_op:
        batch_op.create_index("ix_payment_days_booking", ["booking_id"], unique=False)

    op.create_table(
        "refunds",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("payment_id", sa.String(length=36), nullable=False),
        sa.Column("commune_id", sa.String(length=36), nullable=False),
        sa.Column("family_id", sa.String(length=36), nullable=False),
        sa.Column("account_id", sa.String(length=36), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.Column("reason", sa.String(length=20), nullable=False),
        sa.Column("idempotency_key", sa.String(length=200), nullable=False),
        sa.Column("provider_idempotency_key", sa.String(length=250), nullable=False),
        sa.Column("provider_ref", sa.String(length=255), nullable=True),
        sa.Column("provider_error", sa.String(length=30), nullable=True),
        sa.Column("status", sa.String(length=10), nullable=False),
        sa.Column("booking_ids", sa.JSON(), nullable=False),
        sa.Column("created_at", services.common.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("created_by", sa.String(length=36), nullable=True),
        sa.Column("settled_at", services.common.db.UtcDateTime(timezone=True), nullable=True),
        sa.CheckConstraint("reason IN ('agent', 'cancellation', 'place_lost')", name="ck_refunds_reason"),
        sa.CheckConstraint("status IN ('pending', 'succeeded', 'failed')", name="ck_refunds_status"),
        sa.CheckConstraint("amount_cents > 0", name="ck_refunds_amount"),
        sa.ForeignKeyConstraint(
            ["payment_id"],
            ["payments.id"],
        ),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("payment_id", "idempotency_key", name="uq_refunds_key"),
    )
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.create_index("ix_refunds_pending", ["status", "created_at"], unique=False)

    if op.get_bind().dialect.name == "postgresql":
        op.execute(PG_LEDGER_FUNCTION)
        for statement in PG_LEDGER_TRIGGERS:
            op.execute(statement)
    else:
        for statement in SQLITE_LEDGER_TRIGGERS:
            op.execute(statement)


def downgrade() -> None:
    if op.get_bind().dialect.name == "postgresql":
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_no_change ON ledger_entries")
        op.execute("DROP TRIGGER IF EXISTS ledger_entries_no_truncate ON ledger_entries")
        op.execute("DROP FUNCTION IF EXISTS ledger_entries_append_only()")
    with op.batch_alter_table("refunds", schema=None) as batch_op:
        batch_op.drop_index("ix_refunds_pending")

    op.drop_table("refunds")
    with op.batch_alter_table("payment_days", schema=None) as batch_op:
        batch_op.drop_index("ix_payment_days_booking")

    op.drop_table("payment_days")
    with op.batch_alter_table("tariffs", schema=None) as batch_op:
        batch_op.drop_index("ix_tariffs_commune")

    op.drop_table("tariffs")
    op.drop_table("processed_provider_events")
    op.drop_table("processed_events")
    with op.batch_alter_table("payments", schema=None) as batch_op:
        batch_op.drop_index("ix_payments_family")

    op.drop_table("payments")
    op.drop_table("payment_settings")
    op.drop_table("outbox_events")
    with op.batch_alter_table("ledger_entries", schema=None) as batch_op:
        batch_op.drop_index("ix_ledger_family")

    op.drop_table("ledger_entries")
    op.drop_table("family_accounts")

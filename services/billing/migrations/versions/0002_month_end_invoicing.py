"""month-end invoicing: the days to invoice (billable_days, billing's projection of booking's events),
invoices and credit notes with their lines, their numbering per commune and year, the runs; the
tariff's invoice_basis; payments of an invoice (payments.invoice_id); the ledger's invoice and
credit_note entries (ledger_entries.invoice_id). SQLite rebuilds ledger_entries to change its CHECK:
its append-only triggers go with the old table and are created again.

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 08:00:00
"""

from alembic import op
import sqlalchemy as sa
import services.common.db

# Copied here (not imported) so that this migration never changes.
SQLITE_LEDGER_TRIGGERS = (
    "CREATE TRIGGER IF NOT EXISTS ledger_entries_no_update BEFORE UPDATE ON ledger_entries "
    "BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only'); END",
    "CREATE TRIGGER IF NOT EXISTS ledger_entries_no_delete BEFORE DELETE ON ledger_entries "
    "BEGIN SELECT RAISE(ABORT, 'ledger_entries is append-only'); END",
)
OLD_KINDS = "kind IN ('charge', 'payment', 'cancellation', 'refund')"
NEW_KINDS = "kind IN ('charge', 'payment', 'cancellation', 'refund', 'invoice', 'credit_note')"

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def _ledger(kinds: str, add_invoice_id: bool) -> None:
    sqlite = op.get_bind().dialect.name == "sqlite"
    if sqlite:
        for name in ("ledger_entries_no_update", "ledger_entries_no_delete"):
            op.execute(f"DROP TRIGGER IF EXISTS {name}")
    with op.batch_alter_table("ledger_entries") as batch:
        batch.drop_constraint("ck_ledger_kind", type_="check")
        batch.create_check_constraint("ck_ledger_kind", kinds)
        if add_invoice_id:
            batch.add_column(sa.Column("invoice_id", sa.String(length=36), nullable=True))
        else:
            batch.drop_column("invoice_id")
    if sqlite:
        for statement in SQLITE_LEDGER_TRIGGERS:
            op.execute(statement)


def upgrade() -> None:
    with op.batch_alter_table("tariffs") as batch:
        batch.add_column(
            sa.Column("invoice_basis", sa.String(length=10), server_default="booked", nullable=False)
        )
    with op.batch_alter_table("payments") as batch:
        batch.add_column(sa.Column("invoice_id", sa.String(length=36), nullable=True))
        batch.create_index("ix_payments_invoice", ["invoice_id"], unique=False)
    _ledger(NEW_KINDS, add_invoice_id=True)

    op.create_table(
        "billable_days",
        sa.Column("booking_id", sa.String(length=36), nullable=False),
        sa.Column("commune_id", sa.String(length=36), nullable=False),
        sa.Column("family_id", sa.String(length=36), nullable=False),
        sa.Column("child_id", sa.String(length=36), nullable=False),
        sa.Column("child_first_name", sa.String(length=100), nullable=True),
        sa.Column("activity_id", sa.String(length=36), nullable=False),
        sa.Column("activity_name", sa.String(length=200), nullable=True),
        sa.Column("date", sa.Date(), nullable=False),
        sa.Column("billing_mode", sa.String(length=10), nullable=False),
        sa.Column("state", sa.String(length=10), nullable=False),
        sa.Column("attendance", sa.String(length=20), nullable=True),
        sa.Column("updated_at", services.common.db.UtcDateTime(timezone=True), nullable=False),
        sa.CheckConstraint("state IN ('booked', 'cancelled')", name="ck_billable_days_state"),
        sa.CheckConstraint(
            "attendance IS NULL OR attendance IN ('present', 'absent', 'absent_justified')",
            name="ck_billable_days_attendance",
        ),
        sa.PrimaryKeyConstraint("booking_id"),
    )
    op.create_index("ix_billable_days_family", "billable_days", ["commune_id", "family_id", "date"])
    op.create_table(
        "invoice_sequences",
        sa.Column("commune_id", sa.String(length=36), nullable=False),
        sa.Column("year", sa.Integer(), nullable=False),
        sa.Column("next_number", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("commune_id", "year"),
    )
    op.create_table(
        "invoice_runs",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("commune_id", sa.String(length=36), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("started_by", sa.String(length=36), nullable=True),
        sa.Column("started_at", services.common.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("finished_at", services.common.db.UtcDateTime(timezone=True), nullable=True),
        sa.Column("invoices_issued", sa.Integer(), nullable=False),
        sa.Column("credit_notes_issued", sa.Integer(), nullable=False),
        sa.Column("total_cents", sa.Integer(), nullable=False),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_invoice_runs_month", "invoice_runs", ["commune_id", "month"])
    op.create_table(
        "invoices",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("commune_id", sa.String(length=36), nullable=False),
        sa.Column("family_id", sa.String(length=36), nullable=False),
        sa.Column("month", sa.String(length=7), nullable=False),
        sa.Column("kind", sa.String(length=12), nullable=False),
        sa.Column("number", sa.String(length=20), nullable=False),
        sa.Column("total_cents", sa.Integer(), nullable=False),
        sa.Column("credit_applied_cents", sa.Integer(), nullable=False),
        sa.Column("paid_cents", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(length=16), nullable=False),
        sa.Column("issued_at", services.common.db.UtcDateTime(timezone=True), nullable=False),
        sa.Column("due_date", sa.Date(), nullable=False),
        sa.Column("family_name", sa.String(length=200), nullable=True),
        sa.Column("commune_name", sa.String(length=200), nullable=True),
        sa.Column("corrects_id", sa.String(length=36), nullable=True),
        sa.Column("run_id", sa.String(length=36), nullable=True),
        sa.CheckConstraint("kind IN ('invoice', 'credit_note')", name="ck_invoices_kind"),
        sa.CheckConstraint("status IN ('issued', 'partially_paid', 'paid')", name="ck_invoices_status"),
        sa.CheckConstraint("total_cents >= 0", name="ck_invoices_total"),
        sa.CheckConstraint("credit_applied_cents >= 0", name="ck_invoices_credit"),
        sa.CheckConstraint("paid_cents >= 0 AND paid_cents <= total_cents", name="ck_invoices_paid"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("commune_id", "number", name="uq_invoices_number"),
    )
    op.create_index("ix_invoices_month", "invoices", ["commune_id", "month", "family_id"])
    op.create_index("ix_invoices_family", "invoices", ["family_id", "issued_at"])
    op.create_table(
        "invoice_lines",
        sa.Column(
            "id", sa.BigInteger().with_variant(sa.Integer(), "sqlite"), autoincrement=True, nullable=False
        ),
        sa.Column("invoice_id", sa.String(length=36), nullable=False),
        sa.Column("position", sa.Integer(), nullable=False),
        sa.Column("child_id", sa.String(length=36), nullable=False),
        sa.Column("child_first_name", sa.String(length=100), nullable=False),
        sa.Column("activity_id", sa.String(length=36), nullable=False),
        sa.Column("activity_name", sa.String(length=200), nullable=False),
        sa.Column("unit_price_cents", sa.Integer(), nullable=False),
        sa.Column("quantity", sa.Integer(), nullable=False),
        sa.Column("amount_cents", sa.Integer(), nullable=False),
        sa.CheckConstraint("quantity > 0", name="ck_invoice_lines_quantity"),
        sa.ForeignKeyConstraint(["invoice_id"], ["invoices.id"]),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_invoice_lines_invoice", "invoice_lines", ["invoice_id", "position"])


def downgrade() -> None:
    op.drop_index("ix_invoice_lines_invoice", table_name="invoice_lines")
    op.drop_table("invoice_lines")
    op.drop_index("ix_invoices_family", table_name="invoices")
    op.drop_index("ix_invoices_month", table_name="invoices")
    op.drop_table("invoices")
    op.drop_index("ix_invoice_runs_month", table_name="invoice_runs")
    op.drop_table("invoice_runs")
    op.drop_table("invoice_sequences")
    op.drop_index("ix_billable_days_family", table_name="billable_days")
    op.drop_table("billable_days")
    _ledger(OLD_KINDS, add_invoice_id=False)
    with op.batch_alter_table("payments") as batch:
        batch.drop_index("ix_payments_invoice")
        batch.drop_column("invoice_id")
    with op.batch_alter_table("tariffs") as batch:
        batch.drop_column("invoice_basis")

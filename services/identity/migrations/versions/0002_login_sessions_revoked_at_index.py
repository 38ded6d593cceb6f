"""index login_sessions.revoked_at (the revocations a starting gateway loads)

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-26 10:45:00
"""

from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_index(op.f("ix_login_sessions_revoked_at"), "login_sessions", ["revoked_at"], unique=False)


def downgrade() -> None:
    op.drop_index(op.f("ix_login_sessions_revoked_at"), table_name="login_sessions")

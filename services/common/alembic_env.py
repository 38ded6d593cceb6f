"""The body of every service's migrations/env.py (online mode only)."""

from __future__ import annotations

from alembic import context
from sqlalchemy import MetaData, text

from services.common.db import get_engine


def run_migrations(metadata: MetaData) -> None:
    config = context.config
    engine = get_engine(config.get_main_option("sqlalchemy.url"))
    with engine.connect() as connection:
        context.configure(
            connection=connection,
            target_metadata=metadata,
            render_as_batch=connection.dialect.name == "sqlite",
            compare_type=True,
        )
        with context.begin_transaction():
            if connection.dialect.name == "postgresql":
                # replicas starting together: one migrates, the others wait and then find it done
                connection.execute(text("SELECT pg_advisory_xact_lock(724301)"))
            context.run_migrations()
        connection.commit()

"""Each service's Alembic head matches its models, on PostgreSQL (no drift between the two)."""

import importlib

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import create_engine

from services.common.migrate import SERVICES_WITH_DB, upgrade

pytestmark = pytest.mark.integration


@pytest.mark.parametrize("service", SERVICES_WITH_DB)
def test_migrations_match_models(service, pg_databases):
    uri = pg_databases.create(f"mig_{service}")
    upgrade(service, uri)
    upgrade(service, uri)  # running again is a no-op
    base = importlib.import_module(f"services.{service}.models").Base
    engine = create_engine(uri)
    try:
        with engine.connect() as conn:
            context = MigrationContext.configure(conn, opts={"compare_type": True})
            assert compare_metadata(context, base.metadata) == []
    finally:
        engine.dispose()

"""Append-only audit tables: the trigger statements that refuse UPDATE and DELETE (and TRUNCATE on
PostgreSQL), and generic writing and reading of entries. Each service declares its own audit model
(its own columns); migrations keep their own frozen copy of the statements."""

from __future__ import annotations

from typing import Any

from sqlalchemy import DDL, Table, event, select
from sqlalchemy.orm import Session

from services.common import clock


def append_only_statements(table: str) -> dict[str, tuple[str, ...]]:
    """The DDL per dialect ("postgresql", "sqlite") making `table` append-only."""
    function = f"{table}_append_only"
    refusal = f"{table} is append-only"
    return {
        "postgresql": (
            f"CREATE OR REPLACE FUNCTION {function}() RETURNS trigger AS $$\n"
            f"BEGIN\n    RAISE EXCEPTION '{refusal}';\nEND;\n$$ LANGUAGE plpgsql",
            f"CREATE TRIGGER {table}_no_change BEFORE UPDATE OR DELETE ON {table} "
            f"FOR EACH ROW EXECUTE FUNCTION {function}()",
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON {table} "
            f"FOR EACH STATEMENT EXECUTE FUNCTION {function}()",
        ),
        "sqlite": (
            f"CREATE TRIGGER {table}_no_update BEFORE UPDATE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{refusal}'); END",
            f"CREATE TRIGGER {table}_no_delete BEFORE DELETE ON {table} "
            f"BEGIN SELECT RAISE(ABORT, '{refusal}'); END",
        ),
    }


def make_append_only(table: Table) -> None:
    """Run the triggers whenever `table` is created with create_all (unit tests, tools)."""
    for dialect, statements in append_only_statements(table.name).items():
        for statement in statements:
            event.listen(table, "after_create", DDL(statement).execute_if(dialect=dialect))


def record(session: Session, model: type, **fields: Any) -> None:
    """One entry, in the transaction of the read or change it records."""
    session.add(model(at=clock.now(), **fields))


def entries(session: Session, model: type, commune_id: str, limit: int) -> list[dict[str, Any]]:
    """The commune's newest entries first, every column (ids and action names only)."""
    rows = session.scalars(
        select(model).where(model.commune_id == commune_id).order_by(model.id.desc()).limit(limit)
    ).all()
    columns = [column.key for column in model.__table__.columns]
    return [
        {
            key: (str(value) if key == "id" else value.isoformat() if key == "at" else value)
            for key in columns
            for value in (getattr(row, key),)
        }
        for row in rows
    ]

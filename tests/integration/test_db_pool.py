"""The pool's disconnect handling on PostgreSQL (services/common/db.py): a connection that rested in
the pool is pinged and, if the server dropped it, replaced without the caller seeing an error; one in
steady use is not pinged (a round trip saved per transaction)."""

from sqlalchemy import create_engine, text

from services.common import db


def _engine(uri, idle_seconds):
    engine = create_engine(uri, pool_size=1, max_overflow=0)
    db._ping_when_idle(engine, idle_seconds)
    return engine


def _backend_pid(engine):
    with engine.connect() as conn:
        return conn.execute(text("SELECT pg_backend_pid()")).scalar_one()


def test_a_connection_dropped_while_idle_is_replaced_before_use(pg_databases):
    uri = pg_databases.create("pool")
    engine = _engine(uri, idle_seconds=0.0)
    try:
        first = _backend_pid(engine)
        with create_engine(uri).connect() as admin:  # the server ends the pooled session (a restart)
            assert admin.execute(text("SELECT pg_terminate_backend(:pid)"), {"pid": first}).scalar_one()
        second = _backend_pid(engine)  # no error: pinged, found dead, replaced
        assert second != first
    finally:
        engine.dispose()


def test_a_connection_in_steady_use_is_not_pinged(pg_databases, monkeypatch):
    uri = pg_databases.create("pool-steady")
    engine = _engine(uri, idle_seconds=60.0)
    pings = []
    original = engine.dialect.do_ping
    monkeypatch.setattr(engine.dialect, "do_ping", lambda conn: pings.append(1) or original(conn))
    try:
        pids = {_backend_pid(engine) for _ in range(5)}
        assert len(pids) == 1 and pings == []
        engine.pool._pool.queue[0].info["checked_in_at"] -= 120  # as if it had rested two minutes
        assert _backend_pid(engine) in pids and pings == [1]
    finally:
        engine.dispose()

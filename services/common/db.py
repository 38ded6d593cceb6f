"""SQLAlchemy 2 for nameko: one engine per database URI per process, one session per worker."""

from __future__ import annotations

import datetime as dt
import time
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from nameko.extensions import DependencyProvider
from sqlalchemy import Connection, DateTime, Engine, String, create_engine, event, exc, select, text
from sqlalchemy.orm import DeclarativeBase, Session, sessionmaker
from sqlalchemy.types import TypeDecorator

DB_URIS_KEY = "DB_URIS"


class UtcDateTime(TypeDecorator):
    """Stores UTC, always returns timezone-aware UTC (SQLite has no time zones)."""

    impl = DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        if value.tzinfo is None:
            raise ValueError("naive datetime refused: use services.common.clock.now()")
        value = value.astimezone(dt.UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value: dt.datetime | None, dialect: Any) -> dt.datetime | None:
        if value is None:
            return None
        return value.replace(tzinfo=dt.UTC) if value.tzinfo is None else value.astimezone(dt.UTC)


def insert_for(session: Session, model: type) -> Any:
    """INSERT for the session's dialect (PostgreSQL or SQLite), so that ON CONFLICT DO NOTHING / DO
    UPDATE can be used the same way on both."""
    if session.get_bind().dialect.name == "postgresql":
        from sqlalchemy.dialects.postgresql import insert
    else:
        from sqlalchemy.dialects.sqlite import insert
    return insert(model)


def lock_or_create(session: Session, model: type, keys: dict[str, Any], defaults: dict[str, Any]) -> Any:
    """The row of `model` whose unique `keys` are given, created with `defaults` if missing
    (concurrent creators meet on the unique key), then locked FOR UPDATE until the transaction ends
    (SQLite: the INSERT already took the database's write lock). Serializes work on one thing: a
    family's account, a commune's invoice numbers."""
    session.execute(
        insert_for(session, model)
        .values(**keys, **defaults)
        .on_conflict_do_nothing(index_elements=list(keys))
    )
    return session.execute(
        select(model)
        .where(*(getattr(model, name) == value for name, value in keys.items()))
        .with_for_update()
        .execution_options(populate_existing=True)  # the locked row as it is now, not a cached copy
    ).scalar_one()


def new_id() -> str:
    return str(uuid.uuid4())


def id_column_type() -> String:
    return String(36)


_engines: dict[tuple[str, int], Engine] = {}
# A pooled PostgreSQL connection idle for longer than this is pinged before use (a server restart or a
# dropped link is then seen before a request fails); one in steady use is not (a round trip saved on
# every transaction, which the opening rush pays thousands of times).
PING_AFTER_IDLE_SECONDS = 10.0


def get_engine(uri: str, pool_size: int = 10) -> Engine:
    """The process-wide engine for `uri` (cached: workers and relays share one pool)."""
    engine = _engines.get((uri, pool_size))
    if engine is None:
        engine = _engines.setdefault((uri, pool_size), _create_engine(uri, pool_size))
    return engine


def dispose_engines() -> None:
    """Close every pooled connection of this process (they reopen on demand). Test suites call it
    between tests so that idle pools do not add up against the server's connection limit."""
    for engine in [*_engines.values(), *_autocommit_engines.values()]:
        engine.dispose()


def _create_engine(uri: str, pool_size: int) -> Engine:
    if uri.startswith("sqlite"):
        engine = create_engine(
            uri,
            connect_args={"check_same_thread": False, "timeout": 30},
            pool_pre_ping=True,
            hide_parameters=True,  # errors must not quote emails or tokens into the logs
        )

        @event.listens_for(engine, "connect")
        def _sqlite_pragmas(dbapi_conn: Any, _record: Any) -> None:
            cursor = dbapi_conn.cursor()
            cursor.execute("PRAGMA journal_mode=WAL")
            cursor.execute("PRAGMA foreign_keys=ON")
            cursor.execute("PRAGMA busy_timeout=30000")
            cursor.close()

        return engine
    return _postgresql_engine(uri, pool_size)


def _postgresql_engine(url: Any, pool_size: int, **options: Any) -> Engine:
    engine = create_engine(
        url,
        pool_size=pool_size,
        max_overflow=pool_size,
        pool_recycle=1800,
        hide_parameters=True,  # errors must not quote emails or tokens into the logs
        **options,
    )
    _ping_when_idle(engine, PING_AFTER_IDLE_SECONDS)
    return engine


def _ping_when_idle(engine: Engine, idle_seconds: float) -> None:
    """Pessimistic disconnect handling for connections that sat in the pool: the dialect's own ping
    on checkout after `idle_seconds` of rest; a dead one is replaced by the pool (DisconnectionError).
    A connection that breaks while in steady use fails its statement, and SQLAlchemy then
    invalidates the pool's older connections, as it does with pre-ping."""

    @event.listens_for(engine, "checkin")
    def _rested_since(_dbapi_conn: Any, record: Any) -> None:
        record.info["checked_in_at"] = time.monotonic()

    @event.listens_for(engine, "checkout")
    def _ping_if_rested(dbapi_conn: Any, record: Any, _proxy: Any) -> None:
        rested_since = record.info.get("checked_in_at")  # none yet: a connection just opened
        if rested_since is None or time.monotonic() - rested_since < idle_seconds:
            return
        try:
            engine.dialect.do_ping(dbapi_conn)
        except Exception as error:  # noqa: BLE001 - any failure: the pool opens a new connection
            raise exc.DisconnectionError("connection lost while idle in the pool") from error


def db_uri(config: dict[str, Any], service_name: str) -> str:
    try:
        return config[DB_URIS_KEY][service_name]
    except KeyError as exc:
        raise RuntimeError(f"config has no {DB_URIS_KEY}.{service_name}") from exc


def service_engine(config: dict[str, Any], service_name: str) -> Engine:
    """The engine of this service's database, its pool sized for the worker count."""
    return get_engine(db_uri(config, service_name), pool_size=int(config.get("max_workers", 10)))


def ping(engine: Engine) -> None:
    with engine.connect() as conn:
        conn.execute(text("SELECT 1"))


_autocommit_engines: dict[Engine, Engine] = {}


READS_POOL_SIZE = 5


def _autocommit(engine: Engine) -> Engine:
    """The engine for autocommit reads, made once per engine. On PostgreSQL a small pool of its own
    whose connections are in autocommit from the start: switching a pooled connection to autocommit
    and back on each checkout cost the calendar a sixth of its time. SQLite: the same pool."""
    found = _autocommit_engines.get(engine)
    if found is None:
        if engine.dialect.name == "postgresql":
            reads = _postgresql_engine(engine.url, READS_POOL_SIZE, isolation_level="AUTOCOMMIT")
        else:
            reads = engine.execution_options(isolation_level="AUTOCOMMIT")
        found = _autocommit_engines.setdefault(engine, reads)
    return found


class WorkerDb:
    """What a worker sees: `with db.transaction() as session:` commits or rolls back."""

    def __init__(self, factory: sessionmaker[Session]) -> None:
        self._factory = factory
        self._sessions: list[Session] = []

    @contextmanager
    def transaction(self) -> Iterator[Session]:
        session = self._factory()
        self._sessions.append(session)
        try:
            with session.begin():
                yield session
        finally:
            session.close()
            self._sessions.remove(session)

    @contextmanager
    def reads(self) -> Iterator[Session]:
        """A session for reads only, in autocommit: no BEGIN and COMMIT round trips, and each
        statement sees what is committed when it runs (not one snapshot for all). For views asked
        very often where that is enough (a child's calendar); never for anything that writes."""
        session = self._factory(bind=_autocommit(self.engine))
        self._sessions.append(session)
        try:
            yield session
        finally:
            session.close()
            self._sessions.remove(session)

    @contextmanager
    def read(self) -> Iterator[Connection]:
        """A Core connection in autocommit for a read of one or two statements on a hot path (the
        access checks other services ask on every request): no ORM session, and no BEGIN and
        ROLLBACK round trips around the query."""
        with _autocommit(self.engine).connect() as conn:
            yield conn

    @property
    def engine(self) -> Engine:
        return self._factory.kw["bind"]

    def close(self) -> None:
        for session in list(self._sessions):
            session.close()
        self._sessions.clear()


class Database(DependencyProvider):
    """Gives each worker a `WorkerDb` bound to this service's database (DB_URIS[service_name])."""

    def __init__(self, base: type[DeclarativeBase]) -> None:
        self.base = base
        self.factory: sessionmaker[Session] | None = None
        self._workers: dict[Any, WorkerDb] = {}

    def setup(self) -> None:
        engine = service_engine(self.container.config, self.container.service_name)
        self.factory = sessionmaker(bind=engine, expire_on_commit=False)

    def get_dependency(self, worker_ctx: Any) -> WorkerDb:
        worker_db = WorkerDb(self.factory)
        self._workers[worker_ctx] = worker_db
        return worker_db

    def worker_teardown(self, worker_ctx: Any) -> None:
        worker_db = self._workers.pop(worker_ctx, None)
        if worker_db is not None:
            worker_db.close()

"""Events that are never lost nor applied twice.

Outbox: a service writes its business rows and an `outbox_events` row in one transaction
(`record_event`); the `OutboxRelay` publishes pending rows to the service's nameko events exchange
after commit and deletes them. A crash between publish and delete republishes: consumers dedupe.

Inbox: a handler calls `first_delivery(session, ...)` in the transaction that holds its effects;
a redelivered event finds its id already recorded and changes nothing.
"""

from __future__ import annotations

import datetime as dt
import logging
from collections.abc import Iterable
from typing import Any

import eventlet
from nameko.amqp.publish import Publisher
from nameko.constants import AMQP_URI_CONFIG_KEY
from nameko.extensions import DependencyProvider
from nameko.standalone.events import get_event_exchange
from sqlalchemy import JSON, BigInteger, Integer, String, delete, event, insert, select
from sqlalchemy.orm import DeclarativeBase, Mapped, Session, mapped_column, sessionmaker

from services.common import clock
from services.common.db import UtcDateTime, insert_for, new_id, service_engine

log = logging.getLogger(__name__)

_PENDING_FLAG = "outbox_pending"


def messaging_tables(base: type[DeclarativeBase]) -> tuple[type, type]:
    """Declare this service's `outbox_events` and `processed_events` tables on its own Base."""

    class OutboxEvent(base):
        __tablename__ = "outbox_events"
        id: Mapped[int] = mapped_column(
            BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
        )
        event_id: Mapped[str] = mapped_column(String(36), unique=True)
        event_type: Mapped[str] = mapped_column(String(100))
        payload: Mapped[dict[str, Any]] = mapped_column(JSON)
        created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
        attempts: Mapped[int] = mapped_column(Integer, default=0)

    class ProcessedEvent(base):
        __tablename__ = "processed_events"
        consumer: Mapped[str] = mapped_column(String(120), primary_key=True)
        event_id: Mapped[str] = mapped_column(String(36), primary_key=True)
        processed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())

    return OutboxEvent, ProcessedEvent


def record_event(session: Session, model: type, event_type: str, payload: dict[str, Any]) -> str:
    """Add an event to the outbox in the caller's transaction; returns its `event_id`."""
    event_id = new_id()
    session.add(
        model(
            event_id=event_id,
            event_type=event_type,
            payload={**payload, "event_id": event_id},
            created_at=clock.now(),
            attempts=0,
        )
    )
    session.info[_PENDING_FLAG] = True
    return event_id


def record_events(
    session: Session, model: type, event_type: str, payloads: Iterable[dict[str, Any]], now: dt.datetime
) -> int:
    """Many events of one type in ONE INSERT (a batch job: one per invoice of a month-end run), in
    the caller's transaction; the relay is woken after commit as for record_event. Returns how many."""
    rows = []
    for payload in payloads:
        event_id = new_id()
        rows.append(
            {
                "event_id": event_id,
                "event_type": event_type,
                "payload": {**payload, "event_id": event_id},
                "created_at": now,
                "attempts": 0,
            }
        )
    if rows:
        session.execute(insert(model), rows)
        session.info[_PENDING_FLAG] = True
    return len(rows)


def first_delivery(session: Session, model: type, consumer: str, event_id: str) -> bool:
    """Record `event_id` as processed by `consumer`; False if it already was (a redelivery). One
    INSERT ... ON CONFLICT DO NOTHING on the (consumer, event_id) key: a concurrent delivery of the
    same event waits for the first one's transaction, then inserts nothing."""
    if not event_id:
        raise ValueError("event without event_id")
    inserted = session.execute(
        insert_for(session, model)
        .values(consumer=consumer, event_id=event_id, processed_at=clock.now())
        .on_conflict_do_nothing(index_elements=["consumer", "event_id"])
    )
    return inserted.rowcount == 1


class OutboxRelay(DependencyProvider):
    """Publishes this service's outbox: at once after a commit that added events, else every
    `OUTBOX_POLL_SECONDS` (default 1 s) to pick up what a crash or broker outage left behind."""

    batch_size = 100

    def __init__(self, model: type) -> None:
        self.model = model
        self._wakeup = eventlet.event.Event()
        self._running = False

    def setup(self) -> None:
        config = self.container.config
        self.exchange = get_event_exchange(self.container.service_name, config)
        self.publisher = Publisher(config[AMQP_URI_CONFIG_KEY], declare=[self.exchange])
        self.poll_seconds = float(config.get("OUTBOX_POLL_SECONDS", 1.0))
        self.engine = service_engine(config, self.container.service_name)
        self.factory = sessionmaker(bind=self.engine, expire_on_commit=False)
        if not event.contains(Session, "after_commit", self._after_commit):
            event.listen(Session, "after_commit", self._after_commit)

    def start(self) -> None:
        self._running = True
        self.container.spawn_managed_thread(self._run)

    def stop(self) -> None:
        self._running = False
        self._wake()
        if event.contains(Session, "after_commit", self._after_commit):
            event.remove(Session, "after_commit", self._after_commit)

    def kill(self) -> None:
        self.stop()

    def _after_commit(self, session: Session) -> None:
        if (
            session.info.pop(_PENDING_FLAG, False)
            and session.bind is not None
            and session.bind.url == self.engine.url
        ):
            self._wake()

    def _wake(self) -> None:
        if not self._wakeup.ready():
            self._wakeup.send(True)

    def _run(self) -> None:
        while self._running:
            with eventlet.Timeout(self.poll_seconds, False):
                self._wakeup.wait()
            self._wakeup = eventlet.event.Event()
            if not self._running:
                break
            try:
                while self.relay_once() == self.batch_size:
                    pass
            except Exception:  # broker or database down: keep the rows, try again later
                log.exception("outbox relay failed; will retry")
                eventlet.sleep(self.poll_seconds)

    def relay_once(self) -> int:
        """Publish up to one batch of pending events in order; returns how many were sent."""
        with self.factory() as session, session.begin():
            query = select(self.model).order_by(self.model.id).limit(self.batch_size)
            if self.engine.dialect.name == "postgresql":
                query = query.with_for_update(skip_locked=True)
            rows = session.scalars(query).all()
            for row in rows:
                self.publisher.publish(row.payload, exchange=self.exchange, routing_key=row.event_type)
            if rows:
                session.execute(delete(self.model).where(self.model.id.in_([r.id for r in rows])))
            return len(rows)

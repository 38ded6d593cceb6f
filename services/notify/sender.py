"""The sender loop: a managed thread that sends due messages, woken right after a commit that
queued messages and otherwise every NOTIFY_POLL_SECONDS (retries, crashes, other instances)."""

from __future__ import annotations

import logging
from typing import Any

import eventlet
from nameko.extensions import DependencyProvider
from sqlalchemy import event
from sqlalchemy.orm import Session, sessionmaker

from services.common.db import service_engine
from services.notify import delivery
from services.notify.settings import NotifySettings
from services.notify.transports import DeliveryError, Transport, build_transport

log = logging.getLogger(__name__)


class MailSender(DependencyProvider):
    """Sends this service's `outgoing_messages`, one claimed message at a time.

    Workers get the provider itself (`transport.name` for health, `wake()`)."""

    stop_grace_seconds = 30.0

    def __init__(self) -> None:
        self._wakeup = eventlet.event.Event()
        self._running = False
        self._thread: Any = None

    # -------------------------------------------------------------- nameko lifecycle

    def setup(self) -> None:
        config = self.container.config
        self.settings = NotifySettings.from_config(config)
        self.transport: Transport = build_transport(self.settings)
        self.engine = service_engine(config, self.container.service_name)  # shared with Database
        self.factory = sessionmaker(bind=self.engine, expire_on_commit=False)
        self.skip_locked = self.engine.dialect.name == "postgresql"
        if not event.contains(Session, "after_commit", self._after_commit):
            event.listen(Session, "after_commit", self._after_commit)

    def start(self) -> None:
        self._running = True
        self._thread = self.container.spawn_managed_thread(self._run)
        log.info("mail sender started (transport=%s)", self.transport.name)

    def stop(self) -> None:
        """Let a send in flight finish (bounded), so that its outcome is recorded."""
        self._halt()
        thread, self._thread = self._thread, None
        if thread is not None:
            with eventlet.Timeout(self.stop_grace_seconds, False):
                try:
                    thread.wait()
                except Exception:  # noqa: S110 - it already logged; stopping anyway
                    pass

    def kill(self) -> None:
        self._halt()  # the container kills the managed thread itself

    def get_dependency(self, worker_ctx: Any) -> MailSender:
        return self

    # -------------------------------------------------------------- waking up

    def wake(self) -> None:
        if not self._wakeup.ready():
            self._wakeup.send(True)

    def _halt(self) -> None:
        self._running = False
        self.wake()
        if event.contains(Session, "after_commit", self._after_commit):
            event.remove(Session, "after_commit", self._after_commit)

    def _after_commit(self, session: Session) -> None:
        if session.info.pop(delivery.QUEUED_FLAG, False) and _same_database(session.bind, self.engine):
            self.wake()

    # -------------------------------------------------------------- the loop

    def _run(self) -> None:
        while self._running:
            with eventlet.Timeout(self.settings.poll_seconds, False):
                self._wakeup.wait()
            self._wakeup = eventlet.event.Event()
            if not self._running:
                break
            try:
                while self._running and self.send_next():
                    eventlet.sleep(0)
            except Exception as exc:  # database down: the rows stay pending, try again later
                # the type only: database errors quote statement parameters (addresses)
                log.error("mail sender failed (%s); will retry", type(exc).__name__)
                eventlet.sleep(self.settings.poll_seconds)

    def send_next(self) -> bool:
        """Claim, send and record one due message; False when none is due."""
        with self.factory() as session, session.begin():
            claim = delivery.claim_next(session, self.settings, self.skip_locked)
        if claim is None:
            return False
        try:
            self.transport.send(delivery.build_email(claim, self.settings), claim.id)
        except DeliveryError as exc:
            self._failed(claim, exc.reason, exc.permanent)
            return True
        except Exception as exc:  # a bug while building or sending: counts as a failed attempt
            self._failed(claim, type(exc).__name__, False)
            return True
        with self.factory() as session, session.begin():
            recorded = delivery.record_sent(session, claim)
        log.info(
            "sent message %s kind=%s attempt=%d via %s%s",
            claim.id,
            claim.kind,
            claim.attempt,
            self.transport.name,
            "" if recorded else " (claim lost: outcome not recorded)",
        )
        return True

    def _failed(self, claim: delivery.Claim, reason: str, permanent: bool) -> None:
        with self.factory() as session, session.begin():
            status = delivery.record_failure(session, claim, self.settings, reason, permanent)
        log.warning(
            "message %s kind=%s attempt=%d failed (%s): %s",
            claim.id,
            claim.kind,
            claim.attempt,
            reason,
            {None: "claim lost", delivery.FAILED: "giving up"}.get(status, "will retry"),
        )


def _same_database(bind: Any, engine: Any) -> bool:
    return bind is engine or (bind is not None and getattr(bind, "url", None) == engine.url)

"""The notify nameko service: entrypoints only. Emails are queued by inbound.py and delivery.py,
sent by sender.py through transports.py, worded by templates/ (rendering.py)."""

from __future__ import annotations

from typing import Any

from nameko.dependency_providers import Config
from nameko.events import event_handler

from services.common import errors
from services.common.context import Caller, CallerProvider, require_internal
from services.common.db import Database
from services.common.health import readiness
from services.common.messaging import OutboxRelay
from services.common.rpc import ServiceRpc, rpc
from services.notify import events, inbound
from services.notify.models import Base, OutboxEvent
from services.notify.sender import MailSender
from services.notify.settings import NotifySettings

EXPECTED = (errors.ServiceError,)


class NotifyService:
    name = "notify"

    db = Database(Base)
    outbox = OutboxRelay(OutboxEvent)
    sender: MailSender = MailSender()
    caller: Caller = CallerProvider()
    identity = ServiceRpc("identity")  # booking and billing emails: an account's address and language
    communes = ServiceRpc("communes")  # booking emails: a family's contact address

    config = Config()

    @property
    def settings(self) -> NotifySettings:
        return NotifySettings.from_config(self.config)

    @event_handler(events.IDENTITY, events.EMAIL_VERIFICATION_REQUESTED, requeue_on_error=True)
    def on_email_verification_requested(self, payload: dict[str, Any]) -> None:
        inbound.handle_event(self.db, self.settings, events.EMAIL_VERIFICATION_REQUESTED, payload)

    @event_handler(events.IDENTITY, events.PASSWORD_RESET_REQUESTED, requeue_on_error=True)
    def on_password_reset_requested(self, payload: dict[str, Any]) -> None:
        inbound.handle_event(self.db, self.settings, events.PASSWORD_RESET_REQUESTED, payload)

    @event_handler(events.IDENTITY, events.PASSWORD_CHANGED, requeue_on_error=True)
    def on_password_changed(self, payload: dict[str, Any]) -> None:
        inbound.handle_event(self.db, self.settings, events.PASSWORD_CHANGED, payload)

    @event_handler(events.COMMUNES, events.ADHESION_CODE_ISSUED, requeue_on_error=True)
    def on_adhesion_code_issued(self, payload: dict[str, Any]) -> None:
        inbound.handle_event(self.db, self.settings, events.ADHESION_CODE_ISSUED, payload)

    @event_handler(events.COMMUNES, events.AGENT_INVITED, requeue_on_error=True)
    def on_agent_invited(self, payload: dict[str, Any]) -> None:
        inbound.handle_event(self.db, self.settings, events.AGENT_INVITED, payload)

    # booking's events name their recipient by id: the address is asked for now (inbound.py)

    @event_handler(events.BOOKING, events.CART_VALIDATED, requeue_on_error=True)
    def on_cart_validated(self, payload: dict[str, Any]) -> None:
        self._booking_event(events.CART_VALIDATED, payload)

    @event_handler(events.BOOKING, events.BOOKING_PROMOTED, requeue_on_error=True)
    def on_booking_promoted(self, payload: dict[str, Any]) -> None:
        self._booking_event(events.BOOKING_PROMOTED, payload)

    @event_handler(events.BOOKING, events.CANCELLATION_DECIDED, requeue_on_error=True)
    def on_cancellation_decided(self, payload: dict[str, Any]) -> None:
        self._booking_event(events.CANCELLATION_DECIDED, payload)

    @event_handler(events.BOOKING, events.BOOKING_CHANGED_BY_AGENT, requeue_on_error=True)
    def on_booking_changed_by_agent(self, payload: dict[str, Any]) -> None:
        self._booking_event(events.BOOKING_CHANGED_BY_AGENT, payload)

    # billing's events: emails to the account that paid (its address asked of identity now)

    @event_handler(events.BILLING, events.PAYMENT_SUCCEEDED, requeue_on_error=True)
    def on_payment_succeeded(self, payload: dict[str, Any]) -> None:
        self._booking_event(events.PAYMENT_SUCCEEDED, payload)

    @event_handler(events.BILLING, events.PAYMENT_FAILED, requeue_on_error=True)
    def on_payment_failed(self, payload: dict[str, Any]) -> None:
        self._booking_event(events.PAYMENT_FAILED, payload)

    @event_handler(events.BILLING, events.REFUND_ISSUED, requeue_on_error=True)
    def on_refund_issued(self, payload: dict[str, Any]) -> None:
        self._booking_event(events.REFUND_ISSUED, payload)

    @event_handler(events.BILLING, events.CREDIT_GRANTED, requeue_on_error=True)
    def on_credit_granted(self, payload: dict[str, Any]) -> None:
        self._booking_event(events.CREDIT_GRANTED, payload)

    @event_handler(events.BILLING, events.INVOICE_ISSUED, requeue_on_error=True)
    def on_invoice_issued(self, payload: dict[str, Any]) -> None:
        """To the family's contact address (communes' family_contact), in French."""
        self._booking_event(events.INVOICE_ISSUED, payload)

    def _booking_event(self, event_type: str, payload: dict[str, Any]) -> None:
        inbound.handle_booking_event(
            self.db, self.settings, self.identity, self.communes, event_type, payload
        )

    @rpc
    def health(self) -> dict[str, Any]:
        return {**readiness(self.name, self.db), "transport": self.sender.transport.name}

    @rpc(expected_exceptions=EXPECTED)
    def send_test(self, to: str, locale: str = "fr") -> dict[str, Any]:
        """Queue a test email (admins; internal callers without an account too)."""
        self._require_admin_or_internal()
        return inbound.queue_test(self.db, to, locale)

    @rpc(expected_exceptions=EXPECTED)
    def message_status(self, source_event_id: str) -> dict[str, Any] | None:
        """Delivery state of the email an event produced (no address, no body), or None."""
        self._require_admin_or_internal()
        return inbound.status_of(self.db, source_event_id)

    def _require_admin_or_internal(self) -> None:
        require_internal(self.caller, admin_too=True)

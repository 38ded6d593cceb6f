"""The billing nameko service: entrypoints only. Rules live in pricing.py (prices, quotes: pure),
tariffs.py, payment_settings.py (providers and their encrypted keys), payments.py (payments and
their days, stored before any provider call), checkout.py (the provider calls), provider_events.py
(webhooks and the demo page, applied once), refunds.py, ledger.py (the family account),
booking_events.py (booking's events that move money), access.py (who may do what; communes and
booking are asked over RPC with deadlines, outside transactions), and month-end invoicing:
billable_days.py (booking's events kept as days to invoice), invoicing.py (the run), invoice_rules.py
(pure), numbering.py, invoices.py (views, access, payment), invoice_pdf.py, exports.py."""

from __future__ import annotations

from typing import Any

from nameko.events import event_handler

from services.billing import (
    access,
    billable_days,
    booking_events,
    checkout,
    events,
    expiry,
    exports,
    invoice_pdf,
    invoice_rules,
    invoices,
    invoicing,
    ledger,
    payment_settings,
    payments,
    pricing,
    provider_events,
    refunds,
    tariffs,
)
from services.billing.exceptions import DemoProviderDisabled, InvalidSignatureError
from services.billing.models import Base, OutboxEvent, Payment, Refund
from services.billing.providers import provider_for
from services.billing.providers.base import InvalidSignature
from services.billing.providers.demo import demo_event
from services.billing.settings import BillingSettings, Settings
from services.billing.timers import invoicing_timer, refund_retry_timer
from services.common import clock, errors
from services.common.context import Caller, CallerProvider, require_account, require_internal, staff_role
from services.common.db import Database
from services.common.health import readiness
from services.common.messaging import OutboxRelay
from services.common.rpc import ServiceRpc, rpc

EXPECTED = (errors.ServiceError,)


class BillingService:
    name = "billing"

    db = Database(Base)
    outbox = OutboxRelay(OutboxEvent)
    caller: Caller = CallerProvider()
    booking = ServiceRpc("booking")
    communes = ServiceRpc("communes")  # the caller's context travels (access checks for the caller)
    internal_communes = access.InternalRpc("communes")  # billing as itself (quotients)
    settings: BillingSettings = Settings()

    @rpc
    def health(self) -> dict[str, Any]:
        return readiness(self.name, self.db)

    # --- tariffs and payment settings (staff of the commune) ----------------------------------

    @rpc(expected_exceptions=EXPECTED)
    def set_tariff(self, commune_id: str, activity_id: str, tariff: dict[str, Any]) -> dict[str, Any]:
        staff_role(self.caller, commune_id)
        rule = pricing.parse_tariff(tariff)
        self.booking.get_activity(commune_id, activity_id)  # NotFound unless the commune's (agent's rights)
        with self.db.transaction() as session:
            return tariffs.set_tariff(
                session, commune_id, activity_id, rule, self.caller.account_id, clock.now()
            )

    @rpc(expected_exceptions=EXPECTED)
    def get_tariff(self, commune_id: str, activity_id: str) -> dict[str, Any]:
        staff_role(self.caller, commune_id)
        with self.db.transaction() as session:
            return tariffs.get_tariff(session, commune_id, activity_id)

    @rpc(expected_exceptions=EXPECTED)
    def set_payment_settings(self, commune_id: str, settings: dict[str, Any]) -> dict[str, Any]:
        staff_role(self.caller, commune_id)
        with self.db.transaction() as session:
            return payment_settings.set_settings(
                session, self.settings, commune_id, settings, self.caller.account_id, clock.now()
            )

    @rpc(expected_exceptions=EXPECTED)
    def get_payment_settings(self, commune_id: str) -> dict[str, Any]:
        staff_role(self.caller, commune_id)
        with self.db.transaction() as session:
            return payment_settings.get_settings(session, self.settings, commune_id)

    # --- quotes and payments (parents) --------------------------------------------------------

    @rpc(expected_exceptions=EXPECTED)
    def quote(self, items: list[dict[str, Any]]) -> dict[str, Any]:
        account_id = require_account(self.caller)
        lines = [item for item in (items if isinstance(items, list) else []) if isinstance(item, dict)]
        children = access.children(self.communes, account_id, [item.get("child_id") for item in lines])
        quotients = access.quotients(self.internal_communes, {family for _, family in children.values()})
        with self.db.transaction() as session:
            rules = tariffs.rules(session, [item.get("activity_id") for item in lines])
        priced = []
        for item in lines:
            child_id, activity_id = item.get("child_id"), item.get("activity_id")
            commune_id, family_id = children.get(child_id if isinstance(child_id, str) else "", (None, None))
            commune_and_rule = rules.get(activity_id if isinstance(activity_id, str) else "")
            rule = commune_and_rule[1] if commune_and_rule and commune_and_rule[0] == commune_id else None
            quotient = quotients.get(family_id) if family_id else None
            priced.append(pricing.quote_line(item.get("id"), commune_id, item.get("action"), rule, quotient))
        return pricing.quote(priced)

    @rpc(expected_exceptions=EXPECTED)
    def create_payment(self, idempotency_key: str, holds: list[dict[str, Any]]) -> dict[str, Any]:
        account_id = require_account(self.caller)
        key = payments.idempotency_key(idempotency_key)
        with self.db.transaction() as session:
            payment_ids = [p.id for p in payments.stored(session, account_id, key)]
        if not payment_ids:
            parsed = payments.parse_holds(holds)
            children = access.children(self.communes, account_id, [hold.child_id for hold in parsed])
            quotients = access.quotients(self.internal_communes, {family for _, family in children.values()})
            groups = payments.group_holds(parsed, children, quotients)
            with self.db.transaction() as session:
                now = clock.now()
                payment_ids = [
                    payments.create(session, self.settings, account_id, key, g, now).id for g in groups
                ]
        for payment_id in payment_ids:
            checkout.ensure_created(self.db, self.settings, payment_id)
        return {"payments": checkout.views(self.db, payment_ids)}

    @rpc(expected_exceptions=EXPECTED)
    def get_payment(self, payment_id: str) -> dict[str, Any]:
        require_account(self.caller)
        with self.db.transaction() as session:
            payment = session.get(Payment, payment_id) if isinstance(payment_id, str) else None
            if payment is None or not (
                payment.account_id == self.caller.account_id
                or access.is_staff(self.caller, payment.commune_id)
            ):
                raise errors.NotFound()
        checkout.ensure_created(self.db, self.settings, payment_id)
        return checkout.views(self.db, [payment_id])[0]

    # --- what providers tell billing ----------------------------------------------------------

    @rpc(expected_exceptions=EXPECTED)
    def handle_provider_event(self, provider: str, body: str, signature: str | None = None) -> dict[str, Any]:
        require_internal(self.caller)
        if provider != "stripe" or not isinstance(body, str):
            raise InvalidSignatureError()
        ref = provider_events.stripe_payment_ref(body)
        with self.db.transaction() as session:
            payment = provider_events.find_payment(session, provider, ref)
            found = payment_settings.webhook_choice(
                session, self.settings, payment.commune_id if payment else None
            )
        if found is None:
            raise InvalidSignatureError()
        try:
            event = provider_for("stripe", found.settings, self.settings.provider_config).parse_event(
                body.encode("utf-8"), signature
            )
        except InvalidSignature:
            raise InvalidSignatureError() from None
        with self.db.transaction() as session:
            status = provider_events.apply(session, provider, event, clock.now())
        return provider_events.result(status)

    @rpc(expected_exceptions=EXPECTED)
    def demo_payment(self, payment_id: str) -> dict[str, Any]:
        """The demo page's view of a demo payment (anyone with its random id; not in production)."""
        if self.settings.production:
            raise DemoProviderDisabled()
        with self.db.transaction() as session:
            payment = session.get(Payment, payment_id) if isinstance(payment_id, str) else None
            if payment is None or payment.provider != "demo":
                raise errors.NotFound()
            return payments.full_view(session, payment)

    @rpc(expected_exceptions=EXPECTED)
    def demo_outcome(self, payment_id: str, outcome: str) -> dict[str, Any]:
        if self.settings.production:
            raise DemoProviderDisabled()
        with self.db.transaction() as session:
            payment = session.get(Payment, payment_id) if isinstance(payment_id, str) else None
            if payment is None or payment.provider != "demo":
                raise errors.NotFound()
            event = demo_event(payment.id, outcome, payment.amount_cents)
            if event is None:
                raise errors.ValidationFailed(
                    details={"fields": {"outcome": ["Le résultat est succeeded ou failed."]}}
                )
            provider_events.apply(session, "demo", event, clock.now(), payment_id=payment.id)
        return checkout.views(self.db, [payment_id])[0]

    # --- family accounts and refunds ----------------------------------------------------------

    @rpc(expected_exceptions=EXPECTED)
    def family_account(self, commune_id: str) -> dict[str, Any]:
        require_account(self.caller)
        family_id = access.family_in(self.communes, commune_id)
        with self.db.transaction() as session:
            return {
                "commune_id": commune_id,
                "family_id": family_id,
                "balance_cents": ledger.balance(session, commune_id, family_id),
                "entries": ledger.entries(session, commune_id, family_id),
            }

    @rpc(expected_exceptions=EXPECTED)
    def refund_payment(
        self, commune_id: str, payment_id: str, amount_cents: int, idempotency_key: str
    ) -> dict[str, Any]:
        staff_role(self.caller, commune_id)
        amount, key = refunds.amount(amount_cents), refunds.key(idempotency_key)
        with self.db.transaction() as session:
            payment = payments.lock(session, payment_id) if isinstance(payment_id, str) else None
            if payment is None or payment.commune_id != commune_id:
                raise errors.NotFound()
            replayed = refunds.find(session, payment.id, key) is not None
            refund_id = refunds.reserve(
                session, payment, amount, refunds.AGENT, key, [], self.caller.account_id, clock.now()
            ).id
        refunds.complete(self.db, self.settings, refund_id)
        with self.db.transaction() as session:
            # `replayed`: this key had already made the refund (the gateway answers 200, not 201)
            return {**refunds.view(session.get(Refund, refund_id)), "replayed": replayed}

    # --- booking's events ---------------------------------------------------------------------

    @event_handler(events.BOOKING, events.PAYMENT_APPLIED, requeue_on_error=True)
    def on_payment_applied(self, payload: dict[str, Any]) -> None:
        with self.db.transaction() as session:
            refund_ids = booking_events.on_payment_applied(session, payload, clock.now())
        self._send_refunds(refund_ids)

    @event_handler(events.BOOKING, events.BOOKING_CANCELLED, requeue_on_error=True)
    def on_booking_cancelled(self, payload: dict[str, Any]) -> None:
        with self.db.transaction() as session:
            refund_ids = booking_events.on_cancellation(
                session, payload, "billing.booking_cancelled", clock.now()
            )
        self._send_refunds(refund_ids)

    @event_handler(events.BOOKING, events.CANCELLATION_DECIDED, requeue_on_error=True)
    def on_cancellation_decided(self, payload: dict[str, Any]) -> None:
        with self.db.transaction() as session:
            refund_ids = booking_events.on_cancellation(
                session, payload, "billing.cancellation_decided", clock.now()
            )
        self._send_refunds(refund_ids)

    def _send_refunds(self, refund_ids: list[str]) -> None:
        for refund_id in refund_ids:
            refunds.complete(self.db, self.settings, refund_id)

    @refund_retry_timer()
    def housekeeping(self) -> None:
        """Refunds whose provider call did not complete are sent again, with their stored key;
        payments abandoned after their holds expired are cancelled."""
        with self.db.transaction() as session:
            refund_ids = refunds.pending_ids(session, clock.now())
        self._send_refunds(refund_ids)
        for payment_id in expiry.expired_ids(self.db, clock.now()):
            expiry.cancel(self.db, self.settings, payment_id)

    # --- month-end invoicing ------------------------------------------------------------------

    @rpc(expected_exceptions=EXPECTED)
    def run_month_end(self, commune_id: str, month: str) -> dict[str, Any]:
        """Staff of the commune (or an internal caller): issue the month's invoices (idempotent)."""
        if self.caller.account_id is not None:
            staff_role(self.caller, commune_id)
        elif not isinstance(commune_id, str) or not 0 < len(commune_id) <= 64:
            raise errors.NotFound()
        invoice_rules.month_bounds(month)
        return self._run_month(commune_id, month, self.caller.account_id)

    def _commune(self, commune_id: str) -> tuple[str | None, str]:
        """The commune's name and time zone (invoices are dated, and months cut, in its time)."""
        found = self.internal_communes.commune_settings(commune_id) or {}
        return found.get("name"), found.get("timezone") or invoicing.DEFAULT_TIMEZONE

    def _run_month(self, commune_id: str, month: str, started_by: str | None) -> dict[str, Any]:
        profiles = self.internal_communes.billing_profiles(commune_id) or {}
        commune_name, timezone = self._commune(commune_id)
        if commune_name is None:
            with self.db.transaction() as session:
                commune_name = invoices.commune_name(session, commune_id)
        return invoicing.run_month(
            self.db.transaction,
            commune_id,
            month,
            profiles,
            clock.now(),
            due_days=self.settings.invoice_due_days,
            commune_name=commune_name,
            timezone=timezone,
            started_by=started_by,
        )

    @invoicing_timer()
    def month_end_timer(self) -> None:
        """On INVOICING_DAY from INVOICING_HOUR (Europe/Paris, for every commune; each invoice is dated
        in its commune's time zone), the previous month of every commune with postpaid days not yet
        run by the timer (a repeat would issue nothing anyway)."""
        month = invoicing.scheduled_month(
            clock.now(), self.settings.invoicing_day, self.settings.invoicing_hour
        )
        if month is None:
            return
        with self.db.transaction() as session:
            commune_ids = invoicing.communes_to_run(session, month)
        for commune_id in commune_ids:
            self._run_month(commune_id, month, None)

    def _families(self) -> dict[str, tuple[str, str | None, str | None]]:
        require_account(self.caller)
        return invoices.memberships(self.communes.list_memberships())

    def _readable(self, invoice_id: str) -> tuple[Any, str | None, str | None]:
        """(invoice, commune name, family name) if the caller is staff of its commune or a parent of
        its family; NotFound otherwise."""
        require_account(self.caller)
        with self.db.transaction() as session:
            invoice = invoices.get(session, invoice_id)
        if invoice is None:
            raise errors.NotFound()
        if access.is_staff(self.caller, invoice.commune_id):
            return invoice, None, None
        found = self._families().get(invoice.family_id)
        if found is None or found[0] != invoice.commune_id:
            raise errors.NotFound()
        return invoice, found[1], found[2]

    @rpc(expected_exceptions=EXPECTED)
    def list_invoices(self) -> list[dict[str, Any]]:
        families = self._families()
        with self.db.transaction() as session:
            return invoices.of_families(session, families)

    @rpc(expected_exceptions=EXPECTED)
    def get_invoice(self, invoice_id: str) -> dict[str, Any]:
        invoice, commune_name, family_name = self._readable(invoice_id)
        with self.db.transaction() as session:
            return invoices.detail(session, invoice, commune_name, family_name)

    @rpc(expected_exceptions=EXPECTED)
    def invoice_pdf(self, invoice_id: str) -> dict[str, str]:
        invoice, commune_name, family_name = self._readable(invoice_id)
        with self.db.transaction() as session:
            view = invoices.detail(session, invoice, commune_name, family_name)
        return invoice_pdf.as_rpc(view)

    @rpc(expected_exceptions=EXPECTED)
    def pay_invoice(self, invoice_id: str, idempotency_key: str) -> dict[str, Any]:
        account_id = require_account(self.caller)
        key = payments.idempotency_key(idempotency_key)
        with self.db.transaction() as session:
            invoice = invoices.get(session, invoice_id)
        found = self._families().get(invoice.family_id) if invoice is not None else None
        if invoice is None or found is None or found[0] != invoice.commune_id:
            raise errors.NotFound()
        with self.db.transaction() as session:
            payment_id = invoices.pay(session, self.settings, account_id, key, invoice.id, clock.now()).id
        checkout.ensure_created(self.db, self.settings, payment_id)
        return checkout.views(self.db, [payment_id])[0]

    @rpc(expected_exceptions=EXPECTED)
    def export_invoices(self, commune_id: str, month: str, fmt: str) -> dict[str, Any]:
        staff_role(self.caller, commune_id)
        invoice_rules.month_bounds(month)
        exports.fmt(fmt)
        _, timezone = self._commune(commune_id)
        with self.db.transaction() as session:
            return exports.export_invoices(session, commune_id, month, fmt, timezone)

    @rpc(expected_exceptions=EXPECTED)
    def export_payments(self, commune_id: str, month: str, fmt: str) -> dict[str, Any]:
        staff_role(self.caller, commune_id)
        invoice_rules.month_bounds(month)
        exports.fmt(fmt)
        profiles = self.internal_communes.billing_profiles(commune_id) or {}
        names = {fid: p.get("name") for fid, p in profiles.items() if isinstance(p, dict) and p.get("name")}
        _, timezone = self._commune(commune_id)
        with self.db.transaction() as session:
            return exports.export_payments(session, commune_id, month, fmt, names, timezone)

    # --- booking's events kept as days to invoice (postpaid) -----------------------------------

    def _project(self, event_type: str, payload: dict[str, Any]) -> None:
        with self.db.transaction() as session:
            billable_days.on_booking_event(session, event_type, payload, clock.now())

    @event_handler(events.BOOKING, events.BOOKING_CONFIRMED, requeue_on_error=True)
    def on_day_confirmed(self, payload: dict[str, Any]) -> None:
        self._project(events.BOOKING_CONFIRMED, payload)

    @event_handler(events.BOOKING, events.BOOKING_CANCELLED, requeue_on_error=True)
    def on_day_cancelled(self, payload: dict[str, Any]) -> None:
        self._project(events.BOOKING_CANCELLED, payload)

    @event_handler(events.BOOKING, events.CANCELLATION_DECIDED, requeue_on_error=True)
    def on_day_cancellation_decided(self, payload: dict[str, Any]) -> None:
        self._project(events.CANCELLATION_DECIDED, payload)

    @event_handler(events.BOOKING, events.BOOKING_RELEASED, requeue_on_error=True)
    def on_day_released(self, payload: dict[str, Any]) -> None:
        self._project(events.BOOKING_RELEASED, payload)

    @event_handler(events.BOOKING, events.ATTENDANCE_MARKED, requeue_on_error=True)
    def on_attendance_marked(self, payload: dict[str, Any]) -> None:
        with self.db.transaction() as session:
            billable_days.on_attendance_marked(session, payload, clock.now())

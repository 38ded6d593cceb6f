"""The booking nameko service: entrypoints only. Rules live in activities.py (activities, closures),
calendar.py (a child's days and bookings), cart.py (carts), validation.py (the cart validation
engine), capacity.py (places and waiting lists), holds.py (expired prepaid holds), access.py (who
may do what; communes answers for children and memberships over RPC, made outside transactions)."""

from __future__ import annotations

from typing import Any

from nameko.events import event_handler

from services.booking import (
    access,
    activities,
    attendance,
    calendar,
    cancellation_requests,
    cart,
    feeds,
    fields,
    holds,
    on_behalf,
    payments,
    roster,
    validation,
)
from services.booking.models import Base, OutboxEvent
from services.booking.settings import BookingSettings, Settings
from services.booking.timers import hold_sweep_timer
from services.common import clock, errors
from services.common.context import Caller, CallerProvider
from services.common.db import Database
from services.common.health import readiness
from services.common.messaging import OutboxRelay
from services.common.rpc import ServiceRpc, rpc
from services.common.ttl_cache import TtlCache

EXPECTED = (errors.ServiceError,)


class BookingService:
    name = "booking"

    db = Database(Base)
    outbox = OutboxRelay(OutboxEvent)
    caller: Caller = CallerProvider()
    communes = ServiceRpc("communes")
    child_access = TtlCache("CHILD_ACCESS_CACHE_SECONDS", 30)  # communes' allowed answers (access.py)
    commune_rules = TtlCache("ACTIVITY_CACHE_SECONDS", 5)  # activities and closures (calendar.py)
    settings: BookingSettings = Settings()

    @rpc
    def health(self) -> dict[str, Any]:
        return readiness(self.name, self.db)

    # --- activities and closures (agents of the commune, or admins) ---------------------------

    @rpc(expected_exceptions=EXPECTED)
    def create_activity(self, commune_id: str, **data: Any) -> dict[str, Any]:
        activities.check_new(self.caller, commune_id, data)
        timezone = self.communes.get_commune(commune_id).get("timezone")  # the agent's own rights apply
        with self.db.transaction() as session:
            created = activities.create_activity(session, self.caller, commune_id, timezone, data)
        self.commune_rules.drop(commune_id)
        return created

    @rpc(expected_exceptions=EXPECTED)
    def get_activity(self, commune_id: str, activity_id: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            return activities.get_activity(session, self.caller, commune_id, activity_id)

    @rpc(expected_exceptions=EXPECTED)
    def update_activity(self, commune_id: str, activity_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        with self.db.transaction() as session:
            updated = activities.update_activity(session, self.caller, commune_id, activity_id, changes)
        self.commune_rules.drop(commune_id)
        return updated

    @rpc(expected_exceptions=EXPECTED)
    def list_activities(self, commune_id: str) -> list[dict[str, Any]]:
        if not access.may_list_activities(self.communes, self.caller, commune_id):
            raise errors.NotFound()
        with self.db.transaction() as session:
            return activities.list_activities(session, commune_id)

    @rpc(expected_exceptions=EXPECTED)
    def add_closure(
        self, commune_id: str, activity_id: str, start: str, end: str, reason: str
    ) -> dict[str, Any]:
        with self.db.transaction() as session:
            closure = activities.add_closure(
                session, self.caller, commune_id, activity_id, start, end, reason
            )
        self.commune_rules.drop(commune_id)
        return closure

    # --- a child's calendar and bookings (its parents, or agents of its commune) --------------

    @rpc(expected_exceptions=EXPECTED)
    def calendar(self, child_id: str, start: str, end: str) -> dict[str, Any]:
        first, last = fields.date_range(start, end, fields.MAX_CALENDAR_DAYS)
        child = access.child(self.communes, self.caller, child_id, self.child_access)
        with self.db.reads() as session:
            return calendar.calendar(session, child, first, last, clock.now(), self.commune_rules)

    @rpc(expected_exceptions=EXPECTED)
    def child_bookings(self, child_id: str, start: str, end: str) -> list[dict[str, Any]]:
        first, last = fields.date_range(start, end, fields.MAX_HISTORY_DAYS)
        child = access.child(self.communes, self.caller, child_id, self.child_access)
        with self.db.transaction() as session:
            return calendar.child_bookings(session, child, first, last)

    # --- the caller's cart ----------------------------------------------------------------------

    @rpc(expected_exceptions=EXPECTED)
    def get_cart(self) -> dict[str, Any]:
        account_id = access.require_account(self.caller)
        with self.db.transaction() as session:
            child_ids = cart.child_ids(session, account_id)
        children = access.children(self.communes, self.caller, child_ids, self.child_access)
        with self.db.transaction() as session:
            return cart.view(session, account_id, children, clock.now())

    @rpc(expected_exceptions=EXPECTED)
    def add_cart_items(
        self,
        child_id: str,
        activity_id: str,
        dates: list[str] | None = None,
        period: dict[str, Any] | None = None,
    ) -> dict[str, Any]:
        child = access.child(self.communes, self.caller, child_id, self.child_access)
        with self.db.transaction() as session:
            return cart.add_items(
                session, self.caller.account_id, child, activity_id, dates, period, clock.now()
            )

    @rpc(expected_exceptions=EXPECTED)
    def add_cart_cancellations(self, child_id: str, activity_id: str, dates: list[str]) -> dict[str, Any]:
        child = access.child(self.communes, self.caller, child_id, self.child_access)
        with self.db.transaction() as session:
            return cart.add_cancellations(
                session, self.caller.account_id, child, activity_id, dates, clock.now()
            )

    @rpc(expected_exceptions=EXPECTED)
    def remove_cart_item(self, item_id: str) -> None:
        account_id = access.require_account(self.caller)
        with self.db.transaction() as session:
            cart.remove_item(session, account_id, item_id)

    @rpc(expected_exceptions=EXPECTED)
    def validate_cart(self, idempotency_key: str) -> dict[str, Any]:
        account_id = access.require_account(self.caller)
        with self.db.transaction() as session:
            plan = validation.prepare(session, account_id, idempotency_key)
        if plan.response is not None:
            return plan.response
        children = access.children(self.communes, self.caller, plan.child_ids, self.child_access)
        with self.db.transaction() as session:
            return validation.validate_cart(
                session, account_id, idempotency_key, children, clock.now(), plan.item_ids
            )

    # --- agents: roster, attendance, on-behalf acts, cancellation requests ----------------------

    @rpc(expected_exceptions=EXPECTED)
    def roster(self, commune_id: str, activity_id: str, date: str) -> dict[str, Any]:
        """The day's roster; names asked of communes in one roster_children call (the agent's
        context propagates), outside the transaction."""
        with self.db.transaction() as session:
            data = roster.roster(session, self.caller, commune_id, activity_id, date)
        child_ids = [c["child_id"] for c in data["children"]]
        return roster.with_names(data, access.roster_children(self.communes, commune_id, child_ids))

    @rpc(expected_exceptions=EXPECTED)
    def roster_csv(self, commune_id: str, activity_id: str, date: str) -> str:
        """The same roster as CSV text (starts with the BOM; UTF-8, `;`)."""
        return roster.to_csv(self.roster(commune_id, activity_id, date))

    @rpc(expected_exceptions=EXPECTED)
    def mark_attendance(
        self, commune_id: str, activity_id: str, date: str, child_id: str, status: str
    ) -> dict[str, Any]:
        with self.db.transaction() as session:
            return attendance.mark(
                session, self.caller, commune_id, activity_id, date, child_id, status, clock.now()
            )

    @rpc(expected_exceptions=EXPECTED)
    def book_on_behalf(
        self, commune_id: str, child_id: str, activity_id: str, dates: list[str]
    ) -> dict[str, Any]:
        role, child = access.staff_child(self.communes, self.caller, commune_id, child_id)
        with self.db.transaction() as session:
            return on_behalf.book(
                session, self.caller.account_id, role, child, activity_id, dates, clock.now()
            )

    @rpc(expected_exceptions=EXPECTED)
    def cancel_on_behalf(
        self, commune_id: str, child_id: str, activity_id: str, dates: list[str]
    ) -> dict[str, Any]:
        role, child = access.staff_child(self.communes, self.caller, commune_id, child_id)
        with self.db.transaction() as session:
            return on_behalf.cancel(
                session, self.caller.account_id, role, child, activity_id, dates, clock.now()
            )

    @rpc(expected_exceptions=EXPECTED)
    def list_cancellation_requests(self, commune_id: str, status: str = "pending") -> list[dict[str, Any]]:
        with self.db.transaction() as session:
            return cancellation_requests.list_requests(session, self.caller, commune_id, status)

    @rpc(expected_exceptions=EXPECTED)
    def decide_cancellation(
        self, commune_id: str, request_id: str, decision: str, reason: str | None = None
    ) -> dict[str, Any]:
        with self.db.transaction() as session:
            return cancellation_requests.decide(
                session, self.caller, commune_id, request_id, decision, reason, clock.now()
            )

    # --- a child's private calendar feed ------------------------------------------------------

    @rpc(expected_exceptions=EXPECTED)
    def create_calendar_feed(self, child_id: str) -> dict[str, Any]:
        """A new secret token (the previous one is revoked); the gateway makes the URL."""
        child = access.child(self.communes, self.caller, child_id, self.child_access)
        with self.db.transaction() as session:
            return {"token": feeds.create(session, child, self.caller.account_id, clock.now())}

    @rpc(expected_exceptions=EXPECTED)
    def revoke_calendar_feed(self, child_id: str) -> None:
        child = access.child(self.communes, self.caller, child_id, self.child_access)
        with self.db.transaction() as session:
            feeds.revoke(session, child.id)

    @rpc(expected_exceptions=EXPECTED)
    def calendar_feed(self, token: str) -> str:
        """The feed's iCalendar text; NotFound for an unknown or revoked token, or when the account
        that made it may no longer see the child. No caller needed: the token is the secret."""
        with self.db.transaction() as session:
            feed = feeds.find(session, token)
        if feed is None:
            raise errors.NotFound()
        child = access.child_info(
            feed.child_id, self.communes.check_child_access(feed.account_id, feed.child_id)
        )
        if child is None:
            raise errors.NotFound()
        with self.db.transaction() as session:
            return feeds.render(session, feed, child.first_name, clock.now())

    # --- billing's events ----------------------------------------------------------------------

    @event_handler("billing", "payment_succeeded", requeue_on_error=True)
    def on_payment_succeeded(self, payload: dict[str, Any]) -> None:
        """Paid holds become confirmed bookings (or lost); `payment_applied` answers billing."""
        payments.on_payment_succeeded(self.db, payload, clock.now())

    # --- housekeeping ---------------------------------------------------------------------------

    @hold_sweep_timer()
    def release_expired_holds(self) -> None:
        """Prepaid holds not paid in time give their place back (and the waiting list moves up)."""
        holds.sweep(self.db, clock.now(), self.settings.hold_sweep_batch)

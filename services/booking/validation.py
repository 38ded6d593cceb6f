"""The cart validation engine: turns an account's cart into bookings, waiting-list places,
cancellations and cancellation requests, exactly once per idempotency key.

One transaction per cart (see README.md, "Transactions under contention"):
1. the key is stored first (`INSERT ... ON CONFLICT DO NOTHING` on UNIQUE(account, key)): a
   concurrent or later call with the same key finds it and gets the stored response, books nothing;
2. the cart's items are locked (FOR UPDATE), read and deleted; the rules of each day are checked
   (read only);
3. the days that will be booked are created if missing, and each day to book gets its booking row
   (`INSERT ... ON CONFLICT DO NOTHING` on the partial unique index: a child already booked that day,
   or booked meanwhile by another cart of the family, is ALREADY_BOOKED), all before any day is locked;
4. the items are applied in (activity, date, child) order: one lock order for every transaction, so
   concurrent carts cannot deadlock. A place (or a waiting-list number) and the booking's status are
   given by one statement on PostgreSQL (capacity.place), which locks the day;
5. the events, the response and the cart snapshot are written (two statements) and everything
   commits at once: a crash anywhere leaves no trace, and the retry does it all.
A day's lock is the contended resource at an opening rush: it is held from step 4 to the commit only,
for about four round trips per cart of one day.

SQLite: the key's INSERT is the transaction's first write, which takes the database's write lock, so
everything read after it is current and carts are validated one at a time."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import delete, select, update
from sqlalchemy.orm import Session

from services.booking import capacity, days, events, fields, outcomes
from services.booking.access import ChildInfo
from services.booking.cart import items as cart_items
from services.booking.deadlines import is_before
from services.booking.exceptions import CartEmpty, IdempotencyKeyReused
from services.booking.models import (
    ACTIVE_PREDICATE,
    ACTIVE_STATUSES,
    BOOK,
    CANCEL_REQUESTED,
    CANCELLED,
    CONFIRMED,
    PENDING_PAYMENT,
    WAITLISTED,
    Activity,
    Booking,
    CancellationRequest,
    CartItem,
    CartValidation,
)
from services.common.db import insert_for, new_id

PENDING = "pending"


@dataclass
class Plan:
    """What the service needs before validating: a stored response (a replay), or the items to
    validate and the children whose access it must check first (over RPC, outside any transaction)."""

    response: dict[str, Any] | None = None
    item_ids: list[str] = field(default_factory=list)
    child_ids: list[str] = field(default_factory=list)


def _stored(session: Session, account_id: str, key: str) -> CartValidation | None:
    return session.scalars(
        select(CartValidation).where(
            CartValidation.account_id == account_id, CartValidation.idempotency_key == key
        )
    ).first()


def _replay(stored: CartValidation, current_item_ids: list[str]) -> dict[str, Any]:
    """The stored response, unless the cart now holds items the first call did not validate: the
    client reused the key for a new cart (IDEMPOTENCY_KEY_REUSED) instead of retrying."""
    validated = {item["id"] for item in stored.cart or ()}
    if not set(current_item_ids) <= validated or stored.response is None:
        raise IdempotencyKeyReused()
    return stored.response


def prepare(session: Session, account_id: str, key: Any) -> Plan:
    key = fields.idempotency_key(key)
    current = cart_items(session, account_id)
    stored = _stored(session, account_id, key)
    if stored is not None:
        return Plan(response=_replay(stored, [item.id for item in current]))
    if not current:
        raise CartEmpty()
    return Plan(item_ids=[item.id for item in current], child_ids=sorted({item.child_id for item in current}))


def validate_cart(
    session: Session,
    account_id: str,
    key: Any,
    children: dict[str, ChildInfo | None],
    now: dt.datetime,
    item_ids: list[str] | None = None,
) -> dict[str, Any]:
    """Validate the account's cart (or the items `item_ids` of it, those prepare() saw) for the
    children given (ChildInfo, or None where access was refused). Returns {"results": [...],
    "payment": None}; a replay of the key returns the first response."""
    key = fields.idempotency_key(key)
    stored = _stored(session, account_id, key)
    if stored is None:
        validation_id = new_id()
        inserted = session.execute(
            insert_for(session, CartValidation)
            .values(id=validation_id, account_id=account_id, idempotency_key=key, cart=[], created_at=now)
            .on_conflict_do_nothing(index_elements=["account_id", "idempotency_key"])
        ).rowcount
        if inserted != 1:  # the same key, validated concurrently and committed meanwhile
            stored = _stored(session, account_id, key)
    if stored is not None:
        return _replay(stored, [item.id for item in cart_items(session, account_id)])

    query = select(CartItem).where(CartItem.account_id == account_id)
    if item_ids is not None:
        query = query.where(CartItem.id.in_(item_ids))
    rows = session.scalars(query.order_by(CartItem.id).with_for_update()).all()
    if not rows:
        raise CartEmpty()  # the transaction rolls back: the key is not kept
    rows = sorted(rows, key=lambda r: (r.created_at, r.date, r.id))

    # the items go first (no day is locked yet): after the places, the fewest statements before the commit
    session.execute(
        delete(CartItem)
        .where(CartItem.id.in_([row.id for row in rows]))
        .execution_options(synchronize_session=False)
    )
    engine = _Engine(session, account_id, validation_id, children, now)
    results = engine.run(rows)
    response = {"results": [results[row.id] for row in rows], "payment": None}
    snapshot = [
        {
            "id": row.id,
            "child_id": row.child_id,
            "activity_id": row.activity_id,
            "date": row.date.isoformat(),
            "action": row.action,
        }
        for row in rows
    ]
    # recorded before the update below, whose autoflush then writes every outbox row in one INSERT
    events.cart_validated(session, account_id, key, response["results"], engine.lines(response["results"]))
    session.execute(
        update(CartValidation)
        .where(CartValidation.id == validation_id)
        .values(cart=snapshot, response=response)
        .execution_options(synchronize_session=False)
    )
    return response


def validate(
    session: Session, account_id: str, key: Any, children: dict[str, ChildInfo | None], now: dt.datetime
) -> dict[str, Any]:
    """prepare() and validate_cart() in one session (tests, tools): the children are given."""
    plan = prepare(session, account_id, key)
    if plan.response is not None:
        return plan.response
    return validate_cart(session, account_id, key, children, now, plan.item_ids)


class _Engine:
    """Applies the items of one cart inside its transaction."""

    def __init__(
        self,
        session: Session,
        account_id: str,
        validation_id: str,
        children: dict[str, ChildInfo | None],
        now: dt.datetime,
    ) -> None:
        self.session = session
        self.account_id = account_id
        self.validation_id = validation_id
        self.children = children
        self.now = now
        self.rules: dict[str, days.ActivityDays] = {}

    def run(self, rows: list[CartItem]) -> dict[str, dict[str, Any]]:
        activities = self.session.scalars(
            select(Activity).where(Activity.id.in_({row.activity_id for row in rows}))
        ).all()
        self.rules = days.load(self.session, activities)
        ordered = sorted(rows, key=lambda r: (r.activity_id, r.date, r.child_id, r.action))
        refusals = {row.id: self._refusal(row) for row in ordered if row.action == BOOK}
        occurrences = {}
        for row in ordered:  # the days to book exist before any day is locked
            if row.action == BOOK and refusals[row.id] is None:
                key = (row.activity_id, row.date)
                if key not in occurrences:
                    occurrences[key] = capacity.occurrence(self.session, row.activity_id, row.date).id
        # each day to book gets its booking row before any day is locked: a child already booked that
        # day (or booked meanwhile by another cart of the family) is found here, by the unique index
        booking_ids = {
            row.id: self._insert_booking(row, occurrences[(row.activity_id, row.date)])
            for row in ordered
            if row.action == BOOK and refusals[row.id] is None
        }
        results = {}
        for row in ordered:
            base = {
                "child_id": row.child_id,
                "activity_id": row.activity_id,
                "date": row.date.isoformat(),
                "action": row.action,
            }
            if row.action == BOOK:
                reason = refusals[row.id]
                if reason is not None:
                    outcome = {"outcome": outcomes.REJECTED, "reason": reason}
                elif booking_ids[row.id] is None:
                    outcome = {"outcome": outcomes.REJECTED, "reason": outcomes.ALREADY_BOOKED}
                else:
                    outcome = self._place(row, occurrences[(row.activity_id, row.date)], booking_ids[row.id])
            else:
                outcome = self._cancel(row)
            results[row.id] = {**base, **outcome}
        return results

    def lines(self, results: list[dict[str, Any]]) -> list[dict[str, Any]]:
        """The summary email's lines: names instead of ids (the first name only)."""
        lines = []
        for result in results:
            child = self.children.get(result["child_id"])
            rules = self.rules.get(result["activity_id"])
            lines.append(
                {
                    "child_first_name": child.first_name if child is not None else None,
                    "activity_name": rules.activity.name if rules is not None else None,
                    "date": result["date"],
                    "action": result["action"],
                    "outcome": result["outcome"],
                    "reason": result.get("reason"),
                }
            )
        return lines

    # --- booking -----------------------------------------------------------------------------

    def _refusal(self, row: CartItem) -> str | None:
        """Why this day cannot be booked for this child, from the rules (no lock needed)."""
        rules = self.rules.get(row.activity_id)
        if rules is None or not rules.scheduled(row.date):
            return outcomes.NOT_SCHEDULED
        if rules.closed(row.date):
            return outcomes.CLOSED
        if not rules.eligible(self.children.get(row.child_id), row.date):
            return outcomes.NOT_ELIGIBLE
        if not is_before(self.now, rules.book_until(row.date)):
            return outcomes.DEADLINE_PASSED
        return None

    def _active_booking(self, row: CartItem) -> Booking | None:
        return self.session.scalars(
            select(Booking).where(
                Booking.activity_id == row.activity_id,
                Booking.child_id == row.child_id,
                Booking.date == row.date,
                Booking.status.in_(ACTIVE_STATUSES),
            )
        ).first()

    def _insert_booking(self, row: CartItem, occurrence_id: str) -> str | None:
        """The day's booking row, without a place yet (nobody sees it before the commit); None when
        the child already has an active booking that day (INSERT ... ON CONFLICT DO NOTHING on the
        partial unique index: no savepoint; on PostgreSQL it waits for a concurrent cart of the same
        family that inserted the same day, and finds its booking if that cart commits)."""
        activity = self.rules[row.activity_id].activity
        child = self.children[row.child_id]
        booking_id = new_id()
        inserted = self.session.execute(
            insert_for(self.session, Booking)
            .values(
                id=booking_id,
                activity_id=activity.id,
                occurrence_id=occurrence_id,
                commune_id=activity.commune_id,
                family_id=child.family_id,
                child_id=row.child_id,
                account_id=self.account_id,
                date=row.date,
                status=WAITLISTED,
                cart_validation_id=self.validation_id,
                child_first_name=child.first_name,
                created_at=self.now,
                updated_at=self.now,
            )
            .on_conflict_do_nothing(
                index_elements=["activity_id", "child_id", "date"], index_where=ACTIVE_PREDICATE
            )
        ).rowcount
        return booking_id if inserted == 1 else None

    def _place(self, row: CartItem, occurrence_id: str, booking_id: str) -> dict[str, Any]:
        """A place for the inserted booking, or a waiting-list number, or FULL (see capacity.place)."""
        activity = self.rules[row.activity_id].activity
        prepaid = activity.billing_mode == "prepaid"
        hold = self.now + dt.timedelta(minutes=activity.hold_minutes) if prepaid else None
        placed, position = capacity.place(
            self.session,
            occurrence_id,
            booking_id,
            activity.waiting_list,
            PENDING_PAYMENT if prepaid else CONFIRMED,
            hold,
            self.now,
        )
        if not placed and position is None:
            return {"outcome": outcomes.REJECTED, "reason": outcomes.FULL}
        status = (PENDING_PAYMENT if prepaid else CONFIRMED) if placed else WAITLISTED
        child = self.children[row.child_id]
        booking = Booking(  # transient: the payload of its event (the row is written above)
            id=booking_id,
            activity_id=activity.id,
            occurrence_id=occurrence_id,
            commune_id=activity.commune_id,
            family_id=child.family_id,
            child_id=row.child_id,
            account_id=self.account_id,
            date=row.date,
            status=status,
            waitlist_position=position,
            hold_expires_at=hold if placed else None,
        )
        if status == CONFIRMED:
            events.booking_event(self.session, events.BOOKING_CONFIRMED, booking)
        elif status == PENDING_PAYMENT:
            events.booking_event(self.session, events.BOOKING_HELD, booking)
        else:
            events.booking_event(self.session, events.BOOKING_WAITLISTED, booking, position=position)
        result: dict[str, Any] = {"outcome": status, "booking_id": booking_id}
        if status == PENDING_PAYMENT and hold is not None:
            result["hold_expires_at"] = hold.astimezone(dt.UTC).isoformat()
        return result

    # --- cancelling --------------------------------------------------------------------------

    def _cancel(self, row: CartItem) -> dict[str, Any]:
        rules = self.rules.get(row.activity_id)
        child = self.children.get(row.child_id)
        if rules is None or child is None or child.commune_id != rules.activity.commune_id:
            return {"outcome": outcomes.REJECTED, "reason": outcomes.NOT_ELIGIBLE}
        booking = self._active_booking(row)
        if booking is None:
            return {"outcome": outcomes.REJECTED, "reason": outcomes.NOT_BOOKED}
        capacity.lock(self.session, booking.occurrence_id)
        self.session.refresh(booking)  # its current status, now that its day is locked
        found = {"booking_id": booking.id}
        if booking.status not in ACTIVE_STATUSES:  # released or cancelled meanwhile
            return {"outcome": outcomes.REJECTED, "reason": outcomes.NOT_BOOKED}
        if booking.status == CANCEL_REQUESTED:  # already asked: nothing new
            return {"outcome": outcomes.REQUESTED, **found}
        if booking.status == WAITLISTED:  # leaving the waiting list frees nobody's place: always allowed
            self._set_cancelled(booking)
            return {"outcome": outcomes.CANCELLED, **found}
        if rules.cancellation_never:
            return {"outcome": outcomes.REJECTED, "reason": outcomes.CANCELLATION_NOT_ALLOWED, **found}
        if not is_before(self.now, rules.cancel_until(row.date)):
            return {"outcome": outcomes.REJECTED, "reason": outcomes.DEADLINE_PASSED, **found}
        if booking.status == PENDING_PAYMENT or rules.activity.cancellation_approval == "auto":
            self._set_cancelled(booking)
            capacity.free_place(self.session, booking.occurrence_id)
            capacity.promote(self.session, rules, booking.occurrence_id, booking.date, self.now)
            return {"outcome": outcomes.CANCELLED, **found}
        booking.status = CANCEL_REQUESTED
        booking.updated_at = self.now
        request = CancellationRequest(
            booking_id=booking.id,
            commune_id=booking.commune_id,
            account_id=self.account_id,
            status=PENDING,
            created_at=self.now,
        )
        self.session.add(request)
        self.session.flush()
        events.booking_event(self.session, events.CANCELLATION_REQUESTED, booking, request_id=request.id)
        return {"outcome": outcomes.REQUESTED, **found}

    def _set_cancelled(self, booking: Booking) -> None:
        booking.status = CANCELLED
        booking.updated_at = self.now
        self.session.flush()
        events.booking_event(self.session, events.BOOKING_CANCELLED, booking)

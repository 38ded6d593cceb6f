"""booking's rules as a Hypothesis state machine, on SQLite without a broker (the plain rule functions,
as in test_booking_validation.py; the clock frozen and advanced with services.common.clock).

Two activities of one commune over the same few days: a postpaid one (capacity 1-2, with or without
waiting list, automatic or agent-approved cancellation) and a prepaid one (capacity 1-2, with or
without waiting list, holds of 20 minutes, automatic cancellation). Five children; six parents (the sixth
is the second parent of the first child, so two carts can compete for one child). The rules
put days to book or cancel in carts, validate them (with fresh keys, or replaying an earlier key),
cancel and rebook a day, advance the clock (minutes to days: past the holds' expiry, the booking and
cancellation deadlines, the days themselves) and run the hold sweep.

After every step, the invariants:
- each day's `taken` is within [0, capacity] and equals its bookings holding a place
  (confirmed, pending payment, cancel requested);
- at most one active booking per (activity, child, date);
- no free place while someone waits, unless the day is past; and the waiting list is served in
  order: every promoted booking had a lower position than every booking still waiting;
- a prepaid activity has no `confirmed` booking and a postpaid one no hold; every hold has an expiry,
  and after a sweep none is past it.
And in the rules: a parent's validation never confirms, holds or waitlists a day at or after its
booking deadline; a replay returns the first response and changes nothing; a cancellation followed by
a new booking of the same day leaves one active booking, never ALREADY_BOOKED."""

from __future__ import annotations

import datetime as dt
import uuid

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from services.booking import activities, cart, days, holds, outcomes, validation
from services.booking.access import ChildInfo
from services.booking.deadlines import is_before
from services.booking.exceptions import IdempotencyKeyReused
from services.booking.models import (
    ACTIVE_STATUSES,
    CONFIRMED,
    PENDING_PAYMENT,
    PLACE_STATUSES,
    RELEASED,
    WAITLISTED,
    Activity,
    Base,
    Booking,
    Occurrence,
)
from services.common import clock
from services.common.context import Caller
from services.common.db import WorkerDb

COMMUNE = str(uuid.uuid4())
AGENT = Caller(account_id=str(uuid.uuid4()), roles=(f"agent:{COMMUNE}",))
T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)  # Monday 2 March 2026, 09:00 in Paris
# Thursday 5 March (bookable until Tuesday 3, 10:00 Paris: a day from T0), Thursday 12 and Friday 13
# (until Tuesday 10 and Wednesday 11): deadlines soon passed, and days that stay open a while
DAYS = [dt.date(2026, 3, 5), dt.date(2026, 3, 12), dt.date(2026, 3, 13)]
STEPS = [
    dt.timedelta(minutes=1),
    dt.timedelta(minutes=10),
    dt.timedelta(minutes=21),  # past a 20-minute hold
    dt.timedelta(hours=5),
    dt.timedelta(hours=23),
    dt.timedelta(days=2),
    dt.timedelta(days=4),
]
PROMOTED_STATUSES = (*PLACE_STATUSES, RELEASED)  # with a waitlist position: it was promoted


def child_info(family: str) -> ChildInfo:
    return ChildInfo(
        id=str(uuid.uuid4()),
        family_id=family,
        commune_id=COMMUNE,
        birth_date=dt.date(2019, 5, 4),
        class_name="CP",
    )


class BookingMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        clock.set_now(T0)
        self.engine = create_engine(
            "sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False}
        )
        Base.metadata.create_all(self.engine)
        self.session = Session(self.engine)
        self.db = WorkerDb(sessionmaker(bind=self.engine, expire_on_commit=False))
        self.children = [child_info(str(uuid.uuid4())) for _ in range(5)]
        # parents 0-4: one child each; parent 5: the other parent of child 0
        self.parents = [
            (str(uuid.uuid4()), {self.children[i].id: self.children[i]}) for i in (0, 1, 2, 3, 4, 0)
        ]
        self.activities: list[dict] = []
        self.replays: list[tuple[int, str, dict]] = []  # (parent, key, first response)

    def teardown(self) -> None:
        self.session.close()
        self.engine.dispose()
        clock.reset()

    # --- set-up -----------------------------------------------------------------------------------

    @initialize(
        postpaid_capacity=st.sampled_from([1, 1, 2]),
        postpaid_waiting=st.sampled_from([True, True, False]),
        approval=st.sampled_from(["auto", "agent"]),
        prepaid_capacity=st.sampled_from([1, 1, 2]),
        prepaid_waiting=st.sampled_from([True, True, False]),
    )
    def create_activities(
        self, postpaid_capacity, postpaid_waiting, approval, prepaid_capacity, prepaid_waiting
    ):
        common = {
            "kind": "canteen",
            "weekdays": ["monday", "tuesday", "thursday", "friday"],
            "start_date": "2026-03-02",
            "end_date": "2026-07-03",
            "booking_deadline": {"days_before": 2, "at": "10:00"},
            "cancellation_deadline": {"days_before": 1, "at": "18:00"},
        }
        for values in (
            {
                "name": "Cantine",
                "billing_mode": "postpaid",
                "capacity": postpaid_capacity,
                "waiting_list": postpaid_waiting,
                "cancellation_approval": approval,
            },
            {
                "name": "Stage",
                "billing_mode": "prepaid",
                "capacity": prepaid_capacity,
                "waiting_list": prepaid_waiting,
                "cancellation_approval": "auto",
                "hold_minutes": 20,
            },
        ):
            self.activities.append(
                activities.create_activity(self.session, AGENT, COMMUNE, "Europe/Paris", {**common, **values})
            )
        self.session.commit()

    # --- helpers ----------------------------------------------------------------------------------

    def rules_of(self, activity_id: str) -> days.ActivityDays:
        return days.load_one(self.session, self.session.get(Activity, activity_id))

    def child_of(self, parent: int, pick: int) -> ChildInfo:
        children = list(self.parents[parent][1].values())
        return children[pick % len(children)]

    def validate(self, parent: int, key: str | None = None) -> list[dict]:
        account_id, children = self.parents[parent]
        if not cart.items(self.session, account_id):
            return []
        key = key or uuid.uuid4().hex
        now = clock.now()
        response = validation.validate(self.session, account_id, key, children, now)
        self.session.commit()
        self.replays.append((parent, key, response))
        for result in response["results"]:
            if result["outcome"] in (outcomes.CONFIRMED, outcomes.PENDING_PAYMENT, outcomes.WAITLISTED):
                day = dt.date.fromisoformat(result["date"])
                assert is_before(now, self.rules_of(result["activity_id"]).book_until(day)), (
                    f"{result['outcome']} at {now} after the booking deadline of {day}"
                )
                assert result["action"] == "book"
        return response["results"]

    def bookings(self) -> list[Booking]:
        self.session.expire_all()
        return list(self.session.scalars(select(Booking)).all())

    # --- rules ------------------------------------------------------------------------------------

    @rule(
        parent=st.integers(0, 5),
        pick=st.integers(0, 1),
        activity=st.integers(0, 1),
        day=st.sampled_from(DAYS),
    )
    def add_day_to_book(self, parent, pick, activity, day):
        child = self.child_of(parent, pick)
        cart.add_items(
            self.session,
            self.parents[parent][0],
            child,
            self.activities[activity]["id"],
            dates=[day.isoformat()],
        )
        self.session.commit()

    @rule(
        parent=st.integers(0, 5),
        pick=st.integers(0, 1),
        activity=st.integers(0, 1),
        day=st.sampled_from(DAYS),
    )
    def add_day_to_cancel(self, parent, pick, activity, day):
        child = self.child_of(parent, pick)
        cart.add_cancellations(
            self.session, self.parents[parent][0], child, self.activities[activity]["id"], [day.isoformat()]
        )
        self.session.commit()

    @rule(parent=st.integers(0, 5))
    def validate_cart(self, parent):
        self.validate(parent)

    @rule(
        parent=st.integers(0, 5),
        pick=st.integers(0, 1),
        activity=st.integers(0, 1),
        day=st.sampled_from(DAYS),
    )
    def book_now(self, parent, pick, activity, day):
        self.add_day_to_book(parent, pick, activity, day)
        self.validate(parent)

    def stable_order(self, booking: Booking) -> tuple:
        """The same order in every run (ids are random; Hypothesis replays draws by index)."""
        activity = [a["id"] for a in self.activities].index(booking.activity_id)
        child = [c.id for c in self.children].index(booking.child_id)
        return (activity, child, booking.date)

    def active_bookings(self) -> list[Booking]:
        return [b for b in self.bookings() if b.status in ACTIVE_STATUSES]

    @precondition(lambda self: self.active_bookings())
    @rule(data=st.data())
    def cancel_a_booking(self, data):
        """A parent of the child cancels one of its active bookings (frees a place, or leaves the
        waiting list, or asks an agent)."""
        booking = data.draw(st.sampled_from(sorted(self.active_bookings(), key=self.stable_order)))
        parent = data.draw(
            st.sampled_from(
                [i for i, (_, children) in enumerate(self.parents) if booking.child_id in children]
            )
        )
        child = self.parents[parent][1][booking.child_id]
        cart.add_cancellations(
            self.session, self.parents[parent][0], child, booking.activity_id, [booking.date.isoformat()]
        )
        self.session.commit()
        self.validate(parent)

    @precondition(lambda self: self.replays)
    @rule(data=st.data())
    def replay_a_key(self, data):
        parent, key, first = data.draw(st.sampled_from(self.replays))
        account_id, children = self.parents[parent]
        before = [(b.id, b.status) for b in self.bookings()]
        pending = cart.items(self.session, account_id)
        try:
            again = validation.validate(self.session, account_id, key, children, clock.now())
        except IdempotencyKeyReused:
            assert pending, "a replay with an empty cart must return the stored response"
        else:
            assert again == first
        self.session.rollback()
        assert [(b.id, b.status) for b in self.bookings()] == before

    @rule(
        parent=st.integers(0, 5),
        pick=st.integers(0, 1),
        activity=st.integers(0, 1),
        day=st.sampled_from(DAYS),
    )
    def cancel_and_rebook(self, parent, pick, activity, day):
        child = self.child_of(parent, pick)
        activity_id = self.activities[activity]["id"]
        account_id = self.parents[parent][0]
        self.validate(parent)  # whatever the cart held first
        cart.add_cancellations(self.session, account_id, child, activity_id, [day.isoformat()])
        [cancelled] = self.validate(parent)
        cart.add_items(self.session, account_id, child, activity_id, dates=[day.isoformat()])
        [rebooked] = self.validate(parent)
        active = [
            b
            for b in self.bookings()
            if (b.activity_id, b.child_id, b.date) == (activity_id, child.id, day)
            and b.status in ACTIVE_STATUSES
        ]
        if cancelled["outcome"] == outcomes.CANCELLED:
            assert rebooked.get("reason") != outcomes.ALREADY_BOOKED, (cancelled, rebooked)
            if rebooked["outcome"] == outcomes.REJECTED:
                assert not active
            else:
                assert [b.id for b in active] == [rebooked["booking_id"]]
                assert rebooked["booking_id"] != cancelled["booking_id"]
        elif cancelled.get("booking_id"):  # refused (deadline, never) or requested: still booked
            assert [b.id for b in active] == [cancelled["booking_id"]]
            assert rebooked.get("reason") in (outcomes.ALREADY_BOOKED, outcomes.DEADLINE_PASSED)
        else:
            assert cancelled["reason"] == outcomes.NOT_BOOKED

    @rule(step=st.sampled_from(STEPS))
    def advance_clock(self, step):
        clock.advance(step)

    @rule()
    def sweep_holds(self):
        holds.sweep(self.db, clock.now())
        now = clock.now()
        for booking in self.bookings():
            if booking.status == PENDING_PAYMENT:
                assert booking.hold_expires_at > now, "an expired hold survived the sweep"

    # --- invariants -------------------------------------------------------------------------------

    @invariant()
    def places_match_bookings(self):
        bookings = self.bookings()
        for occurrence in self.session.scalars(select(Occurrence)).all():
            holding = sum(
                1 for b in bookings if b.occurrence_id == occurrence.id and b.status in PLACE_STATUSES
            )
            assert 0 <= occurrence.taken <= occurrence.capacity
            assert occurrence.taken == holding, (occurrence.date, occurrence.taken, holding)

    @invariant()
    def one_active_booking_per_child_and_day(self):
        active = [(b.activity_id, b.child_id, b.date) for b in self.bookings() if b.status in ACTIVE_STATUSES]
        assert len(active) == len(set(active))

    @invariant()
    def waiting_list_served_first_come_first_served(self):
        bookings = self.bookings()
        today = clock.now().astimezone(days.ZoneInfo("Europe/Paris")).date()
        for occurrence in self.session.scalars(select(Occurrence)).all():
            mine = [b for b in bookings if b.occurrence_id == occurrence.id]
            waiting = [b.waitlist_position for b in mine if b.status == WAITLISTED]
            if not waiting:
                continue
            if occurrence.date >= today:
                assert occurrence.taken == occurrence.capacity, (
                    f"{occurrence.date}: a free place ({occurrence.taken}/{occurrence.capacity}) "
                    f"while {len(waiting)} wait"
                )
            promoted = [
                b.waitlist_position
                for b in mine
                if b.status in PROMOTED_STATUSES and b.waitlist_position is not None
            ]
            if promoted:
                assert max(promoted) < min(waiting), (promoted, waiting)

    @invariant()
    def statuses_fit_the_billing_mode(self):
        modes = {a["id"]: a["billing_mode"] for a in self.activities}
        for booking in self.bookings():
            if modes[booking.activity_id] == "prepaid":
                assert booking.status != CONFIRMED
            else:
                assert booking.status != PENDING_PAYMENT
            if booking.status == PENDING_PAYMENT:
                assert booking.hold_expires_at is not None

    @invariant()
    def carts_hold_one_item_per_child_and_day(self):
        from services.booking.models import CartItem

        counts = self.session.execute(
            select(CartItem.account_id, CartItem.child_id, CartItem.activity_id, CartItem.date, func.count())
            .group_by(CartItem.account_id, CartItem.child_id, CartItem.activity_id, CartItem.date)
            .having(func.count() > 1)
        ).all()
        assert not counts


BookingMachine.TestCase.settings = settings(
    max_examples=100,
    stateful_step_count=30,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
TestBookingRules = BookingMachine.TestCase

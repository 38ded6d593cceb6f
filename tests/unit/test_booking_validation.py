"""booking's cart validation engine on SQLite, without a broker: every rejection reason, confirmed and
prepaid bookings, the waiting list and its promotion after an automatic cancellation, cancellation
requests for agents, holds released by the sweep once the clock passes their expiry, idempotent
replays and keys reused for another cart."""

import datetime as dt
import uuid

import pytest
from sqlalchemy import create_engine, func, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from services.booking import activities, cart, holds, outcomes, validation
from services.booking.access import ChildInfo
from services.booking.exceptions import CartEmpty, IdempotencyKeyReused
from services.booking.models import (
    Base,
    Booking,
    CancellationRequest,
    CartItem,
    CartValidation,
    Occurrence,
    OutboxEvent,
)
from services.common import clock
from services.common.context import Caller
from services.common.db import WorkerDb
from services.common.errors import ValidationFailed

COMMUNE = str(uuid.uuid4())
AGENT = Caller(account_id=str(uuid.uuid4()), roles=(f"agent:{COMMUNE}",))
T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)  # Monday 2 March 2026, 09:00 in Paris
DAY = dt.date(2026, 3, 12)  # a Thursday: bookable until Tuesday 10 March 10:00 Paris (09:00 UTC)


@pytest.fixture
def engine():
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    Base.metadata.create_all(engine)
    clock.set_now(T0)
    return engine


@pytest.fixture
def session(engine):
    with Session(engine) as s:
        yield s


def new_activity(session, **overrides):
    data = {
        "name": "Cantine",
        "kind": "canteen",
        "billing_mode": "postpaid",
        "capacity": 2,
        "weekdays": ["monday", "tuesday", "thursday", "friday"],
        "start_date": "2026-03-02",
        "end_date": "2026-07-03",
        "booking_deadline": {"days_before": 2, "at": "10:00"},
        "cancellation_deadline": {"days_before": 1, "at": "18:00"},
        "cancellation_approval": "auto",
        "waiting_list": True,
        **overrides,
    }
    return activities.create_activity(session, AGENT, COMMUNE, "Europe/Paris", data)


def new_child(**overrides):
    values = {
        "id": str(uuid.uuid4()),
        "family_id": str(uuid.uuid4()),
        "commune_id": COMMUNE,
        "birth_date": dt.date(2019, 5, 4),
        "class_name": "CP",
        **overrides,
    }
    return ChildInfo(**values)


class Parent:
    """An account with children; books and cancels through its cart."""

    def __init__(self, session, *children):
        self.session = session
        self.account_id = str(uuid.uuid4())
        self.children = {c.id: c for c in children}

    def book(self, child, activity, *days, key=None):
        cart.add_items(
            self.session, self.account_id, child, activity["id"], dates=[d.isoformat() for d in days]
        )
        return self.validate(key)

    def cancel(self, child, activity, *days, key=None):
        cart.add_cancellations(
            self.session, self.account_id, child, activity["id"], [d.isoformat() for d in days]
        )
        return self.validate(key)

    def validate(self, key=None):
        key = key or uuid.uuid4().hex
        return validation.validate(self.session, self.account_id, key, self.children, clock.now())["results"]


def one(results):
    [result] = results
    return result


def outbox(session, event_type):
    return [
        e.payload
        for e in session.scalars(select(OutboxEvent).order_by(OutboxEvent.id))
        if e.event_type == event_type
    ]


def taken(session, activity, day=DAY):
    return session.scalar(
        select(Occurrence.taken).where(Occurrence.activity_id == activity["id"], Occurrence.date == day)
    )


def status(session, booking_id):
    return session.get(Booking, booking_id, populate_existing=True).status


# --- booking: confirmed, and each rejection reason --------------------------------------------------


def test_postpaid_booking_is_confirmed_and_takes_a_place(session):
    activity = new_activity(session)
    child = new_child()
    parent = Parent(session, child)
    result = one(parent.book(child, activity, DAY))
    assert result["outcome"] == outcomes.CONFIRMED and "reason" not in result
    assert result == {
        "child_id": child.id,
        "activity_id": activity["id"],
        "date": "2026-03-12",
        "action": "book",
        "outcome": "confirmed",
        "booking_id": result["booking_id"],
    }
    assert taken(session, activity) == 1
    [event] = outbox(session, "booking_confirmed")
    assert event["booking_id"] == result["booking_id"] and event["family_id"] == child.family_id
    assert set(event) == {
        "booking_id",
        "child_id",
        "activity_id",
        "date",
        "commune_id",
        "family_id",
        "account_id",
        "status",
        "hold_expires_at",
        "billing_mode",
        "activity_name",
        "event_id",
    }
    assert event["billing_mode"] == "postpaid"  # billing invoices it at month end
    [validated] = outbox(session, "cart_validated")
    assert validated["account_id"] == parent.account_id and validated["results"] == [result]
    assert session.scalar(select(func.count()).select_from(CartItem)) == 0  # the cart is emptied


@pytest.mark.parametrize(
    "day",
    [dt.date(2026, 3, 11), dt.date(2026, 3, 14), dt.date(2026, 7, 6), dt.date(2026, 2, 26)],
    ids=["wednesday-not-a-weekday", "saturday", "after-the-period", "before-the-period"],
)
def test_a_day_the_activity_does_not_run_is_not_scheduled(session, day):
    activity = new_activity(session)
    child = new_child()
    result = one(Parent(session, child).book(child, activity, day))
    assert (result["outcome"], result["reason"]) == (outcomes.REJECTED, outcomes.NOT_SCHEDULED)
    assert "booking_id" not in result
    assert session.scalar(select(func.count()).select_from(Booking)) == 0


def test_a_closed_day_is_rejected(session):
    activity = new_activity(session)
    activities.add_closure(session, AGENT, COMMUNE, activity["id"], "2026-03-12", "2026-03-13", "Grève")
    child = new_child()
    results = Parent(session, child).book(child, activity, DAY, dt.date(2026, 3, 13), dt.date(2026, 3, 16))
    assert [(r["date"], r["outcome"], r.get("reason")) for r in results] == [
        ("2026-03-12", "rejected", "CLOSED"),
        ("2026-03-13", "rejected", "CLOSED"),
        ("2026-03-16", "confirmed", None),
    ]


def test_eligibility_by_age_and_class(session):
    activity = new_activity(session, min_age=6, max_age=11, classes=["CP", "CE1"])
    too_young = new_child(birth_date=dt.date(2021, 1, 1))
    six_on_the_day = new_child(birth_date=dt.date(2020, 3, 12))
    wrong_class = new_child(birth_date=dt.date(2018, 1, 1), class_name="CM2")
    no_class = new_child(birth_date=dt.date(2018, 1, 1), class_name=None)
    fine = new_child(birth_date=dt.date(2018, 1, 1), class_name=" ce1 ")
    for child, expected in [
        (too_young, ("rejected", "NOT_ELIGIBLE")),
        (six_on_the_day, ("confirmed", None)),
        (wrong_class, ("rejected", "NOT_ELIGIBLE")),
        (no_class, ("rejected", "NOT_ELIGIBLE")),
        (fine, ("confirmed", None)),
    ]:
        result = one(Parent(session, child).book(child, activity, DAY))
        assert (result["outcome"], result.get("reason")) == expected, child
    six_on_the_day_without_class = new_child(birth_date=dt.date(2020, 3, 12), class_name="CE2")
    result = one(
        Parent(session, six_on_the_day_without_class).book(six_on_the_day_without_class, activity, DAY)
    )
    assert result["reason"] == "NOT_ELIGIBLE"


def test_a_child_of_another_commune_or_one_the_account_lost_is_not_eligible(session):
    activity = new_activity(session)
    child = new_child()
    parent = Parent(session, child)
    cart.add_items(session, parent.account_id, child, activity["id"], dates=[DAY.isoformat()])
    parent.children = {child.id: None}  # communes no longer allows this account for the child
    assert one(parent.validate())["reason"] == outcomes.NOT_ELIGIBLE


def test_deadline_passed_at_the_deadline_itself(session):
    activity = new_activity(session)
    child = new_child()
    parent = Parent(session, child)
    clock.set_now(dt.datetime(2026, 3, 10, 8, 59, 59, tzinfo=dt.UTC))  # 09:59:59 in Paris
    assert one(parent.book(child, activity, DAY))["outcome"] == "confirmed"
    other = new_child()
    clock.set_now(dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC))  # 10:00 in Paris: too late
    result = one(Parent(session, other).book(other, activity, DAY))
    assert (result["outcome"], result["reason"]) == ("rejected", "DEADLINE_PASSED")


def test_working_days_deadline_skips_weekends_holidays_and_closures(session):
    # Monday 18 May 2026, 2 working days before at 10:00: not Sunday 17 nor Saturday 16 (weekend), not
    # Friday 15 (closed here), not Thursday 14 (Ascension): Wednesday 13 is one, Tuesday 12 is two.
    activity = new_activity(session, booking_deadline={"days_before": 2, "at": "10:00", "working_days": True})
    activities.add_closure(session, AGENT, COMMUNE, activity["id"], "2026-05-15", "2026-05-15", "Pont")
    child = new_child()
    clock.set_now(dt.datetime(2026, 5, 12, 7, 59, tzinfo=dt.UTC))  # Tuesday 12 May 09:59 Paris
    assert one(Parent(session, child).book(child, activity, dt.date(2026, 5, 18)))["outcome"] == "confirmed"
    late = new_child()
    clock.set_now(dt.datetime(2026, 5, 12, 8, 0, tzinfo=dt.UTC))
    result = one(Parent(session, late).book(late, activity, dt.date(2026, 5, 18)))
    assert result["reason"] == "DEADLINE_PASSED"


def test_already_booked(session):
    activity = new_activity(session)
    child = new_child()
    parent = Parent(session, child)
    first = one(parent.book(child, activity, DAY))
    second_parent = Parent(session, child)  # the other parent of the family
    result = one(second_parent.book(child, activity, DAY))
    assert (result["outcome"], result["reason"]) == ("rejected", "ALREADY_BOOKED")
    assert taken(session, activity) == 1
    assert status(session, first["booking_id"]) == "confirmed"


def test_full_without_waiting_list(session):
    activity = new_activity(session, capacity=1, waiting_list=False)
    first, second = new_child(), new_child()
    assert one(Parent(session, first).book(first, activity, DAY))["outcome"] == "confirmed"
    result = one(Parent(session, second).book(second, activity, DAY))
    assert (result["outcome"], result["reason"]) == ("rejected", "FULL")
    assert taken(session, activity) == 1
    assert session.scalar(select(func.count()).select_from(Booking)) == 1


def test_capacity_zero_waitlists_everyone(session):
    activity = new_activity(session, capacity=0)
    child = new_child()
    assert one(Parent(session, child).book(child, activity, DAY))["outcome"] == "waitlisted"
    assert taken(session, activity) == 0


# --- waiting list and cancellations ---------------------------------------------------------------


def test_waitlist_in_order_of_arrival_and_promotion_after_an_automatic_cancellation(session):
    activity = new_activity(session, capacity=1)
    a, b, c = new_child(), new_child(), new_child()
    pa, pb, pc = Parent(session, a), Parent(session, b), Parent(session, c)
    booked = one(pa.book(a, activity, DAY))
    waiting_b = one(pb.book(b, activity, DAY))
    waiting_c = one(pc.book(c, activity, DAY))
    assert (booked["outcome"], waiting_b["outcome"], waiting_c["outcome"]) == (
        "confirmed",
        "waitlisted",
        "waitlisted",
    )
    assert [e["position"] for e in outbox(session, "booking_waitlisted")] == [1, 2]
    assert taken(session, activity) == 1

    cancelled = one(pa.cancel(a, activity, DAY))
    assert cancelled == {
        "child_id": a.id,
        "activity_id": activity["id"],
        "date": "2026-03-12",
        "action": "cancel",
        "outcome": "cancelled",
        "booking_id": booked["booking_id"],
    }
    assert status(session, booked["booking_id"]) == "cancelled"
    assert status(session, waiting_b["booking_id"]) == "confirmed"  # the first to arrive
    assert status(session, waiting_c["booking_id"]) == "waitlisted"
    assert taken(session, activity) == 1
    assert [e["booking_id"] for e in outbox(session, "booking_cancelled")] == [booked["booking_id"]]
    assert [e["booking_id"] for e in outbox(session, "booking_promoted")] == [waiting_b["booking_id"]]
    assert outbox(session, "booking_confirmed")[-1]["booking_id"] == waiting_b["booking_id"]

    # the cancelled child can book again: it joins the end of the list
    again = one(pa.book(a, activity, DAY))
    assert again["outcome"] == "waitlisted" and again["booking_id"] != booked["booking_id"]


def test_leaving_the_waiting_list_is_always_allowed_and_frees_nothing(session):
    activity = new_activity(session, capacity=1, cancellation_deadline={"never": True})
    a, b = new_child(), new_child()
    one(Parent(session, a).book(a, activity, DAY))
    pb = Parent(session, b)
    waiting = one(pb.book(b, activity, DAY))
    assert one(pb.cancel(b, activity, DAY))["outcome"] == "cancelled"
    assert status(session, waiting["booking_id"]) == "cancelled"
    assert taken(session, activity) == 1


def test_cancellation_rejections(session):
    never = new_activity(session, name="Séjour", cancellation_deadline={"never": True})
    auto = new_activity(session)
    child = new_child()
    parent = Parent(session, child)
    assert one(parent.cancel(child, auto, DAY))["reason"] == "NOT_BOOKED"
    one(parent.book(child, never, DAY))
    refused = one(parent.cancel(child, never, DAY))
    assert (refused["outcome"], refused["reason"]) == ("rejected", "CANCELLATION_NOT_ALLOWED")
    assert refused["booking_id"]
    booked = one(parent.book(child, auto, DAY))
    clock.set_now(dt.datetime(2026, 3, 11, 17, 0, tzinfo=dt.UTC))  # Wednesday 18:00 Paris: the deadline
    late = one(parent.cancel(child, auto, DAY))
    assert (late["outcome"], late["reason"]) == ("rejected", "DEADLINE_PASSED")
    assert status(session, booked["booking_id"]) == "confirmed"
    assert taken(session, auto) == 1


def test_agent_approval_makes_a_cancellation_request(session):
    activity = new_activity(session, capacity=1, cancellation_approval="agent")
    child, waiting = new_child(), new_child()
    parent = Parent(session, child)
    booked = one(parent.book(child, activity, DAY))
    one(Parent(session, waiting).book(waiting, activity, DAY))
    result = one(parent.cancel(child, activity, DAY))
    assert (result["outcome"], result["booking_id"]) == ("requested", booked["booking_id"])
    assert status(session, booked["booking_id"]) == "cancel_requested"
    [request] = session.scalars(select(CancellationRequest)).all()
    assert (request.booking_id, request.status, request.account_id) == (
        booked["booking_id"],
        "pending",
        parent.account_id,
    )
    [event] = outbox(session, "cancellation_requested")
    assert event["request_id"] == request.id and event["booking_id"] == booked["booking_id"]
    assert taken(session, activity) == 1  # the place stays taken until an agent decides
    assert outbox(session, "booking_promoted") == []
    # asking again changes nothing
    assert one(parent.cancel(child, activity, DAY))["outcome"] == "requested"
    assert session.scalar(select(func.count()).select_from(CancellationRequest)) == 1
    # and the day cannot be booked again meanwhile
    assert one(parent.book(child, activity, DAY))["reason"] == "ALREADY_BOOKED"


# --- prepaid holds ---------------------------------------------------------------------------------


def worker_db(engine):
    return WorkerDb(sessionmaker(bind=engine, expire_on_commit=False))


def test_prepaid_hold_expires_and_the_sweep_releases_it_to_the_waiting_list(engine, session):
    activity = new_activity(session, billing_mode="prepaid", capacity=1, hold_minutes=20)
    a, b = new_child(), new_child()
    held = one(Parent(session, a).book(a, activity, DAY))
    waiting = one(Parent(session, b).book(b, activity, DAY))
    assert (held["outcome"], waiting["outcome"]) == ("pending_payment", "waitlisted")
    [event] = outbox(session, "booking_held")
    assert event["booking_id"] == held["booking_id"]
    assert event["hold_expires_at"] == (T0 + dt.timedelta(minutes=20)).isoformat()
    session.commit()
    db = worker_db(engine)

    clock.advance(dt.timedelta(minutes=19, seconds=59))
    assert holds.sweep(db, clock.now()) == 0
    assert status(session, held["booking_id"]) == "pending_payment"

    clock.advance(dt.timedelta(seconds=1))  # at the expiry itself
    assert holds.sweep(db, clock.now()) == 1
    assert status(session, held["booking_id"]) == "released"
    promoted = session.get(Booking, waiting["booking_id"], populate_existing=True)
    assert promoted.status == "pending_payment"
    assert promoted.hold_expires_at == clock.now() + dt.timedelta(minutes=20)  # a fresh hold
    assert taken(session, activity) == 1
    assert [e["booking_id"] for e in outbox(session, "booking_released")] == [held["booking_id"]]
    assert [e["booking_id"] for e in outbox(session, "booking_promoted")] == [waiting["booking_id"]]
    assert outbox(session, "booking_held")[-1]["booking_id"] == waiting["booking_id"]
    assert holds.sweep(db, clock.now()) == 0  # nothing twice

    clock.advance(dt.timedelta(minutes=20))
    assert holds.sweep(db, clock.now()) == 1
    assert status(session, waiting["booking_id"]) == "released"
    assert taken(session, activity) == 0


def test_an_unpaid_hold_is_cancelled_at_once_even_with_agent_approval(session):
    activity = new_activity(session, billing_mode="prepaid", cancellation_approval="agent")
    child = new_child()
    parent = Parent(session, child)
    held = one(parent.book(child, activity, DAY))
    assert one(parent.cancel(child, activity, DAY))["outcome"] == "cancelled"
    assert status(session, held["booking_id"]) == "cancelled"
    assert taken(session, activity) == 0


def test_the_sweep_does_not_release_a_cancelled_hold(engine, session):
    activity = new_activity(session, billing_mode="prepaid")
    child = new_child()
    parent = Parent(session, child)
    held = one(parent.book(child, activity, DAY))
    one(parent.cancel(child, activity, DAY))
    session.commit()
    clock.advance(dt.timedelta(hours=1))
    assert holds.sweep(worker_db(engine), clock.now()) == 0
    assert status(session, held["booking_id"]) == "cancelled"
    assert taken(session, activity) == 0


# --- idempotency ------------------------------------------------------------------------------------


def test_a_replay_returns_the_stored_response_and_books_nothing(session):
    activity = new_activity(session, capacity=1)
    child, other = new_child(), new_child()
    parent = Parent(session, child, other)
    cart.add_items(session, parent.account_id, child, activity["id"], dates=[DAY.isoformat()])
    clock.advance(dt.timedelta(seconds=1))
    cart.add_items(session, parent.account_id, other, activity["id"], dates=[DAY.isoformat()])
    first = validation.validate(session, parent.account_id, "key-1", parent.children, clock.now())
    assert [r["child_id"] for r in first["results"]] == [child.id, other.id]  # the cart's order
    assert sorted(r["outcome"] for r in first["results"]) == ["confirmed", "waitlisted"]
    assert first["payment"] is None
    events_before = session.scalar(select(func.count()).select_from(OutboxEvent))
    clock.advance(dt.timedelta(minutes=5))
    again = validation.validate(session, parent.account_id, "key-1", parent.children, clock.now())
    assert again == first
    assert session.scalar(select(func.count()).select_from(Booking)) == 2
    assert session.scalar(select(func.count()).select_from(OutboxEvent)) == events_before
    [stored] = session.scalars(select(CartValidation)).all()
    assert [item["child_id"] for item in stored.cart] == [child.id, other.id]
    # the same key from another account is another key
    stranger = Parent(session, new_child())
    with pytest.raises(CartEmpty):
        validation.validate(session, stranger.account_id, "key-1", stranger.children, clock.now())


def test_a_key_reused_for_another_cart_is_refused(session):
    activity = new_activity(session)
    child = new_child()
    parent = Parent(session, child)
    one(parent.book(child, activity, DAY, key="key-1"))
    cart.add_items(session, parent.account_id, child, activity["id"], dates=["2026-03-13"])
    with pytest.raises(IdempotencyKeyReused) as refused:
        parent.validate("key-1")
    assert (refused.value.code, refused.value.status) == ("IDEMPOTENCY_KEY_REUSED", 422)
    assert session.scalar(select(func.count()).select_from(Booking)) == 1
    assert session.scalar(select(func.count()).select_from(CartItem)) == 1  # still waiting
    assert one(parent.validate("key-2"))["outcome"] == "confirmed"


def test_an_empty_cart_is_refused_and_its_key_not_kept(session):
    activity = new_activity(session)
    child = new_child()
    parent = Parent(session, child)
    with pytest.raises(CartEmpty) as refused:
        parent.validate("key-1")
    assert (refused.value.code, refused.value.status) == ("CART_EMPTY", 409)
    assert session.scalar(select(func.count()).select_from(CartValidation)) == 0
    assert one(parent.book(child, activity, DAY, key="key-1"))["outcome"] == "confirmed"


@pytest.mark.parametrize("key", ["", "x" * 201, "a\nb", "\x00", None, 12])
def test_malformed_idempotency_keys(session, key):
    """What the gateway may send: its Idempotency-Key header (up to 200 characters) or its own."""
    with pytest.raises(ValidationFailed) as refused:
        validation.validate(session, str(uuid.uuid4()), key, {}, clock.now())
    assert list(refused.value.details["fields"]) == ["idempotency_key"]


def test_any_key_the_gateway_passes_is_accepted(session):
    activity = new_activity(session)
    child = new_child()
    parent = Parent(session, child)
    for key in ("x" * 200, f"auto-{uuid.uuid4()}", "clé avec espaces"):
        assert one(parent.book(child, activity, DAY, key=key))["outcome"] in ("confirmed", "rejected")


def test_results_follow_the_cart_order_across_children_and_activities(session):
    canteen = new_activity(session)
    care = new_activity(session, name="Garderie", kind="morning_care", capacity=0, waiting_list=False)
    a, b = new_child(), new_child()
    parent = Parent(session, a, b)
    cart.add_items(session, parent.account_id, b, care["id"], dates=["2026-03-13"])
    clock.advance(dt.timedelta(seconds=1))
    cart.add_items(session, parent.account_id, a, canteen["id"], dates=["2026-03-16", "2026-03-12"])
    results = parent.validate()
    assert [(r["child_id"], r["activity_id"], r["date"], r["outcome"]) for r in results] == [
        (b.id, care["id"], "2026-03-13", "rejected"),
        (a.id, canteen["id"], "2026-03-12", "confirmed"),
        (a.id, canteen["id"], "2026-03-16", "confirmed"),
    ]

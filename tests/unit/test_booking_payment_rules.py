"""booking's side of a payment, without a broker: the rule (`fate`) for each status, the event's
fields, and `apply` on SQLite: holds confirmed, lost holds taken again while a place is left, the
rest lost, each booking confirmed once, booking_confirmed carrying the payment."""

import datetime as dt
import uuid

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from services.booking import activities, cart, holds, payments, validation
from services.booking.access import ChildInfo
from services.booking.models import Base, Booking, Occurrence, OutboxEvent
from services.common import clock
from services.common.context import Caller

COMMUNE = str(uuid.uuid4())
AGENT = Caller(account_id=str(uuid.uuid4()), roles=(f"agent:{COMMUNE}",))
T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)  # Monday 2 March 2026, 09:00 in Paris
DAY = dt.date(2026, 3, 12)  # a Thursday


# ---------------------------------------------------------------- the rule


@pytest.mark.parametrize(
    "status, place_left, other_active, expected",
    [
        ("pending_payment", True, False, payments.CONFIRM),
        ("pending_payment", False, False, payments.CONFIRM),  # it holds its place already
        ("confirmed", False, False, payments.UNCHANGED),
        ("cancel_requested", False, False, payments.UNCHANGED),
        ("released", True, False, payments.RETAKE),
        ("released", False, False, payments.LOST),
        ("released", True, True, payments.LOST),  # the child was booked again meanwhile
        ("cancelled", True, False, payments.LOST),  # the family or an agent cancelled it
        ("waitlisted", True, False, payments.LOST),
        (None, True, False, payments.LOST),  # unknown to booking
    ],
)
def test_fate_of_a_paid_booking(status, place_left, other_active, expected):
    assert payments.fate(status, place_left, other_active) == expected


def test_only_lost_bookings_are_not_counted_confirmed():
    assert [
        payments.counts_as_confirmed(f) for f in (payments.CONFIRM, payments.RETAKE, payments.UNCHANGED)
    ] == [True] * 3
    assert not payments.counts_as_confirmed(payments.LOST)


def event(**overrides):
    return {
        "event_id": str(uuid.uuid4()),
        "payment_id": str(uuid.uuid4()),
        "commune_id": COMMUNE,
        "family_id": str(uuid.uuid4()),
        "account_id": str(uuid.uuid4()),
        "amount_cents": 900,
        "total_cents": 900,
        "booking_ids": ["b1", "b2", "b1"],
        **overrides,
    }


def test_parse_keeps_each_booking_once_in_order():
    parsed = payments.parse(event())
    assert parsed.booking_ids == ("b1", "b2")


@pytest.mark.parametrize(
    "overrides, field",
    [
        ({"event_id": None}, "event_id"),
        ({"payment_id": ""}, "payment_id"),
        ({"commune_id": 12}, "commune_id"),
        ({"booking_ids": "b1"}, "booking_ids"),
        ({"booking_ids": ["b1", None]}, "booking_ids"),
    ],
)
def test_parse_names_the_bad_field(overrides, field):
    with pytest.raises(payments.InvalidPayment, match=field):
        payments.parse(event(**overrides))


def test_parse_refuses_what_is_not_an_object():
    with pytest.raises(payments.InvalidPayment):
        payments.parse(["b1"])


# ---------------------------------------------------------------- apply, on SQLite


@pytest.fixture
def session():
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    Base.metadata.create_all(engine)
    clock.set_now(T0)
    with Session(engine) as s:
        yield s


def camp(session, capacity=1):
    data = {
        "name": "Séjour",
        "kind": "holiday_camp",
        "billing_mode": "prepaid",
        "capacity": capacity,
        "weekdays": ["monday", "tuesday", "thursday", "friday"],
        "start_date": "2026-03-02",
        "end_date": "2026-07-03",
        "booking_deadline": {"days_before": 2, "at": "10:00"},
        "cancellation_deadline": {"days_before": 1, "at": "18:00"},
        "cancellation_approval": "auto",
        "waiting_list": False,
        "hold_minutes": 5,
    }
    return activities.create_activity(session, AGENT, COMMUNE, "Europe/Paris", data)


def child():
    return ChildInfo(
        id=str(uuid.uuid4()),
        family_id=str(uuid.uuid4()),
        commune_id=COMMUNE,
        birth_date=dt.date(2019, 5, 4),
        class_name="CP",
    )


def hold(session, activity, kid, *days):
    account_id = str(uuid.uuid4())
    cart.add_items(session, account_id, kid, activity["id"], dates=[d.isoformat() for d in days])
    results = validation.validate(session, account_id, uuid.uuid4().hex, {kid.id: kid}, clock.now())[
        "results"
    ]
    session.commit()
    return results


def paid(booking_ids, commune_id=COMMUNE):
    return payments.parse(event(booking_ids=booking_ids, commune_id=commune_id))


def status_of(session, booking_id):
    return session.scalar(
        select(Booking.status).where(Booking.id == booking_id).execution_options(populate_existing=True)
    )


def taken(session, activity):
    return session.scalar(select(Occurrence.taken).where(Occurrence.activity_id == activity["id"]))


def confirmed_events(session):
    rows = session.scalars(select(OutboxEvent).where(OutboxEvent.event_type == "booking_confirmed")).all()
    return [r.payload for r in rows]


def test_held_days_are_confirmed_and_the_hold_cleared(session):
    activity = camp(session, capacity=2)
    results = hold(session, activity, child(), DAY, DAY + dt.timedelta(days=1))
    ids = [r["booking_id"] for r in results]
    assert {r["outcome"] for r in results} == {"pending_payment"}
    payment = paid(ids)

    assert payments.apply(session, payment, clock.now()) == {"confirmed": ids, "lost": []}
    session.commit()
    for booking_id in ids:
        booking = session.get(Booking, booking_id, populate_existing=True)
        assert (booking.status, booking.hold_expires_at) == ("confirmed", None)
    events = confirmed_events(session)
    assert sorted(e["booking_id"] for e in events) == sorted(ids)
    assert all(e["paid"] is True and e["payment_id"] == payment.payment_id for e in events)
    assert all(e["hold_expires_at"] is None and e["status"] == "confirmed" for e in events)

    # applied again (another event for the same payment): unchanged, counted confirmed, no new event
    assert payments.apply(session, paid(ids), clock.now()) == {"confirmed": ids, "lost": []}
    assert len(confirmed_events(session)) == 2


def test_a_released_hold_takes_a_free_place_again(session):
    activity = camp(session, capacity=1)
    [result] = hold(session, activity, child(), DAY)
    clock.advance(dt.timedelta(minutes=5))
    assert holds.release(session, result["booking_id"], clock.now())
    session.commit()
    assert taken(session, activity) == 0

    assert payments.apply(session, paid([result["booking_id"]]), clock.now())["confirmed"] == [
        result["booking_id"]
    ]
    session.commit()
    assert status_of(session, result["booking_id"]) == "confirmed"
    assert taken(session, activity) == 1


def test_a_released_hold_whose_place_went_to_another_child_is_lost(session):
    activity = camp(session, capacity=1)
    [first] = hold(session, activity, child(), DAY)
    clock.advance(dt.timedelta(minutes=5))
    holds.release(session, first["booking_id"], clock.now())
    session.commit()
    [second] = hold(session, activity, child(), DAY)
    assert second["outcome"] == "pending_payment"

    result = payments.apply(session, paid([first["booking_id"]]), clock.now())
    session.commit()
    assert result == {"confirmed": [], "lost": [first["booking_id"]]}
    assert status_of(session, first["booking_id"]) == "released"
    assert taken(session, activity) == 1
    assert confirmed_events(session) == []


def test_a_released_hold_of_a_child_booked_again_is_lost_and_keeps_its_place_free(session):
    activity = camp(session, capacity=2)
    kid = child()
    [first] = hold(session, activity, kid, DAY)
    clock.advance(dt.timedelta(minutes=5))
    holds.release(session, first["booking_id"], clock.now())
    session.commit()
    [again] = hold(session, activity, kid, DAY)  # the same child, a new hold
    assert again["booking_id"] != first["booking_id"]

    result = payments.apply(session, paid([first["booking_id"]]), clock.now())
    session.commit()
    assert result["lost"] == [first["booking_id"]]
    assert taken(session, activity) == 1  # no place taken for the lost one


def test_unknown_cancelled_and_other_communes_bookings_are_lost(session):
    activity = camp(session, capacity=3)
    kid = child()
    [kept, cancelled_one] = hold(session, activity, kid, DAY, DAY + dt.timedelta(days=1))
    booking = session.get(Booking, cancelled_one["booking_id"])
    booking.status = "cancelled"
    session.commit()
    unknown = str(uuid.uuid4())

    result = payments.apply(
        session, paid([unknown, cancelled_one["booking_id"], kept["booking_id"]]), clock.now()
    )
    assert result == {"confirmed": [kept["booking_id"]], "lost": [unknown, cancelled_one["booking_id"]]}
    session.rollback()
    # the same holds paid through another commune's payment: not its bookings
    assert payments.apply(session, paid([kept["booking_id"]], commune_id=str(uuid.uuid4())), clock.now()) == {
        "confirmed": [],
        "lost": [kept["booking_id"]],
    }
    assert status_of(session, kept["booking_id"]) == "pending_payment"


def test_a_hold_past_its_expiry_but_not_yet_released_is_confirmed(session):
    activity = camp(session, capacity=1)
    [result] = hold(session, activity, child(), DAY)
    clock.advance(dt.timedelta(minutes=10))
    assert payments.apply(session, paid([result["booking_id"]]), clock.now())["confirmed"] == [
        result["booking_id"]
    ]
    session.commit()
    assert holds.release(session, result["booking_id"], clock.now()) is False  # the sweep comes too late
    assert status_of(session, result["booking_id"]) == "confirmed"

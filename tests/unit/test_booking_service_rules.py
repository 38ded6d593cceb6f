"""booking's rules on SQLite, without a broker: activity fields and who may manage them, capacity
changes, closures, the calendar of a child, carts, and the access helpers (with a small in-memory
stand-in for communes' RPCs; the integration tests run the real communes service)."""

import datetime as dt
import uuid

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from services.booking import access, activities, calendar, cart, fields, validation
from services.booking.access import ChildInfo
from services.booking.exceptions import CapacityBelowBookings, CartTooLarge
from services.booking.models import Base, Booking, Occurrence
from services.common import clock
from services.common.context import Caller
from services.common.errors import NotFound, Unauthenticated, ValidationFailed

COMMUNE = str(uuid.uuid4())
OTHER_COMMUNE = str(uuid.uuid4())
AGENT = Caller(account_id=str(uuid.uuid4()), roles=(f"agent:{COMMUNE}",))
ADMIN = Caller(account_id=str(uuid.uuid4()), roles=("admin",))
T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)  # Monday 2 March 2026, 09:00 in Paris
DAY = dt.date(2026, 3, 12)  # a Thursday


@pytest.fixture
def session():
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    Base.metadata.create_all(engine)
    clock.set_now(T0)
    with Session(engine) as s:
        yield s


def activity_data(**overrides):
    return {
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


def new_activity(session, caller=AGENT, commune_id=COMMUNE, timezone="Europe/Paris", **overrides):
    return activities.create_activity(session, caller, commune_id, timezone, activity_data(**overrides))


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


def book(session, child, activity, *days):
    account_id = str(uuid.uuid4())
    cart.add_items(session, account_id, child, activity["id"], dates=[d.isoformat() for d in days])
    return validation.validate(session, account_id, uuid.uuid4().hex, {child.id: child}, clock.now())[
        "results"
    ]


class CommunesStandIn:
    """communes' check_child_access / list_memberships / get_commune, in memory."""

    def __init__(self):
        self.children = {}  # child_id -> (ChildInfo, set of account ids)
        self.memberships = {}  # account_id -> [commune ids]
        self.caller = None

    def check_child_access(self, account_id, child_id):
        child, accounts = self.children.get(child_id, (None, set()))
        if child is None or account_id not in accounts:
            return {"allowed": False, "family_id": None, "commune_id": None, "relation": None}
        return {
            "allowed": True,
            "family_id": child.family_id,
            "commune_id": child.commune_id,
            "relation": "parent",
            "child": {
                "id": child.id,
                "first_name": "Léa",
                "birth_date": child.birth_date.isoformat(),
                "school": None,
                "class_name": child.class_name,
            },
        }

    def list_memberships(self):
        return [
            {"id": c, "name": "X", "family": {}} for c in self.memberships.get(self.caller.account_id, [])
        ]


# --- activities ---------------------------------------------------------------------------------------


def test_create_activity_stores_the_rules_and_the_communes_time_zone(session):
    created = new_activity(
        session,
        timezone="Indian/Reunion",
        billing_mode="prepaid",
        weekdays=["friday", "monday"],
        booking_deadline={"weekday_of_previous_week": "thursday", "at": "12:00"},
        cancellation_deadline={"never": True},
        min_age=3,
        max_age=11,
        classes=["CP", " CE1 ", "CP"],
    )
    assert created["timezone"] == "Indian/Reunion"
    assert created["weekdays"] == ["monday", "friday"]
    assert created["booking_deadline"] == {"weekday_of_previous_week": "thursday", "at": "12:00"}
    assert created["cancellation_deadline"] == {"never": True}
    assert (created["min_age"], created["max_age"], created["classes"]) == (3, 11, ["CP", "CE1"])
    assert created["hold_minutes"] == 20 and created["capacity"] == 2
    assert created["start_date"] == "2026-03-02" and created["commune_id"] == COMMUNE
    assert new_activity(session, timezone=None)["timezone"] == "Europe/Paris"
    assert new_activity(session, caller=ADMIN)["id"]


def test_activity_validation_names_every_field_in_french(session):
    bad = activity_data(
        name="",
        kind="zoo",
        billing_mode="free",
        capacity=-1,
        weekdays=["funday"],
        start_date="2026-13-01",
        end_date="02/03/2026",
        booking_deadline={"never": True},
        cancellation_deadline={"days_before": 2},
        cancellation_approval="maybe",
        waiting_list="yes",
        min_age=-1,
        classes="CP",
        hold_minutes=0,
        colour="blue",
    )
    with pytest.raises(ValidationFailed) as refused:
        activities.create_activity(session, AGENT, COMMUNE, "Europe/Paris", bad)
    fields_ = refused.value.details["fields"]
    assert set(fields_) == {
        "name",
        "kind",
        "billing_mode",
        "capacity",
        "weekdays",
        "start_date",
        "end_date",
        "booking_deadline",
        "cancellation_deadline",
        "cancellation_approval",
        "waiting_list",
        "min_age",
        "classes",
        "hold_minutes",
        "colour",
    }
    assert "annulation" in fields_["booking_deadline"][0]
    assert fields_["colour"] == ["Champ inconnu."]
    with pytest.raises(ValidationFailed) as missing:
        activities.create_activity(session, AGENT, COMMUNE, "Europe/Paris", {})
    assert set(missing.value.details["fields"]) == set(fields.REQUIRED)
    with pytest.raises(ValidationFailed) as crossed:
        new_activity(session, start_date="2026-07-03", end_date="2026-03-02", min_age=10, max_age=6)
    assert set(crossed.value.details["fields"]) == {"end_date", "max_age"}
    for capacity in (True, 1.5, "3", 100_001):
        with pytest.raises(ValidationFailed):
            new_activity(session, capacity=capacity)


def test_only_the_communes_staff_manage_its_activities(session):
    created = new_activity(session)
    strangers = [
        Caller(account_id=str(uuid.uuid4()), roles=(f"agent:{OTHER_COMMUNE}",)),
        Caller(account_id=str(uuid.uuid4())),
    ]
    for stranger in strangers:
        with pytest.raises(NotFound):
            new_activity(session, caller=stranger)
        with pytest.raises(NotFound):
            activities.get_activity(session, stranger, COMMUNE, created["id"])
        with pytest.raises(NotFound):
            activities.update_activity(session, stranger, COMMUNE, created["id"], {"capacity": 5})
        with pytest.raises(NotFound):
            activities.add_closure(session, stranger, COMMUNE, created["id"], "2026-03-12", "2026-03-12", "x")
    with pytest.raises(Unauthenticated):
        new_activity(session, caller=Caller())
    other_agent = Caller(account_id=str(uuid.uuid4()), roles=(f"agent:{OTHER_COMMUNE}",))
    with pytest.raises(NotFound):  # an activity of another commune, asked under one's own commune
        activities.get_activity(session, other_agent, OTHER_COMMUNE, created["id"])
    assert activities.get_activity(session, ADMIN, COMMUNE, created["id"])["id"] == created["id"]


def test_update_is_a_patch(session):
    created = new_activity(session, min_age=3)
    updated = activities.update_activity(
        session,
        AGENT,
        COMMUNE,
        created["id"],
        {"name": " Cantine Jaurès ", "min_age": None, "waiting_list": False},
    )
    assert (updated["name"], updated["min_age"], updated["waiting_list"]) == ("Cantine Jaurès", None, False)
    assert updated["kind"] == "canteen" and updated["booking_deadline"] == created["booking_deadline"]
    with pytest.raises(ValidationFailed) as refused:
        activities.update_activity(
            session, AGENT, COMMUNE, created["id"], {"name": None, "end_date": "2026-03-01"}
        )
    assert set(refused.value.details["fields"]) == {"name"}
    with pytest.raises(ValidationFailed) as crossed:
        activities.update_activity(session, AGENT, COMMUNE, created["id"], {"end_date": "2026-03-01"})
    assert set(crossed.value.details["fields"]) == {"end_date"}
    with pytest.raises(ValidationFailed):
        activities.update_activity(session, AGENT, COMMUNE, created["id"], ["capacity", 3])


def test_capacity_cannot_go_below_the_places_taken_and_raising_it_promotes(session):
    created = new_activity(session, capacity=2)
    children = [new_child() for _ in range(4)]
    outcomes_ = [book(session, child, created, DAY)[0]["outcome"] for child in children]
    assert outcomes_ == ["confirmed", "confirmed", "waitlisted", "waitlisted"]
    session.commit()
    with pytest.raises(CapacityBelowBookings) as refused:
        activities.update_activity(session, AGENT, COMMUNE, created["id"], {"capacity": 1})
    assert (refused.value.code, refused.value.status) == ("CAPACITY_BELOW_BOOKINGS", 409)
    session.rollback()
    assert session.get(Occurrence, session.scalar(select(Occurrence.id))).capacity == 2
    updated = activities.update_activity(session, AGENT, COMMUNE, created["id"], {"capacity": 3})
    assert updated["capacity"] == 3
    occurrence = session.scalars(select(Occurrence)).one()
    assert (occurrence.capacity, occurrence.taken) == (3, 3)
    statuses = sorted(b.status for b in session.scalars(select(Booking)))
    assert statuses == ["confirmed", "confirmed", "confirmed", "waitlisted"]
    # a new day gets the new capacity
    assert [book(session, c, created, dt.date(2026, 3, 13))[0]["outcome"] for c in children] == [
        "confirmed",
        "confirmed",
        "confirmed",
        "waitlisted",
    ]
    assert (
        activities.update_activity(session, AGENT, COMMUNE, created["id"], {"capacity": 3})["capacity"] == 3
    )


def test_closures(session):
    created = new_activity(session)
    closure = activities.add_closure(
        session, AGENT, COMMUNE, created["id"], "2026-04-20", "2026-05-01", " Vacances "
    )
    assert {k: closure[k] for k in ("activity_id", "from", "to", "reason")} == {
        "activity_id": created["id"],
        "from": "2026-04-20",
        "to": "2026-05-01",
        "reason": "Vacances",
    }
    detailed = activities.get_activity(session, AGENT, COMMUNE, created["id"])
    assert [c["id"] for c in detailed["closures"]] == [closure["id"]]
    for start, end, reason, field in [
        ("2026-05-02", "2026-05-01", "x", "to"),
        ("2026-01-01", "2027-01-02", "x", "to"),
        ("2026-05-01", "2026-05-01", "", "reason"),
        ("1er mai", "2026-05-01", "x", "from"),
    ]:
        with pytest.raises(ValidationFailed) as refused:
            activities.add_closure(session, AGENT, COMMUNE, created["id"], start, end, reason)
        assert list(refused.value.details["fields"]) == [field]


def test_who_may_list_a_communes_activities(session):
    new_activity(session)
    communes = CommunesStandIn()
    parent = Caller(account_id=str(uuid.uuid4()))
    communes.memberships[parent.account_id] = [COMMUNE]
    communes.caller = parent
    assert access.may_list_activities(communes, parent, COMMUNE) is True
    assert access.may_list_activities(communes, parent, OTHER_COMMUNE) is False
    stranger = Caller(account_id=str(uuid.uuid4()))
    communes.caller = stranger
    assert access.may_list_activities(communes, stranger, COMMUNE) is False
    assert access.may_list_activities(communes, AGENT, COMMUNE) is True  # from the token, no RPC
    with pytest.raises(Unauthenticated):
        access.may_list_activities(communes, Caller(), COMMUNE)
    assert [a["name"] for a in activities.list_activities(session, COMMUNE)] == ["Cantine"]
    assert activities.list_activities(session, OTHER_COMMUNE) == []


def test_child_access_through_communes(session):
    communes = CommunesStandIn()
    child = new_child(class_name=None)
    parent = Caller(account_id=str(uuid.uuid4()))
    communes.children[child.id] = (child, {parent.account_id})
    assert access.child(communes, parent, child.id) == child
    with pytest.raises(NotFound):
        access.child(communes, Caller(account_id=str(uuid.uuid4())), child.id)
    with pytest.raises(NotFound):
        access.child(communes, parent, str(uuid.uuid4()))
    with pytest.raises(NotFound):
        access.child(communes, parent, "x" * 65)
    with pytest.raises(Unauthenticated):
        access.child(communes, Caller(), child.id)
    lost = str(uuid.uuid4())
    assert access.children(communes, parent, [child.id, lost, child.id]) == {child.id: child, lost: None}


# --- calendar -----------------------------------------------------------------------------------------


def test_calendar_states_places_and_deadlines(session):
    canteen = new_activity(session, capacity=1)
    new_activity(
        session,
        name="Accueil du mercredi",
        kind="wednesday_leisure",
        weekdays=["wednesday"],
        cancellation_deadline={"never": True},
        min_age=8,
    )
    other = new_activity(session, commune_id=OTHER_COMMUNE, caller=ADMIN, name="Ailleurs")
    activities.add_closure(session, AGENT, COMMUNE, canteen["id"], "2026-03-13", "2026-03-13", "Grève")
    child, rival = new_child(), new_child()
    booked = book(session, child, canteen, DAY)[0]
    book(session, rival, canteen, dt.date(2026, 3, 16))
    days = calendar.calendar(session, child, dt.date(2026, 3, 2), dt.date(2026, 3, 16), clock.now())["days"]
    assert all(d["activity_id"] != other["id"] for d in days)
    by_key = {(d["date"], d["activity_name"]): d for d in days}
    assert [d["date"] for d in days] == sorted(d["date"] for d in days)
    assert len(days) == 9 + 2  # canteen: Mon/Tue/Thu/Fri of two weeks and Monday 16; two Wednesdays
    assert by_key[("2026-03-02", "Cantine")]["state"] == "locked"  # its deadline has passed
    assert by_key[("2026-03-12", "Cantine")] == {
        "date": "2026-03-12",
        "activity_id": canteen["id"],
        "activity_name": "Cantine",
        "state": "booked",
        "places_left": 0,
        "book_until": "2026-03-10T09:00:00+00:00",
        "cancel_until": "2026-03-11T17:00:00+00:00",
        "booking_id": booked["booking_id"],
    }
    assert by_key[("2026-03-13", "Cantine")]["state"] == "closed"
    assert by_key[("2026-03-16", "Cantine")]["state"] == "full"
    assert by_key[("2026-03-16", "Cantine")]["booking_id"] is None
    assert by_key[("2026-03-09", "Cantine")]["state"] == "open"
    assert by_key[("2026-03-09", "Cantine")]["places_left"] == 1
    wednesday = by_key[("2026-03-11", "Accueil du mercredi")]
    assert (wednesday["state"], wednesday["cancel_until"]) == ("not_eligible", None)
    assert wednesday["places_left"] == 2


def test_calendar_shows_cancelled_days_as_bookable_until_their_deadline(session):
    canteen = new_activity(session)
    child = new_child()
    account_id = str(uuid.uuid4())
    cart.add_items(session, account_id, child, canteen["id"], dates=[DAY.isoformat()])
    validation.validate(session, account_id, "k1", {child.id: child}, clock.now())
    cart.add_cancellations(session, account_id, child, canteen["id"], [DAY.isoformat()])
    validation.validate(session, account_id, "k2", {child.id: child}, clock.now())

    def state():
        [day] = calendar.calendar(session, child, DAY, DAY, clock.now())["days"]
        return day["state"], day["booking_id"]

    assert state() == ("open", None)
    clock.set_now(dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC))
    assert state() == ("cancelled", None)


def test_calendar_and_history_ranges():
    for start, end in [
        ("2026-03-01", "2026-06-02"),
        ("2026-03-02", "2026-03-01"),
        ("2026-3-1", "2026-03-02"),
    ]:
        with pytest.raises(ValidationFailed) as refused:
            fields.date_range(start, end, fields.MAX_CALENDAR_DAYS)
        assert set(refused.value.details["fields"]) <= {"from", "to"}
    assert fields.date_range("2026-03-01", "2026-06-01", fields.MAX_CALENDAR_DAYS) == (
        dt.date(2026, 3, 1),
        dt.date(2026, 6, 1),
    )


def test_child_bookings_lists_every_status(session):
    canteen = new_activity(session, capacity=1)
    child, other = new_child(), new_child()
    book(session, other, canteen, DAY)
    waiting = book(session, child, canteen, DAY)[0]
    confirmed = book(session, child, canteen, dt.date(2026, 3, 13))[0]
    rows = calendar.child_bookings(session, child, dt.date(2026, 3, 1), dt.date(2026, 3, 31))
    assert [(r["id"], r["date"], r["status"]) for r in rows] == [
        (waiting["booking_id"], "2026-03-12", "waitlisted"),
        (confirmed["booking_id"], "2026-03-13", "confirmed"),
    ]
    assert set(rows[0]) == {"id", "activity_id", "date", "status", "created_at"}


# --- cart ---------------------------------------------------------------------------------------------


def test_cart_dates_period_duplicates_and_states(session):
    canteen = new_activity(session, capacity=1, end_date="2026-03-31")
    child, rival = new_child(), new_child()
    book(session, rival, canteen, dt.date(2026, 3, 16))
    account_id = str(uuid.uuid4())
    added = cart.add_items(
        session,
        account_id,
        child,
        canteen["id"],
        period={"from": "2026-03-09", "to": "2026-04-10", "weekdays": ["monday", "wednesday"]},
    )["items"]
    clock.advance(dt.timedelta(seconds=1))  # the cart keeps the order items were added in
    # Mondays of the activity's period only (Wednesdays are not its days; April is after its end)
    assert [(i["date"], i["action"], i["state"]) for i in added] == [
        ("2026-03-09", "book", "open"),
        ("2026-03-16", "book", "full"),
        ("2026-03-23", "book", "open"),
        ("2026-03-30", "book", "open"),
    ]
    again = cart.add_items(session, account_id, child, canteen["id"], dates=["2026-03-09", "2026-03-11"])[
        "items"
    ]
    assert [i["date"] for i in again] == ["2026-03-11"]  # explicit dates are kept; validation judges them
    assert cart.add_cancellations(session, account_id, child, canteen["id"], ["2026-03-09"])["items"] == []
    view = cart.view(session, account_id, {child.id: child}, clock.now())["items"]
    assert [i["date"] for i in view] == ["2026-03-09", "2026-03-16", "2026-03-23", "2026-03-30", "2026-03-11"]
    assert view[-1]["state"] == "closed"  # not one of its days
    assert (
        cart.view(session, account_id, {child.id: None}, clock.now())["items"][0]["state"] == "not_eligible"
    )
    assert cart.view(session, str(uuid.uuid4()), {}, clock.now()) == {"items": []}


def test_cart_refusals(session):
    canteen = new_activity(session)
    elsewhere = new_activity(session, caller=ADMIN, commune_id=OTHER_COMMUNE)
    child = new_child()
    account_id = str(uuid.uuid4())
    with pytest.raises(NotFound):
        cart.add_items(session, account_id, child, elsewhere["id"], dates=["2026-03-12"])
    with pytest.raises(NotFound):
        cart.add_items(session, account_id, child, str(uuid.uuid4()), dates=["2026-03-12"])
    with pytest.raises(ValidationFailed) as neither:
        cart.add_items(session, account_id, child, canteen["id"])
    assert list(neither.value.details["fields"]) == ["dates"]
    for bad in ([], ["2026-02-30"], "2026-03-12", ["12/03/2026"]):
        with pytest.raises(ValidationFailed):
            cart.add_items(session, account_id, child, canteen["id"], dates=bad)
    for period in (
        {"from": "2026-03-09", "to": "2027-03-31", "weekdays": ["monday"]},
        {"from": "2026-03-09", "to": "2026-03-31", "weekdays": []},
        {"from": "2026-03-09", "to": "2026-03-31"},
        {"from": "2026-03-09", "to": "2026-03-01", "weekdays": ["monday"]},
        ["2026-03-09"],
    ):
        with pytest.raises(ValidationFailed):
            cart.add_items(session, account_id, child, canteen["id"], period=period)
    item = cart.add_items(session, account_id, child, canteen["id"], dates=["2026-03-12"])["items"][0]
    with pytest.raises(NotFound):
        cart.remove_item(session, str(uuid.uuid4()), item["id"])  # another account's item
    cart.remove_item(session, account_id, item["id"])
    with pytest.raises(NotFound):
        cart.remove_item(session, account_id, item["id"])
    assert cart.items(session, account_id) == []


def test_cart_size_is_bounded(session):
    six_days = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday"]
    canteen = new_activity(session, weekdays=six_days)
    account_id = str(uuid.uuid4())
    period = {"from": "2026-03-02", "to": "2026-07-03", "weekdays": six_days}  # 107 days
    for _ in range(4):
        assert (
            len(cart.add_items(session, account_id, new_child(), canteen["id"], period=period)["items"])
            == 107
        )
    with pytest.raises(CartTooLarge) as refused:
        cart.add_items(session, account_id, new_child(), canteen["id"], period=period)
    assert (refused.value.code, refused.value.status) == ("CART_TOO_LARGE", 409)
    assert len(cart.items(session, account_id)) == 428


# --- settings -----------------------------------------------------------------------------------------


def test_settings_from_the_config_file_and_the_timer_interval():
    from services.booking.settings import BookingSettings
    from services.booking.timers import HoldSweepTimer
    from services.common.config import service_config
    from services.common.db import db_uri

    config = service_config("booking")
    assert db_uri(config, "booking").startswith("sqlite:///")
    assert BookingSettings.from_config(config).hold_sweep_seconds == 30
    assert BookingSettings.from_config({"HOLD_SWEEP_SECONDS": "0.5"}).hold_sweep_seconds == 0.5
    with pytest.raises(RuntimeError):
        BookingSettings.from_config({"HOLD_SWEEP_SECONDS": -1})

    class Container:
        config = {"HOLD_SWEEP_SECONDS": 2}

    timer = HoldSweepTimer()
    timer.container = Container()
    timer.setup()
    assert timer.interval == 2.0

"""booking against the real PostgreSQL and RabbitMQ, next to the real communes service (same vhost):
the commune's time zone copied onto activities, parents' access through adhesion codes, calendars,
carts, validations with their events leaving through the outbox, replays, prepaid holds released by
the timer, and concurrent validations through the service."""

import datetime as dt
import itertools
import uuid
from types import SimpleNamespace

import eventlet
import pytest
from nameko.events import event_handler
from nameko.standalone.rpc import ServiceRpcProxy
from nameko.testing.services import entrypoint_waiter
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.booking.exceptions import CapacityBelowBookings, CartEmpty, IdempotencyKeyReused
from services.booking.models import Booking, Occurrence
from services.booking.service import BookingService
from services.common import clock
from services.common.context import Caller
from services.common.db import get_engine
from services.common.errors import NotFound, Unauthenticated, ValidationFailed
from services.communes.service import CommunesService
from services.identity.service import IdentityService
from tests.integration.helpers import about, agent_of, call, new_parent

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)  # Monday 2 March 2026, 09:00 in Paris
ADMIN = Caller(account_id=str(uuid.uuid4()), roles=("admin",)).as_context()
_insee = itertools.count(61_000 + uuid.uuid4().int % 30_000)


class BookingEventsRecorder:
    """Stands for the services that react to booking's events (billing, notify)."""

    name = "booking_test_recorder"

    @event_handler("booking", "booking_confirmed")
    def on_confirmed(self, payload):
        return payload

    @event_handler("booking", "booking_held")
    def on_held(self, payload):
        return payload

    @event_handler("booking", "booking_released")
    def on_released(self, payload):
        return payload

    @event_handler("booking", "booking_promoted")
    def on_promoted(self, payload):
        return payload

    @event_handler("booking", "cart_validated")
    def on_cart_validated(self, payload):
        return payload


@pytest.fixture
def platform(container_factory, booking_config, communes_for_booking_config, identity_for_booking_config):
    clock.set_now(T0)  # the containers run in this process: they read the same clock
    identity = container_factory(IdentityService, identity_for_booking_config)
    identity.start()
    communes = container_factory(CommunesService, communes_for_booking_config)
    communes.start()
    booking = container_factory(BookingService, booking_config)
    booking.start()
    recorder = container_factory(BookingEventsRecorder, booking_config)
    recorder.start()
    return SimpleNamespace(
        identity=identity, communes=communes, booking=booking, recorder=recorder, config=booking_config
    )


class Town:
    """A commune and its agent, made through the real services: the agent's account is registered in
    identity and made agent by communes' add_agent (so communes' access checks know it too)."""

    def __init__(self, platform, timezone="Europe/Paris"):
        self.platform = platform
        self.commune = call(
            platform.communes, "create_commune", "Nantes", f"{next(_insee):05d}", timezone, caller=ADMIN
        )
        self.id = self.commune["id"]
        email = f"agent-{uuid.uuid4().hex[:10]}@example.org"
        account = call(platform.identity, "register", email, "correct horse battery", "fr")
        assert call(platform.communes, "add_agent", self.id, email, caller=ADMIN)["status"] == "granted"
        self.agent = Caller(account_id=account["id"], roles=(f"agent:{self.id}",)).as_context()

    def family_with_child(self, parent=None, birth_date="2019-05-04", class_name="CP"):
        """A family, its child, and (if given) a parent account linked through an adhesion code."""
        communes = self.platform.communes
        family = call(
            communes,
            "create_family",
            self.id,
            uuid.uuid4().hex[:12],
            "Famille",
            "f@example.org",
            caller=self.agent,
        )
        child = call(
            communes,
            "add_child",
            self.id,
            family["id"],
            "Léa",
            "Martin",
            birth_date,
            None,
            class_name,
            caller=self.agent,
        )
        if parent is not None:
            code = call(communes, "issue_adhesion_code", self.id, family["id"], caller=self.agent)["code"]
            call(communes, "redeem_adhesion_code", code, caller=parent)
        return child

    def activity(self, **overrides):
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
        return call(self.platform.booking, "create_activity", self.id, caller=self.agent, **data)


def test_health(platform):
    assert call(platform.booking, "health") == {"service": "booking", "database": "ok"}


def test_activities_take_the_communes_time_zone_and_are_managed_by_its_agents(platform):
    town = Town(platform, timezone="Indian/Reunion")
    booking = platform.booking
    created = town.activity(capacity=3)
    assert created["timezone"] == "Indian/Reunion" and created["commune_id"] == town.id
    stranger = agent_of(str(uuid.uuid4()))
    with pytest.raises(NotFound):  # booking refuses before asking communes
        call(booking, "create_activity", town.id, caller=stranger, **{"name": "X"})
    with pytest.raises(NotFound):
        call(booking, "get_activity", town.id, created["id"], caller=stranger)
    with pytest.raises(ValidationFailed) as refused:
        call(booking, "create_activity", town.id, caller=town.agent, name="", capacity=-1)
    assert {"name", "capacity", "kind"} <= set(refused.value.details["fields"])

    updated = call(
        booking,
        "update_activity",
        town.id,
        created["id"],
        {"capacity": 1, "name": "Cantine Jaurès"},
        caller=town.agent,
    )
    assert (updated["capacity"], updated["name"]) == (1, "Cantine Jaurès")
    closure = call(
        booking,
        "add_closure",
        town.id,
        created["id"],
        "2026-04-20",
        "2026-05-01",
        "Vacances",
        caller=town.agent,
    )
    detailed = call(booking, "get_activity", town.id, created["id"], caller=town.agent)
    assert detailed["closures"] == [closure] and closure["from"] == "2026-04-20"

    parent, outsider = new_parent(), new_parent()
    town.family_with_child(parent)
    listed = call(booking, "list_activities", town.id, caller=parent)  # communes says the parent is linked
    assert [a["id"] for a in listed] == [created["id"]]
    assert [a["id"] for a in call(booking, "list_activities", town.id, caller=town.agent)] == [created["id"]]
    with pytest.raises(NotFound):
        call(booking, "list_activities", town.id, caller=outsider)
    with pytest.raises(Unauthenticated):
        call(booking, "list_activities", town.id)


def test_a_parent_books_through_the_cart_and_the_events_leave_through_the_outbox(platform):
    town = Town(platform)
    booking = platform.booking
    canteen = town.activity(capacity=1)
    parent, other_parent, outsider = new_parent(), new_parent(), new_parent()
    child = town.family_with_child(parent)
    rival = town.family_with_child(other_parent)

    days = call(booking, "calendar", child["id"], "2026-03-09", "2026-03-13", caller=parent)["days"]
    assert [(d["date"], d["state"]) for d in days] == [
        ("2026-03-09", "open"),
        ("2026-03-10", "open"),
        ("2026-03-12", "open"),
        ("2026-03-13", "open"),
    ]
    with pytest.raises(NotFound):
        call(booking, "calendar", child["id"], "2026-03-09", "2026-03-13", caller=outsider)
    with pytest.raises(ValidationFailed):
        call(booking, "calendar", child["id"], "2026-03-01", "2026-07-01", caller=parent)
    assert (
        len(call(booking, "calendar", child["id"], "2026-03-09", "2026-03-13", caller=town.agent)["days"])
        == 4
    )

    added = call(
        booking,
        "add_cart_items",
        child["id"],
        canteen["id"],
        period={"from": "2026-03-09", "to": "2026-03-15", "weekdays": ["monday", "thursday"]},
        caller=parent,
    )["items"]
    assert [(i["date"], i["action"], i["state"]) for i in added] == [
        ("2026-03-09", "book", "open"),
        ("2026-03-12", "book", "open"),
    ]
    with pytest.raises(NotFound):
        call(booking, "add_cart_items", child["id"], canteen["id"], dates=["2026-03-09"], caller=outsider)
    with pytest.raises(NotFound):
        call(booking, "remove_cart_item", added[0]["id"], caller=other_parent)
    assert call(booking, "get_cart", caller=parent)["items"] == added

    key = uuid.uuid4().hex
    with entrypoint_waiter(
        platform.recorder, "on_cart_validated", callback=about("idempotency_key", key), timeout=10
    ) as sent:
        response = call(booking, "validate_cart", key, caller=parent)
    assert response["payment"] is None
    assert [(r["date"], r["outcome"]) for r in response["results"]] == [
        ("2026-03-09", "confirmed"),
        ("2026-03-12", "confirmed"),
    ]
    assert sent.get()["results"] == response["results"]
    assert call(booking, "get_cart", caller=parent) == {"items": []}
    assert call(booking, "validate_cart", key, caller=parent) == response  # a replay
    with pytest.raises(CartEmpty):
        call(booking, "validate_cart", uuid.uuid4().hex, caller=parent)

    # the other family's child meets a full day and waits
    call(booking, "add_cart_items", rival["id"], canteen["id"], dates=["2026-03-12"], caller=other_parent)
    [waiting] = call(booking, "validate_cart", "k", caller=other_parent)["results"]
    assert waiting["outcome"] == "waitlisted"
    call(booking, "add_cart_items", rival["id"], canteen["id"], dates=["2026-03-13"], caller=other_parent)
    with pytest.raises(IdempotencyKeyReused):
        call(booking, "validate_cart", "k", caller=other_parent)

    # the parent cancels: the waiting child gets the place, and the agent cannot shrink the day below it
    call(booking, "add_cart_cancellations", child["id"], canteen["id"], ["2026-03-12"], caller=parent)
    with entrypoint_waiter(
        platform.recorder, "on_promoted", callback=about("booking_id", waiting["booking_id"]), timeout=10
    ):
        [cancelled] = call(booking, "validate_cart", uuid.uuid4().hex, caller=parent)["results"]
    assert cancelled["outcome"] == "cancelled"
    with pytest.raises(CapacityBelowBookings):
        call(booking, "update_activity", town.id, canteen["id"], {"capacity": 0}, caller=town.agent)

    history = call(booking, "child_bookings", child["id"], "2026-03-01", "2026-03-31", caller=parent)
    assert [(b["date"], b["status"]) for b in history] == [
        ("2026-03-09", "confirmed"),
        ("2026-03-12", "cancelled"),
    ]
    rival_days = call(booking, "calendar", rival["id"], "2026-03-12", "2026-03-12", caller=other_parent)[
        "days"
    ]
    assert (rival_days[0]["state"], rival_days[0]["booking_id"]) == ("booked", waiting["booking_id"])
    with pytest.raises(NotFound):
        call(booking, "child_bookings", child["id"], "2026-03-01", "2026-03-31", caller=other_parent)


def test_an_unpaid_hold_is_released_by_the_timer_and_the_list_moves_up(platform):
    town = Town(platform)
    booking = platform.booking
    camp = town.activity(
        name="Séjour", kind="holiday_camp", billing_mode="prepaid", capacity=1, hold_minutes=5
    )
    first, second = new_parent(), new_parent()
    child_1, child_2 = town.family_with_child(first), town.family_with_child(second)
    call(booking, "add_cart_items", child_1["id"], camp["id"], dates=["2026-03-12"], caller=first)
    with entrypoint_waiter(
        platform.recorder, "on_held", callback=about("child_id", child_1["id"]), timeout=10
    ) as held_event:
        [held] = call(booking, "validate_cart", "pay-1", caller=first)["results"]
    assert held["outcome"] == "pending_payment"
    assert held_event.get()["hold_expires_at"] == (T0 + dt.timedelta(minutes=5)).isoformat()
    call(booking, "add_cart_items", child_2["id"], camp["id"], dates=["2026-03-12"], caller=second)
    [waiting] = call(booking, "validate_cart", "pay-2", caller=second)["results"]
    assert waiting["outcome"] == "waitlisted"

    eventlet.sleep(0.5)  # a few sweeps: nothing is due yet
    assert (
        call(booking, "child_bookings", child_1["id"], "2026-03-12", "2026-03-12", caller=first)[0]["status"]
        == "pending_payment"
    )
    with entrypoint_waiter(
        platform.recorder, "on_released", callback=about("booking_id", held["booking_id"]), timeout=10
    ):
        with entrypoint_waiter(
            platform.recorder, "on_promoted", callback=about("booking_id", waiting["booking_id"]), timeout=10
        ):
            clock.advance(dt.timedelta(minutes=5))
    assert (
        call(booking, "child_bookings", child_1["id"], "2026-03-12", "2026-03-12", caller=first)[0]["status"]
        == "released"
    )
    assert (
        call(booking, "child_bookings", child_2["id"], "2026-03-12", "2026-03-12", caller=second)[0]["status"]
        == "pending_payment"
    )


def test_concurrent_validations_through_the_service_never_oversell(platform, booking_db_uri):
    town = Town(platform)
    canteen = town.activity(capacity=3, waiting_list=False)
    parents = [new_parent() for _ in range(12)]
    children = [town.family_with_child(parent) for parent in parents]
    for parent, child in zip(parents, children, strict=True):
        call(
            platform.booking,
            "add_cart_items",
            child["id"],
            canteen["id"],
            dates=["2026-03-12"],
            caller=parent,
        )

    def validate(parent):  # over the broker, as the gateway calls (entrypoint_hook serializes results)
        with ServiceRpcProxy("booking", platform.config, context_data=parent, timeout=30) as rpc:
            return rpc.validate_cart(uuid.uuid4().hex)["results"][0]

    pool = eventlet.GreenPool(12)
    results = list(pool.imap(validate, parents))
    assert sorted(r["outcome"] for r in results) == ["confirmed"] * 3 + ["rejected"] * 9
    assert {r.get("reason") for r in results if r["outcome"] == "rejected"} == {"FULL"}
    with Session(get_engine(booking_db_uri)) as session:
        assert session.scalar(select(Occurrence.taken).where(Occurrence.activity_id == canteen["id"])) == 3
        confirmed = select(func.count()).select_from(Booking).where(Booking.activity_id == canteen["id"])
        assert session.scalar(confirmed.where(Booking.status == "confirmed")) == 3

"""booking against the real PostgreSQL and RabbitMQ, next to the real communes and identity services
(a vhost of their own per test): billing's payment_succeeded (dispatched here as service "billing")
confirms the paid prepaid holds once, however often it is delivered; a hold that expired is taken
again while a place is left, and lost when the place went to another child; `payment_applied`
answers billing through the outbox."""

import contextlib
import datetime as dt
import itertools
import uuid
from types import SimpleNamespace

import eventlet
import pytest
from nameko.events import event_handler
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_waiter
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.booking.models import Occurrence, ProcessedEvent
from services.booking.payments import CONSUMER
from services.booking.service import BookingService
from services.common import clock
from services.common.context import Caller
from services.common.db import get_engine
from services.communes.service import CommunesService
from services.identity.service import IdentityService
from tests.integration.helpers import about, call, new_parent

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)  # Monday 2 March 2026, 09:00 in Paris
DAY, NEXT_DAY = "2026-03-12", "2026-03-13"  # a Thursday and a Friday
ADMIN = Caller(account_id=str(uuid.uuid4()), roles=("admin",)).as_context()
_insee = itertools.count(64_000 + uuid.uuid4().int % 30_000)


class PaymentEventsRecorder:
    """Stands for billing (payment_applied) and notify (booking_confirmed): keeps what it receives."""

    name = "booking_payments_recorder"
    received: list[tuple[str, dict]] = []

    @event_handler("booking", "booking_confirmed")
    def on_confirmed(self, payload):
        self.received.append(("booking_confirmed", payload))
        return payload

    @event_handler("booking", "booking_released")
    def on_released(self, payload):
        return payload

    @event_handler("booking", "payment_applied")
    def on_payment_applied(self, payload):
        self.received.append(("payment_applied", payload))
        return payload


@pytest.fixture
def platform(
    container_factory,
    rabbit_vhosts,
    booking_config,
    communes_for_booking_config,
    identity_for_booking_config,
):
    clock.set_now(T0)  # the containers run in this process: they read the same clock
    vhost = rabbit_vhosts.amqp_uri("booking-payments")  # no durable queue outlives its test
    configs = [
        {**config, "AMQP_URI": vhost}
        for config in (identity_for_booking_config, communes_for_booking_config, booking_config)
    ]
    containers = [
        container_factory(cls, config)
        for cls, config in zip((IdentityService, CommunesService, BookingService), configs, strict=True)
    ]
    PaymentEventsRecorder.received = []
    recorder = container_factory(PaymentEventsRecorder, configs[2])
    for container in (*containers, recorder):
        container.start()
    identity, communes, booking = containers
    return SimpleNamespace(
        identity=identity, communes=communes, booking=booking, recorder=recorder, config=configs[2]
    )


class Town:
    """A commune, its agent and a prepaid camp, made through the real services."""

    def __init__(self, platform, capacity=1):
        self.platform = platform
        commune = call(platform.communes, "create_commune", "Nantes", f"{next(_insee):05d}", caller=ADMIN)
        self.id = commune["id"]
        email = f"agent-{uuid.uuid4().hex[:10]}@example.org"
        account = call(platform.identity, "register", email, "correct horse battery", "fr")
        assert call(platform.communes, "add_agent", self.id, email, caller=ADMIN)["status"] == "granted"
        self.agent = Caller(account_id=account["id"], roles=(f"agent:{self.id}",)).as_context()
        self.camp = call(
            platform.booking,
            "create_activity",
            self.id,
            caller=self.agent,
            name="Séjour",
            kind="holiday_camp",
            billing_mode="prepaid",
            capacity=capacity,
            weekdays=["monday", "tuesday", "thursday", "friday"],
            start_date="2026-03-02",
            end_date="2026-07-03",
            booking_deadline={"days_before": 2, "at": "10:00"},
            cancellation_deadline={"days_before": 1, "at": "18:00"},
            cancellation_approval="auto",
            waiting_list=False,
            hold_minutes=5,
        )

    def parent_with_child(self):
        communes, parent = self.platform.communes, new_parent()
        family = call(
            communes,
            "create_family",
            self.id,
            uuid.uuid4().hex[:12],
            "Martin",
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
            "2019-05-04",
            None,
            "CP",
            caller=self.agent,
        )
        code = call(communes, "issue_adhesion_code", self.id, family["id"], caller=self.agent)["code"]
        call(communes, "redeem_adhesion_code", code, caller=parent)
        return parent, family, child

    def hold(self, parent, child, *dates):
        """A cart of these days, validated: the results (pending_payment while places are left)."""
        booking = self.platform.booking
        call(booking, "add_cart_items", child["id"], self.camp["id"], dates=list(dates), caller=parent)
        return call(booking, "validate_cart", uuid.uuid4().hex, caller=parent)["results"]

    def status(self, parent, child, day=DAY):
        rows = call(self.platform.booking, "child_bookings", child["id"], day, day, caller=parent)
        return [row["status"] for row in rows]


def payment_event(town, family, parent, booking_ids):
    return {
        "event_id": str(uuid.uuid4()),
        "payment_id": str(uuid.uuid4()),
        "commune_id": town.id,
        "family_id": family["id"],
        "account_id": parent["account_id"],
        "amount_cents": 1800,
        "total_cents": 1800,
        "booking_ids": booking_ids,
    }


def pay(platform, payload):
    """Dispatch billing's payment_succeeded; wait for booking's payment_applied about it."""
    with entrypoint_waiter(
        platform.recorder,
        "on_payment_applied",
        callback=about("payment_id", payload["payment_id"]),
        timeout=15,
    ) as applied:
        event_dispatcher(platform.config)("billing", "payment_succeeded", payload)
    return applied.get()


def received(event_type, key, value):
    return [p for t, p in PaymentEventsRecorder.received if t == event_type and p.get(key) == value]


def test_a_payment_confirms_its_held_days(platform):
    town = Town(platform, capacity=2)
    parent, family, child = town.parent_with_child()
    results = town.hold(parent, child, DAY, NEXT_DAY)
    assert [r["outcome"] for r in results] == ["pending_payment", "pending_payment"]
    ids = [r["booking_id"] for r in results]
    payload = payment_event(town, family, parent, ids)

    applied = pay(platform, payload)
    assert applied["confirmed"] == ids and applied["lost"] == [] and applied["event_id"]
    assert town.status(parent, child, DAY) == town.status(parent, child, NEXT_DAY) == ["confirmed"]
    eventlet.sleep(0.5)  # booking_confirmed left in the same outbox batch as payment_applied
    for booking_id in ids:
        [confirmed] = received("booking_confirmed", "booking_id", booking_id)
        assert confirmed["paid"] is True and confirmed["payment_id"] == payload["payment_id"]
        assert confirmed["status"] == "confirmed" and confirmed["hold_expires_at"] is None
        assert confirmed["family_id"] == family["id"] and confirmed["account_id"] == parent["account_id"]


def test_the_same_event_delivered_twice_has_one_effect(platform, booking_db_uri):
    town = Town(platform, capacity=1)
    parent, family, child = town.parent_with_child()
    [held] = town.hold(parent, child, DAY)
    payload = payment_event(town, family, parent, [held["booking_id"]])

    pay(platform, payload)
    with entrypoint_waiter(platform.booking, "on_payment_succeeded", timeout=15):
        event_dispatcher(platform.config)("billing", "payment_succeeded", payload)  # a redelivery
    eventlet.sleep(1.0)  # several outbox rounds: anything recorded would have left by now

    assert len(received("payment_applied", "payment_id", payload["payment_id"])) == 1
    assert len(received("booking_confirmed", "booking_id", held["booking_id"])) == 1
    assert town.status(parent, child) == ["confirmed"]
    with Session(get_engine(booking_db_uri)) as session:
        inbox = select(func.count()).select_from(ProcessedEvent)
        assert (
            session.scalar(
                inbox.where(
                    ProcessedEvent.consumer == CONSUMER, ProcessedEvent.event_id == payload["event_id"]
                )
            )
            == 1
        )
        taken = select(Occurrence.taken).where(Occurrence.activity_id == town.camp["id"])
        assert session.scalar(taken) == 1


def expire_holds(platform, *booking_ids):
    """Move the clock past the holds' expiry and wait for the sweep to release each of them."""
    with contextlib.ExitStack() as waiting:
        for booking_id in booking_ids:
            waiting.enter_context(
                entrypoint_waiter(
                    platform.recorder, "on_released", callback=about("booking_id", booking_id), timeout=15
                )
            )
        clock.advance(dt.timedelta(minutes=5))


def test_a_hold_that_expired_is_confirmed_while_a_place_is_left(platform, booking_db_uri):
    town = Town(platform, capacity=1)
    parent, family, child = town.parent_with_child()
    [held] = town.hold(parent, child, DAY)
    expire_holds(platform, held["booking_id"])
    assert town.status(parent, child) == ["released"]

    applied = pay(platform, payment_event(town, family, parent, [held["booking_id"]]))
    assert (applied["confirmed"], applied["lost"]) == ([held["booking_id"]], [])
    assert town.status(parent, child) == ["confirmed"]
    with Session(get_engine(booking_db_uri)) as session:
        assert session.scalar(select(Occurrence.taken).where(Occurrence.activity_id == town.camp["id"])) == 1


def test_a_hold_paid_after_its_place_went_to_another_child_is_lost(platform, booking_db_uri):
    town = Town(platform, capacity=1)
    late_parent, late_family, late_child = town.parent_with_child()
    [late] = town.hold(late_parent, late_child, DAY)
    expire_holds(platform, late["booking_id"])
    other_parent, other_family, other_child = town.parent_with_child()
    [other] = town.hold(other_parent, other_child, DAY)
    assert other["outcome"] == "pending_payment"  # the freed place

    applied = pay(platform, payment_event(town, late_family, late_parent, [late["booking_id"]]))
    assert (applied["confirmed"], applied["lost"]) == ([], [late["booking_id"]])
    assert town.status(late_parent, late_child) == ["released"]
    assert received("booking_confirmed", "booking_id", late["booking_id"]) == []

    # the other family's payment still confirms its own hold; the day is not oversold
    applied = pay(platform, payment_event(town, other_family, other_parent, [other["booking_id"]]))
    assert applied["confirmed"] == [other["booking_id"]]
    assert town.status(other_parent, other_child) == ["confirmed"]
    with Session(get_engine(booking_db_uri)) as session:
        assert session.scalar(select(Occurrence.taken).where(Occurrence.activity_id == town.camp["id"])) == 1

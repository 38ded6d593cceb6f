"""billing against the real PostgreSQL and RabbitMQ, next to the real identity, communes and booking
services (same vhost): tariffs and who may set them, quotes by quotient familial, prepaid payments
with the demo provider (stored before the provider call, replays, one effect for concurrent copies of
a provider event), the family account and its credit, refunds never above what was paid, and
booking's events (dispatched under booking's name) turned into credits and refunds."""

import contextlib
import datetime as dt
import itertools
import uuid
from types import SimpleNamespace

import eventlet
import pytest
from kombu import Connection
from nameko.events import event_handler
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ServiceRpcProxy
from nameko.testing.services import entrypoint_waiter
from sqlalchemy import func, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from services.billing.exceptions import DemoProviderDisabled, InvalidSignatureError, RefundExceedsPaid
from services.billing.models import LedgerEntry, Payment, PaymentDay, ProcessedProviderEvent, Refund
from services.billing.service import BillingService
from services.booking.service import BookingService
from services.common import clock
from services.common.context import Caller
from services.common.db import get_engine
from services.common.errors import Forbidden, NotFound, Unauthenticated, ValidationFailed
from services.communes.service import CommunesService
from services.identity.service import IdentityService
from tests.integration.helpers import about, agent_of, call, new_parent
from tests.stripe_harness import event_body, sign, stripe_harness_fixture  # noqa: F401

pytestmark = pytest.mark.integration

T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
ADMIN = Caller(account_id=str(uuid.uuid4()), roles=("admin",)).as_context()
_insee = itertools.count(31_000 + uuid.uuid4().int % 30_000)
BANDS = {
    "bands": [
        {"qf_max": 500, "unit_price_cents": 150},
        {"qf_max": 1000, "unit_price_cents": 300},
        {"qf_max": None, "unit_price_cents": 450},
    ]
}


class BillingEventsRecorder:
    """Stands for booking and notify, which react to billing's events."""

    name = "billing_test_recorder"

    @event_handler("billing", "payment_succeeded")
    def on_payment_succeeded(self, payload):
        return payload

    @event_handler("billing", "payment_failed")
    def on_payment_failed(self, payload):
        return payload

    @event_handler("billing", "refund_issued")
    def on_refund_issued(self, payload):
        return payload

    @event_handler("billing", "credit_granted")
    def on_credit_granted(self, payload):
        return payload


@pytest.fixture
def platform(
    container_factory,
    billing_config,
    booking_for_billing_config,
    communes_for_billing_config,
    identity_for_billing_config,
):
    return start_platform(
        container_factory,
        billing_config,
        booking_for_billing_config,
        communes_for_billing_config,
        identity_for_billing_config,
    )


def start_platform(
    container_factory,
    billing_config,
    booking_for_billing_config,
    communes_for_billing_config,
    identity_for_billing_config,
):
    """identity, communes and billing run throughout; booking only while activities and tariffs are
    set up (`with platform.booking_running():`), so that the booking ids these tests make up are not
    answered as lost by booking's payment_succeeded handler: booking's events are dispatched by the
    tests themselves."""
    clock.set_now(T0)
    containers = {}
    for name, cls, config in (
        ("identity", IdentityService, identity_for_billing_config),
        ("communes", CommunesService, communes_for_billing_config),
        ("billing", BillingService, billing_config),
        ("recorder", BillingEventsRecorder, billing_config),
    ):
        containers[name] = container_factory(cls, config)
        containers[name].start()

    @contextlib.contextmanager
    def booking_running():
        _purge(booking_for_billing_config["AMQP_URI"], BOOKING_BACKLOG)
        booking = container_factory(BookingService, booking_for_billing_config)
        booking.start()
        platform.booking = booking
        try:
            yield booking
        finally:
            booking.stop()
            platform.booking = None

    platform = SimpleNamespace(
        **containers, config=billing_config, booking=None, booking_running=booking_running
    )
    return platform


# what billing published for booking while it was stopped (earlier tests' payments)
BOOKING_BACKLOG = "evt-billing-payment_succeeded--booking.on_payment_succeeded"


def _purge(amqp_uri, queue):
    with Connection(amqp_uri) as conn:
        try:
            conn.channel().queue_purge(queue)
        except Exception:  # noqa: S110 - no such queue yet: nothing to purge
            pass


def db(platform):
    return get_engine(platform.config["DB_URIS"]["billing"])


class Town:
    """A commune, its agent (registered in identity, made agent by communes), an activity, and
    families whose parents are linked through adhesion codes."""

    def __init__(self, platform, name="Rennes", timezone="Europe/Paris"):
        self.platform = platform
        commune = call(
            platform.communes, "create_commune", name, f"{next(_insee):05d}", timezone, caller=ADMIN
        )
        self.id = commune["id"]
        email = f"agent-{uuid.uuid4().hex[:10]}@example.org"
        account = call(platform.identity, "register", email, "correct horse battery", "fr")
        assert call(platform.communes, "add_agent", self.id, email, caller=ADMIN)["status"] == "granted"
        self.agent = Caller(account_id=account["id"], roles=(f"agent:{self.id}",)).as_context()

    def activity(self, **overrides):
        data = {
            "name": "Centre de loisirs",
            "kind": "wednesday_leisure",
            "billing_mode": "prepaid",
            "capacity": 10,
            "weekdays": ["monday", "tuesday", "wednesday", "thursday", "friday"],
            "start_date": "2026-03-02",
            "end_date": "2026-07-03",
            "booking_deadline": {"days_before": 2, "at": "10:00"},
            "cancellation_deadline": {"days_before": 1, "at": "18:00"},
            **overrides,
        }
        return call(self.platform.booking, "create_activity", self.id, caller=self.agent, **data)

    def tariff(self, activity_id, tariff):
        return call(self.platform.billing, "set_tariff", self.id, activity_id, tariff, caller=self.agent)

    def family(self, quotient=None):
        """(parent context, family id, child) for a new family of this quotient."""
        communes = self.platform.communes
        parent = new_parent()
        family = call(
            communes,
            "create_family",
            self.id,
            uuid.uuid4().hex[:12],
            "Famille",
            "f@example.org",
            quotient,
            caller=self.agent,
        )
        child = call(
            communes,
            "add_child",
            self.id,
            family["id"],
            "Léa",
            "Martin",
            "2018-05-04",
            None,
            "CP",
            caller=self.agent,
        )
        code = call(communes, "issue_adhesion_code", self.id, family["id"], caller=self.agent)["code"]
        call(communes, "redeem_adhesion_code", code, caller=parent)
        return parent, family["id"], child


def holds(child, activity, dates):
    """What booking's validate_cart gives for prepaid days (the booking ids are billing's to trust)."""
    return [
        {
            "booking_id": str(uuid.uuid4()),
            "child_id": child["id"],
            "activity_id": activity["id"],
            "date": date,
            "hold_expires_at": (T0 + dt.timedelta(minutes=20 + i)).isoformat(),
        }
        for i, date in enumerate(dates)
    ]


def pay(platform, parent, payment_id):
    """The parent clicks "paid" on the demo page; returns the payment_succeeded event."""
    with entrypoint_waiter(
        platform.recorder, "on_payment_succeeded", callback=about("payment_id", payment_id), timeout=10
    ) as waited:
        paid = call(platform.billing, "demo_outcome", payment_id, "succeeded")
    assert paid["status"] == "succeeded"
    return waited.get()


def rpc(platform, method, *args, caller=None):
    """A call over the broker, as the gateway makes it: concurrent calls each get their own answer
    (entrypoint_hook gives every waiter of a method the first result)."""
    with ServiceRpcProxy(
        "billing", {"AMQP_URI": platform.config["AMQP_URI"]}, context_data=caller, timeout=20
    ) as proxy:
        return getattr(proxy, method)(*args)


def dispatch_booking_event(platform, event_type, payload, handler):
    """booking's event as booking would publish it; waits until billing has handled it."""
    dispatch = event_dispatcher({"AMQP_URI": platform.config["AMQP_URI"]})
    with entrypoint_waiter(platform.billing, handler, timeout=10):
        dispatch("booking", event_type, {"event_id": str(uuid.uuid4()), **payload})


def test_health(platform):
    assert call(platform.billing, "health") == {"service": "billing", "database": "ok"}


def test_tariffs_are_set_by_the_communes_staff_for_its_activities(platform):
    town, other = Town(platform), Town(platform)
    billing = platform.billing
    with platform.booking_running():
        _tariff_checks(platform, town, other, billing)


def _tariff_checks(platform, town, other, billing):
    activity = town.activity()
    flat = town.tariff(activity["id"], {"unit_price_cents": 415, "cancellation_refund": "credit"})
    assert (flat["unit_price_cents"], flat["bands"], flat["cancellation_refund"]) == (415, None, "credit")
    banded = town.tariff(activity["id"], BANDS)
    assert (banded["unit_price_cents"], banded["bands"], banded["cancellation_refund"]) == (
        None,
        BANDS["bands"],
        "refund",
    )
    assert call(billing, "get_tariff", town.id, activity["id"], caller=town.agent) == banded
    admin_view = call(billing, "get_tariff", town.id, activity["id"], caller=ADMIN)
    assert admin_view["activity_id"] == activity["id"]

    for outsider in (other.agent, agent_of(str(uuid.uuid4())), new_parent()):
        with pytest.raises(NotFound):
            call(billing, "get_tariff", town.id, activity["id"], caller=outsider)
        with pytest.raises(NotFound):
            call(billing, "set_tariff", town.id, activity["id"], {"unit_price_cents": 1}, caller=outsider)
    with pytest.raises(NotFound):  # another commune's activity, under the agent's own commune
        call(billing, "set_tariff", other.id, activity["id"], {"unit_price_cents": 1}, caller=other.agent)
    with pytest.raises(NotFound):  # booking does not know it
        town.tariff(str(uuid.uuid4()), {"unit_price_cents": 1})
    with pytest.raises(NotFound):
        call(billing, "get_tariff", town.id, town.activity(name="Sans tarif")["id"], caller=town.agent)
    with pytest.raises(ValidationFailed) as refused:
        town.tariff(activity["id"], {"unit_price_cents": 100, **BANDS})
    assert "tariff" in refused.value.details["fields"]
    with pytest.raises(Unauthenticated):
        call(billing, "get_tariff", town.id, activity["id"])
    assert call(billing, "get_tariff", town.id, activity["id"], caller=town.agent)["bands"] == BANDS["bands"]


def test_quote_prices_each_family_by_its_quotient(platform):
    town = Town(platform)
    with platform.booking_running():
        leisure, free = town.activity(), town.activity(name="Garderie")
        town.tariff(leisure["id"], BANDS)
    billing = platform.billing
    expected = {500: 150, 501: 300, None: 450}
    for quotient, price in expected.items():
        parent, _family, child = town.family(quotient)
        items = [
            {
                "id": "i1",
                "child_id": child["id"],
                "activity_id": leisure["id"],
                "date": "2026-03-09",
                "action": "book",
            },
            {
                "id": "i2",
                "child_id": child["id"],
                "activity_id": leisure["id"],
                "date": "2026-03-10",
                "action": "book",
            },
            {
                "id": "i3",
                "child_id": child["id"],
                "activity_id": leisure["id"],
                "date": "2026-03-11",
                "action": "cancel",
            },
            {
                "id": "i4",
                "child_id": child["id"],
                "activity_id": free["id"],
                "date": "2026-03-11",
                "action": "book",
            },
        ]
        quote = call(billing, "quote", items, caller=parent)
        assert [(i["id"], i["unit_price_cents"], i["amount_cents"]) for i in quote["items"]] == [
            ("i1", price, price),
            ("i2", price, price),
            ("i3", 0, 0),
            ("i4", 0, 0),
        ]
        assert quote["total_cents"] == 2 * price
        assert quote["communes"] == [{"commune_id": town.id, "total_cents": 2 * price}]
    # a child of another family is not priced for this parent
    stranger, _, _ = town.family(100)
    _, _, child = town.family(100)
    item = {
        "id": "x",
        "child_id": child["id"],
        "activity_id": leisure["id"],
        "date": "2026-03-09",
        "action": "book",
    }
    assert call(billing, "quote", [item], caller=stranger)["total_cents"] == 0


def test_a_payment_is_stored_once_per_key_and_the_demo_success_charges_the_family(platform):
    town = Town(platform)
    with platform.booking_running():
        activity = town.activity()
        town.tariff(activity["id"], {"unit_price_cents": 415})
    parent, family_id, child = town.family(800)
    billing = platform.billing
    key = f"cart-{uuid.uuid4()}"
    days = holds(child, activity, ["2026-03-09", "2026-03-10", "2026-03-12"])

    first = call(billing, "create_payment", key, days, caller=parent)["payments"]
    assert len(first) == 1
    payment = first[0]
    assert (payment["status"], payment["provider"], payment["amount_cents"], payment["total_cents"]) == (
        "pending",
        "demo",
        1245,
        1245,
    )
    assert payment["checkout_url"] == f"http://portal.test/payments/demo/{payment['id']}"
    assert payment["expires_at"] == (T0 + dt.timedelta(minutes=20)).isoformat()
    assert payment["provider_error"] is None and payment["credit_used_cents"] == 0
    assert sorted(d["booking_id"] for d in payment["days"]) == sorted(h["booking_id"] for h in days)
    assert {d["unit_price_cents"] for d in payment["days"]} == {415}

    replay = call(billing, "create_payment", key, days, caller=parent)["payments"]
    assert [p["id"] for p in replay] == [payment["id"]]
    with Session(db(platform)) as session:
        count = session.scalar(
            select(func.count()).select_from(Payment).where(Payment.idempotency_key == key)
        )
        assert count == 1
        assert (
            session.scalar(
                select(func.count()).select_from(PaymentDay).where(PaymentDay.payment_id == payment["id"])
            )
            == 3
        )
    assert call(billing, "create_payment", f"cart-{uuid.uuid4()}", [], caller=parent) == {"payments": []}

    # only its parent (or the commune's staff) sees it
    assert call(billing, "get_payment", payment["id"], caller=parent)["id"] == payment["id"]
    assert call(billing, "get_payment", payment["id"], caller=town.agent)["id"] == payment["id"]
    for outsider in (new_parent(), agent_of(str(uuid.uuid4()))):
        with pytest.raises(NotFound):
            call(billing, "get_payment", payment["id"], caller=outsider)

    event = pay(platform, parent, payment["id"])
    assert sorted(event["booking_ids"]) == sorted(h["booking_id"] for h in days)
    assert (event["amount_cents"], event["total_cents"], event["family_id"], event["commune_id"]) == (
        1245,
        1245,
        family_id,
        town.id,
    )
    assert event["account_id"] == parent["account_id"] and event["event_id"]
    account = call(billing, "family_account", town.id, caller=parent)
    assert account["family_id"] == family_id and account["balance_cents"] == 0
    assert [(e["kind"], e["amount_cents"]) for e in account["entries"]] == [
        ("payment", 1245),
        ("charge", -1245),
    ]
    with pytest.raises(NotFound):
        call(billing, "family_account", town.id, caller=new_parent())

    # the demo page again, or a failure after the success: nothing changes
    assert call(billing, "demo_outcome", payment["id"], "succeeded")["status"] == "succeeded"
    assert call(billing, "demo_outcome", payment["id"], "failed")["status"] == "succeeded"
    shown = call(billing, "demo_payment", payment["id"])  # the demo page, no caller
    assert (shown["id"], shown["amount_cents"], shown["status"]) == (payment["id"], 1245, "succeeded")
    with pytest.raises(NotFound):
        call(billing, "demo_payment", str(uuid.uuid4()))
    assert len(call(billing, "family_account", town.id, caller=parent)["entries"]) == 2
    with pytest.raises(ValidationFailed):
        call(billing, "demo_outcome", payment["id"], "maybe")
    with pytest.raises(NotFound):
        call(billing, "demo_outcome", str(uuid.uuid4()), "succeeded")


def test_the_same_provider_event_three_times_at_once_has_one_effect(platform):
    town = Town(platform)
    with platform.booking_running():
        activity = town.activity()
        town.tariff(activity["id"], {"unit_price_cents": 500})
    parent, family_id, child = town.family(800)
    billing = platform.billing
    payment = call(
        billing, "create_payment", f"k-{uuid.uuid4()}", holds(child, activity, ["2026-03-09"]), caller=parent
    )["payments"][0]

    with entrypoint_waiter(
        platform.recorder, "on_payment_succeeded", callback=about("payment_id", payment["id"]), timeout=10
    ):
        threads = [
            eventlet.spawn(rpc, platform, "demo_outcome", payment["id"], "succeeded") for _ in range(3)
        ]
        results = [thread.wait() for thread in threads]
    assert {r["status"] for r in results} == {"succeeded"}
    eventlet.sleep(0.5)  # a second payment_succeeded, if any, would have left the outbox by now
    with Session(db(platform)) as session:
        entries = session.scalars(
            select(LedgerEntry).where(LedgerEntry.payment_id == payment["id"]).order_by(LedgerEntry.id)
        ).all()
        assert [(e.kind, e.amount_cents) for e in entries] == [("charge", -500), ("payment", 500)]
        recorded = session.scalars(
            select(ProcessedProviderEvent.event_id).where(ProcessedProviderEvent.payment_id == payment["id"])
        ).all()
        assert recorded == [f"demo-{payment['id']}-succeeded"]
        # the ledger is append-only
        with pytest.raises(DBAPIError):
            session.execute(
                text("UPDATE ledger_entries SET amount_cents = 0 WHERE id = :id"), {"id": entries[0].id}
            )
        session.rollback()


def test_a_failed_payment_is_reported_and_charges_nothing(platform):
    town = Town(platform)
    with platform.booking_running():
        activity = town.activity()
        town.tariff(activity["id"], {"unit_price_cents": 500})
    parent, _family_id, child = town.family(800)
    days = holds(child, activity, ["2026-03-09"])
    payment = call(platform.billing, "create_payment", f"k-{uuid.uuid4()}", days, caller=parent)["payments"][
        0
    ]
    with entrypoint_waiter(
        platform.recorder, "on_payment_failed", callback=about("payment_id", payment["id"]), timeout=10
    ) as waited:
        assert call(platform.billing, "demo_outcome", payment["id"], "failed")["status"] == "failed"
    failed = waited.get()
    assert failed["booking_ids"] == [days[0]["booking_id"]]
    assert failed["expires_at"] == days[0]["hold_expires_at"]
    assert call(platform.billing, "family_account", town.id, caller=parent)["entries"] == []


def test_demo_is_refused_in_production(container_factory, billing_config):
    production = container_factory(
        BillingService,
        {**billing_config, "ENVIRONMENT": "production", "PAYMENT_SECRETS_KEY": "a-real-secret-key"},
    )
    production.start()
    commune_id = str(uuid.uuid4())
    with pytest.raises(DemoProviderDisabled):
        call(production, "demo_outcome", str(uuid.uuid4()), "succeeded")
    with pytest.raises(DemoProviderDisabled):
        call(production, "demo_payment", str(uuid.uuid4()))
    with pytest.raises(DemoProviderDisabled):
        call(
            production, "set_payment_settings", commune_id, {"provider": "demo"}, caller=agent_of(commune_id)
        )


def test_payment_settings_keep_their_secrets(platform):
    town = Town(platform)
    billing = platform.billing
    default = call(billing, "get_payment_settings", town.id, caller=town.agent)
    assert (default["provider"], default["secret_key_set"], default["updated_at"]) == ("demo", False, None)
    stored = call(
        billing,
        "set_payment_settings",
        town.id,
        {"provider": "stripe", "secret_key": "sk_test_abcdefgh123", "webhook_secret": "whsec_abcdefgh123"},
        caller=town.agent,
    )
    assert (stored["provider"], stored["secret_key_set"], stored["webhook_secret_set"]) == (
        "stripe",
        True,
        True,
    )
    assert "sk_test_abcdefgh123" not in repr(stored)
    assert call(billing, "get_payment_settings", town.id, caller=town.agent) == stored
    with Session(db(platform)) as session:
        raw = session.execute(
            text("SELECT secret_key_enc, webhook_secret_enc FROM payment_settings WHERE commune_id = :c"),
            {"c": town.id},
        ).one()
        assert "abcdefgh123" not in raw[0] and "abcdefgh123" not in raw[1]
    with pytest.raises(ValidationFailed) as refused:
        call(
            billing,
            "set_payment_settings",
            town.id,
            {"provider": "stripe", "secret_key": "x"},
            caller=town.agent,
        )
    assert {"secret_key", "webhook_secret"} <= set(refused.value.details["fields"])
    with pytest.raises(NotFound):
        call(billing, "get_payment_settings", town.id, caller=agent_of(str(uuid.uuid4())))
    back = call(billing, "set_payment_settings", town.id, {"provider": "demo"}, caller=town.agent)
    assert (back["provider"], back["secret_key_set"]) == ("demo", False)


def test_two_concurrent_refunds_of_one_payment_refund_once(platform):
    town = Town(platform)
    with platform.booking_running():
        activity = town.activity()
        town.tariff(activity["id"], {"unit_price_cents": 1000})
    parent, _family_id, child = town.family(800)
    billing = platform.billing
    payment = call(
        billing, "create_payment", f"k-{uuid.uuid4()}", holds(child, activity, ["2026-03-09"]), caller=parent
    )["payments"][0]
    with pytest.raises(Exception) as unpaid:  # nothing paid yet
        call(billing, "refund_payment", town.id, payment["id"], 100, "r0", caller=town.agent)
    assert unpaid.value.code == "PAYMENT_NOT_PAID"
    pay(platform, parent, payment["id"])

    def refund_of(key, cents):
        try:
            return rpc(platform, "refund_payment", town.id, payment["id"], cents, key, caller=town.agent)
        except RefundExceedsPaid as exc:
            return exc

    threads = [eventlet.spawn(refund_of, key, 700) for key in ("r1", "r2")]
    outcomes = [thread.wait() for thread in threads]
    done = [o for o in outcomes if isinstance(o, dict)]
    refused = [o for o in outcomes if isinstance(o, RefundExceedsPaid)]
    assert len(done) == 1 and len(refused) == 1, outcomes
    assert (done[0]["amount_cents"], done[0]["status"], done[0]["reason"]) == (700, "succeeded", "agent")
    assert done[0]["replayed"] is False
    assert int(refused[0].details["refundable_cents"]) == 300  # what is left to refund
    # a replay returns the first refund; more than what is left is refused; the rest can go back
    winner_key = "r1" if outcomes[0] is done[0] else "r2"
    again = call(billing, "refund_payment", town.id, payment["id"], 700, winner_key, caller=town.agent)
    assert again["id"] == done[0]["id"] and again["replayed"] is True
    with pytest.raises(RefundExceedsPaid):
        call(billing, "refund_payment", town.id, payment["id"], 301, "r3", caller=town.agent)
    # six agents at once refund 100 each of the 300 left: three go through
    threads = [eventlet.spawn(lambda k=k: refund_of(k, 100)) for k in ("s1", "s2", "s3", "s4", "s5", "s6")]
    outcomes = [thread.wait() for thread in threads]
    assert sum(isinstance(o, dict) for o in outcomes) == 3, outcomes
    with pytest.raises(RefundExceedsPaid):
        call(billing, "refund_payment", town.id, payment["id"], 1, "r5", caller=town.agent)
    with pytest.raises(NotFound):
        call(billing, "refund_payment", town.id, payment["id"], 1, "r6", caller=agent_of(str(uuid.uuid4())))
    assert call(billing, "get_payment", payment["id"], caller=parent)["refunded_cents"] == 1000
    with Session(db(platform)) as session:
        refunds = session.scalars(select(Refund).where(Refund.payment_id == payment["id"])).all()
        assert sorted(r.amount_cents for r in refunds) == [100, 100, 100, 700]
        assert {r.status for r in refunds} == {"succeeded"}


def test_a_cancelled_paid_day_becomes_credit_used_first_by_the_next_payment(platform):
    town = Town(platform)
    with platform.booking_running():
        activity = town.activity()
        town.tariff(activity["id"], {"unit_price_cents": 300, "cancellation_refund": "credit"})
    parent, family_id, child = town.family(800)
    billing = platform.billing
    days = holds(child, activity, ["2026-03-09", "2026-03-10"])
    payment = call(billing, "create_payment", f"k-{uuid.uuid4()}", days, caller=parent)["payments"][0]
    pay(platform, parent, payment["id"])

    cancelled = {
        "booking_id": days[0]["booking_id"],
        "child_id": child["id"],
        "activity_id": activity["id"],
        "date": "2026-03-09",
        "commune_id": town.id,
        "family_id": family_id,
        "account_id": parent["account_id"],
        "status": "cancelled",
    }
    with entrypoint_waiter(
        platform.recorder,
        "on_credit_granted",
        callback=about("booking_id", days[0]["booking_id"]),
        timeout=10,
    ) as waited:
        dispatch_booking_event(platform, "booking_cancelled", cancelled, "on_booking_cancelled")
    credit = waited.get()
    assert (credit["amount_cents"], credit["family_id"], credit["account_id"]) == (
        300,
        family_id,
        parent["account_id"],
    )
    # the same cancellation again (another event id, e.g. an approved request too): given back once
    dispatch_booking_event(
        platform, "cancellation_decided", {**cancelled, "decision": "approved"}, "on_cancellation_decided"
    )
    account = call(billing, "family_account", town.id, caller=parent)
    assert account["balance_cents"] == 300
    assert [e["kind"] for e in account["entries"]] == ["cancellation", "payment", "charge"]
    assert account["entries"][0]["booking_id"] == days[0]["booking_id"]

    # the next payment uses the credit first
    more = holds(child, activity, ["2026-03-12", "2026-03-13"])
    second = call(billing, "create_payment", f"k-{uuid.uuid4()}", more, caller=parent)["payments"][0]
    assert (second["total_cents"], second["credit_used_cents"], second["amount_cents"]) == (600, 300, 300)
    pay(platform, parent, second["id"])
    account = call(billing, "family_account", town.id, caller=parent)
    assert account["balance_cents"] == 0
    assert [(e["kind"], e["amount_cents"]) for e in account["entries"][:2]] == [
        ("payment", 300),
        ("charge", -600),
    ]

    # credit covering a whole payment: succeeded at once, no provider
    dispatch_booking_event(
        platform,
        "booking_cancelled",
        {**cancelled, "booking_id": more[0]["booking_id"]},
        "on_booking_cancelled",
    )
    with entrypoint_waiter(
        platform.recorder, "on_payment_succeeded", callback=about("family_id", family_id), timeout=10
    ) as waited:
        free = call(
            billing,
            "create_payment",
            f"k-{uuid.uuid4()}",
            holds(child, activity, ["2026-03-16"]),
            caller=parent,
        )["payments"][0]
    assert (free["status"], free["provider"], free["amount_cents"], free["credit_used_cents"]) == (
        "succeeded",
        "credit",
        0,
        300,
    )
    assert waited.get()["payment_id"] == free["id"]
    assert call(billing, "family_account", town.id, caller=parent)["balance_cents"] == 0


def test_a_cancelled_paid_day_with_the_refund_rule_is_refunded_to_the_card(platform):
    town = Town(platform)
    with platform.booking_running():
        activity = town.activity()
        town.tariff(activity["id"], {"unit_price_cents": 450})
    parent, family_id, child = town.family(None)
    billing = platform.billing
    days = holds(child, activity, ["2026-03-09", "2026-03-10"])
    payment = call(billing, "create_payment", f"k-{uuid.uuid4()}", days, caller=parent)["payments"][0]
    pay(platform, parent, payment["id"])
    decided = {
        "request_id": str(uuid.uuid4()),
        "booking_id": days[1]["booking_id"],
        "child_id": child["id"],
        "activity_id": activity["id"],
        "date": "2026-03-10",
        "commune_id": town.id,
        "family_id": family_id,
        "account_id": parent["account_id"],
        "billing_mode": "prepaid",
    }
    # a rejected request gives nothing back
    dispatch_booking_event(
        platform, "cancellation_decided", {**decided, "decision": "rejected"}, "on_cancellation_decided"
    )
    with entrypoint_waiter(
        platform.recorder, "on_refund_issued", callback=about("payment_id", payment["id"]), timeout=10
    ) as waited:
        dispatch_booking_event(
            platform, "cancellation_decided", {**decided, "decision": "approved"}, "on_cancellation_decided"
        )
    issued = waited.get()
    assert (issued["amount_cents"], issued["reason"], issued["booking_ids"]) == (
        450,
        "cancellation",
        [days[1]["booking_id"]],
    )
    with Session(db(platform)) as session:
        refund = session.scalars(select(Refund).where(Refund.payment_id == payment["id"])).one()
        assert (refund.idempotency_key, refund.status) == (f"cancel-{days[1]['booking_id']}", "succeeded")
    account = call(billing, "family_account", town.id, caller=parent)
    assert [(e["kind"], e["amount_cents"]) for e in account["entries"]] == [
        ("refund", -450),
        ("cancellation", 450),
        ("payment", 900),
        ("charge", -900),
    ]
    assert account["balance_cents"] == 0
    assert call(billing, "get_payment", payment["id"], caller=parent)["refunded_cents"] == 450


def test_days_whose_place_was_lost_are_refunded_automatically(platform):
    town = Town(platform)
    with platform.booking_running():
        activity = town.activity()
        town.tariff(activity["id"], {"unit_price_cents": 200})
    parent, _family_id, child = town.family(800)
    billing = platform.billing
    days = holds(child, activity, ["2026-03-09", "2026-03-10", "2026-03-11"])
    payment = call(billing, "create_payment", f"k-{uuid.uuid4()}", days, caller=parent)["payments"][0]
    pay(platform, parent, payment["id"])
    applied = {
        "payment_id": payment["id"],
        "confirmed": [days[0]["booking_id"]],
        "lost": [days[1]["booking_id"], days[2]["booking_id"]],
    }
    with entrypoint_waiter(
        platform.recorder, "on_refund_issued", callback=about("payment_id", payment["id"]), timeout=10
    ) as waited:
        dispatch_booking_event(platform, "payment_applied", applied, "on_payment_applied")
    issued = waited.get()
    assert (issued["amount_cents"], issued["reason"]) == (400, "place_lost")
    assert sorted(issued["booking_ids"]) == sorted(applied["lost"])
    dispatch_booking_event(platform, "payment_applied", applied, "on_payment_applied")  # another copy
    with Session(db(platform)) as session:
        refunds = session.scalars(select(Refund).where(Refund.payment_id == payment["id"])).all()
        assert [(r.amount_cents, r.idempotency_key) for r in refunds] == [(400, f"lost-{payment['id']}")]
    assert call(billing, "family_account", town.id, caller=parent)["balance_cents"] == 0


def test_a_payment_abandoned_after_its_holds_expired_is_cancelled_and_frees_its_credit(platform):
    town = Town(platform)
    with platform.booking_running():
        activity = town.activity()
        town.tariff(activity["id"], {"unit_price_cents": 600, "cancellation_refund": "credit"})
    parent, family_id, child = town.family(800)
    billing = platform.billing
    days = holds(child, activity, ["2026-03-09"])
    first = call(billing, "create_payment", f"k-{uuid.uuid4()}", days, caller=parent)["payments"][0]
    pay(platform, parent, first["id"])
    cancelled = {"booking_id": days[0]["booking_id"], "commune_id": town.id, "family_id": family_id}
    dispatch_booking_event(platform, "booking_cancelled", cancelled, "on_booking_cancelled")
    assert call(billing, "family_account", town.id, caller=parent)["balance_cents"] == 600

    abandoned = call(
        billing,
        "create_payment",
        f"k-{uuid.uuid4()}",
        holds(child, activity, ["2026-03-10", "2026-03-11"]),
        caller=parent,
    )["payments"][0]
    assert (abandoned["credit_used_cents"], abandoned["amount_cents"]) == (600, 600)
    # while it is pending, its credit is set aside: another payment cannot spend it too
    other = call(
        billing, "create_payment", f"k-{uuid.uuid4()}", holds(child, activity, ["2026-03-12"]), caller=parent
    )["payments"][0]
    assert (other["credit_used_cents"], other["amount_cents"]) == (0, 600)

    clock.advance(dt.timedelta(minutes=40))  # the holds expired (and the grace period too)
    deadline = eventlet.Timeout(10)
    try:
        while call(billing, "get_payment", abandoned["id"], caller=parent)["status"] != "cancelled":
            eventlet.sleep(0.2)
    finally:
        deadline.cancel()
    later = call(
        billing, "create_payment", f"k-{uuid.uuid4()}", holds(child, activity, ["2026-03-13"]), caller=parent
    )["payments"][0]
    assert (later["credit_used_cents"], later["amount_cents"]) == (600, 0)  # the credit is free again
    # a payment that comes in after all still counts (booking then confirms or reports the day lost)
    assert call(billing, "demo_outcome", abandoned["id"], "succeeded")["status"] == "succeeded"


def test_concurrent_payments_neither_duplicate_a_key_nor_spend_credit_twice(platform):
    town = Town(platform)
    with platform.booking_running():
        activity = town.activity()
        town.tariff(activity["id"], {"unit_price_cents": 500, "cancellation_refund": "credit"})
    parent, family_id, child = town.family(800)
    days = holds(child, activity, ["2026-03-09"])
    first = call(platform.billing, "create_payment", f"k-{uuid.uuid4()}", days, caller=parent)["payments"][0]
    pay(platform, parent, first["id"])
    cancelled = {"booking_id": days[0]["booking_id"], "commune_id": town.id, "family_id": family_id}
    dispatch_booking_event(platform, "booking_cancelled", cancelled, "on_booking_cancelled")  # 500 of credit

    # six carts at once, each could use the 500 of credit: one gets it, the others pay in full
    dates = ["2026-03-12", "2026-03-13", "2026-03-16", "2026-03-17", "2026-03-18", "2026-03-19"]
    threads = [
        eventlet.spawn(
            rpc, platform, "create_payment", f"k-{uuid.uuid4()}", holds(child, activity, [d]), caller=parent
        )
        for d in dates
    ]
    racing = [thread.wait()["payments"][0] for thread in threads]
    assert sorted((p["credit_used_cents"], p["amount_cents"]) for p in racing) == [(0, 500)] * 5 + [(500, 0)]

    # the same key three times at once (a double click, a gateway retry): one payment
    key = f"k-{uuid.uuid4()}"
    same = holds(child, activity, ["2026-03-10", "2026-03-11"])
    threads = [eventlet.spawn(rpc, platform, "create_payment", key, same, caller=parent) for _ in range(3)]
    answers = [thread.wait()["payments"] for thread in threads]
    assert len({p["id"] for answer in answers for p in answer}) == 1
    assert answers[0][0]["credit_used_cents"] == 0  # the credit is spent
    with Session(db(platform)) as session:
        assert (
            session.scalar(select(func.count()).select_from(Payment).where(Payment.idempotency_key == key))
            == 1
        )


# ---------------------------------------------------------------------- through Stripe (localstripe)

WEBHOOK_SECRET = "whsec_" + uuid.uuid4().hex


@pytest.fixture
def stripe_platform(
    container_factory,
    stripe_harness,
    billing_config,
    booking_for_billing_config,
    communes_for_billing_config,
    identity_for_billing_config,
):
    config = {
        **billing_config,
        "STRIPE_API_BASE": stripe_harness.api_base,
        "PAYMENT_PROVIDER_TIMEOUT_SECONDS": 5,
    }
    return start_platform(
        container_factory,
        config,
        booking_for_billing_config,
        communes_for_billing_config,
        identity_for_billing_config,
    )


def test_a_stripe_payment_is_created_once_retried_after_an_outage_and_confirmed_by_a_signed_webhook(
    stripe_platform, stripe_harness
):
    platform = stripe_platform
    billing = platform.billing
    town = Town(platform)
    with platform.booking_running():
        activity = town.activity()
        town.tariff(activity["id"], {"unit_price_cents": 1000})
    settings = {
        "provider": "stripe",
        "secret_key": stripe_harness.secret_key,
        "webhook_secret": WEBHOOK_SECRET,
    }
    call(billing, "set_payment_settings", town.id, settings, caller=town.agent)
    parent, _family_id, child = town.family(800)
    key = f"cart-{uuid.uuid4()}"
    days = holds(child, activity, ["2026-03-09", "2026-03-10"])

    stripe_harness.fail_next(1, "error")  # Stripe answers 500 to the first call
    [pending] = call(billing, "create_payment", key, days, caller=parent)["payments"]
    assert (pending["provider"], pending["status"], pending["provider_error"]) == (
        "stripe",
        "pending",
        "unavailable",
    )
    assert pending["client_secret"] is None and pending["amount_cents"] == 2000
    assert stripe_harness.payment_intents(pending["id"]) == []

    [created] = call(billing, "create_payment", key, days, caller=parent)["payments"]  # the replay retries
    assert created["id"] == pending["id"] and created["provider_error"] is None
    [intent] = stripe_harness.payment_intents(pending["id"])
    assert created["client_secret"].startswith(intent["id"])
    assert (intent["amount"], intent["currency"]) == (2000, "eur")
    again = call(billing, "get_payment", created["id"], caller=parent)
    assert again["client_secret"] == created["client_secret"]
    assert len(stripe_harness.payment_intents(pending["id"])) == 1

    paid_intent = stripe_harness.confirm(intent["id"])
    assert paid_intent["status"] == "succeeded"
    body = event_body("payment_intent.succeeded", paid_intent)
    with pytest.raises(InvalidSignatureError):  # signed for another body
        call(
            billing, "handle_provider_event", "stripe", body, sign(body.replace("2000", "1"), WEBHOOK_SECRET)
        )
    with pytest.raises(InvalidSignatureError):
        call(billing, "handle_provider_event", "stripe", body, sign(body, "whsec_" + uuid.uuid4().hex))
    with pytest.raises(Forbidden):  # the gateway's webhook route only, not a parent
        call(billing, "handle_provider_event", "stripe", body, sign(body, WEBHOOK_SECRET), caller=parent)
    assert call(billing, "get_payment", created["id"], caller=parent)["status"] == "pending"

    with entrypoint_waiter(
        platform.recorder, "on_payment_succeeded", callback=about("payment_id", created["id"]), timeout=10
    ) as waited:
        assert call(billing, "handle_provider_event", "stripe", body, sign(body, WEBHOOK_SECRET)) == {
            "status": "processed"
        }
    assert waited.get()["amount_cents"] == 2000
    assert call(billing, "handle_provider_event", "stripe", body, sign(body, WEBHOOK_SECRET)) == {
        "status": "duplicate"
    }
    failed = event_body("payment_intent.payment_failed", paid_intent)  # late and out of order
    assert call(billing, "handle_provider_event", "stripe", failed, sign(failed, WEBHOOK_SECRET)) == {
        "status": "ignored"
    }
    assert call(billing, "get_payment", created["id"], caller=parent)["status"] == "succeeded"
    # an event about a PaymentIntent billing does not know, with no platform webhook secret
    stranger = event_body("payment_intent.succeeded", {**paid_intent, "id": "pi_unknown"})
    with pytest.raises(InvalidSignatureError):
        call(billing, "handle_provider_event", "stripe", stranger, sign(stranger, WEBHOOK_SECRET))

    with pytest.raises(NotFound):  # not a demo payment: no demo page, no demo outcome
        call(billing, "demo_payment", created["id"])
    with pytest.raises(NotFound):
        call(billing, "demo_outcome", created["id"], "succeeded")
    refund = call(billing, "refund_payment", town.id, created["id"], 400, "agent-1", caller=town.agent)
    assert (refund["amount_cents"], refund["status"]) == (400, "succeeded")
    replay = call(billing, "refund_payment", town.id, created["id"], 400, "agent-1", caller=town.agent)
    assert replay["id"] == refund["id"]
    assert [r["amount"] for r in stripe_harness.refunds(intent["id"])] == [400]
    account = call(billing, "family_account", town.id, caller=parent)
    assert [(e["kind"], e["amount_cents"]) for e in account["entries"]] == [
        ("refund", -400),
        ("payment", 2000),
        ("charge", -2000),
    ]

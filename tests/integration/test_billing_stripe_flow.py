"""A prepaid day paid through Stripe with booking in the loop: the real `stripe` SDK over HTTP against
localstripe (tests/stripe_harness.py), the real identity, communes, booking and billing services on
PostgreSQL and RabbitMQ. A declined card leaves the place held until its hold expires; the freed place
goes to another family whose payment (its webhook delivered three times at once) confirms it once. On
another day, a family that pays only after its hold expired and its place was taken gets its money back
on the card automatically. (localstripe cannot confirm a PaymentIntent again after a declined card, which
Stripe allows: hence a second family for the late payment.)"""

import datetime as dt
from types import SimpleNamespace

import eventlet
import pytest
from nameko.testing.services import entrypoint_waiter
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.billing.service import BillingService
from services.booking.models import Occurrence
from services.booking.service import BookingService
from services.common import clock
from services.common.db import get_engine
from services.communes.service import CommunesService
from services.identity.service import IdentityService
from tests.integration.helpers import about, call
from tests.integration.test_billing_service import (
    BOOKING_BACKLOG,
    T0,
    BillingEventsRecorder,
    Town,
    _purge,
    rpc,
)
from tests.stripe_harness import CARD_DECLINED, CARD_OK, event_body, sign, stripe_harness_fixture  # noqa: F401

pytestmark = pytest.mark.integration

WEBHOOK_SECRET = "whsec_flow_" + "0" * 24
DAY = "2026-03-09"
DAY2 = "2026-03-10"
HOLD_FIELDS = ("booking_id", "child_id", "activity_id", "date", "hold_expires_at")


@pytest.fixture
def stack(
    container_factory,
    stripe_harness,
    billing_config,
    booking_for_billing_config,
    communes_for_billing_config,
    identity_for_billing_config,
):
    clock.set_now(T0)
    _purge(booking_for_billing_config["AMQP_URI"], BOOKING_BACKLOG)
    config = {
        **billing_config,
        "STRIPE_API_BASE": stripe_harness.api_base,
        "PAYMENT_PROVIDER_TIMEOUT_SECONDS": 5,
    }
    containers = {}
    for name, cls, cfg in (
        ("identity", IdentityService, identity_for_billing_config),
        ("communes", CommunesService, communes_for_billing_config),
        ("booking", BookingService, booking_for_billing_config),
        ("billing", BillingService, config),
        ("recorder", BillingEventsRecorder, config),
    ):
        containers[name] = container_factory(cls, cfg)
        containers[name].start()
    return SimpleNamespace(**containers, config=config, booking_config=booking_for_billing_config)


def book_and_create_payment(stack, parent, child, activity, key, day=DAY):
    """The gateway's two calls for a validation: booking holds, billing creates the payment."""
    call(stack.booking, "add_cart_items", child["id"], activity["id"], dates=[day], caller=parent)
    [result] = call(stack.booking, "validate_cart", key, caller=parent)["results"]
    if result["outcome"] != "pending_payment":
        return result, None
    hold = {name: result[name] for name in HOLD_FIELDS}
    [payment] = call(stack.billing, "create_payment", key, [hold], caller=parent)["payments"]
    return result, payment


def booking_status(stack, parent, child, day=DAY):
    [booking] = call(stack.booking, "child_bookings", child["id"], day, day, caller=parent)[-1:]
    return booking["status"]


def webhook(stack, event_type, intent):
    body = event_body(event_type, intent)
    return body, sign(body, WEBHOOK_SECRET)


def test_declined_then_released_then_paid_too_late_is_refunded_while_the_place_goes_to_the_payer(
    stack, stripe_harness
):
    town = Town(stack)
    activity = town.activity(capacity=1, waiting_list=False)
    town.tariff(activity["id"], {"unit_price_cents": 1250})
    settings = {
        "provider": "stripe",
        "secret_key": stripe_harness.secret_key,
        "webhook_secret": WEBHOOK_SECRET,
    }
    call(stack.billing, "set_payment_settings", town.id, settings, caller=town.agent)
    parent_a, _family_a, child_a = town.family(800)
    parent_b, _family_b, child_b = town.family(800)

    # A holds the only place and pays with a card that is declined: the place stays held
    held, payment_a = book_and_create_payment(stack, parent_a, child_a, activity, "cart-a")
    assert held["outcome"] == "pending_payment" and payment_a["amount_cents"] == 1250
    [intent_a] = stripe_harness.payment_intents(payment_a["id"])
    declined = stripe_harness.confirm(intent_a["id"], CARD_DECLINED)
    with entrypoint_waiter(
        stack.recorder, "on_payment_failed", callback=about("payment_id", payment_a["id"]), timeout=10
    ):
        body, signature = webhook(stack, "payment_intent.payment_failed", declined)
        assert (
            call(stack.billing, "handle_provider_event", "stripe", body, signature)["status"] == "processed"
        )
    assert call(stack.billing, "get_payment", payment_a["id"], caller=parent_a)["status"] == "failed"
    assert booking_status(stack, parent_a, child_a) == "pending_payment"
    full, no_payment = book_and_create_payment(stack, parent_b, child_b, activity, "cart-b1")
    assert (full["outcome"], full["reason"], no_payment) == ("rejected", "FULL", None)

    # the hold expires unpaid: released, the place is free again
    clock.set_now(T0 + dt.timedelta(minutes=21))
    call(stack.booking, "release_expired_holds")
    assert booking_status(stack, parent_a, child_a) == "released"

    # B takes it and pays; Stripe delivers the webhook three times at once: one effect, days confirmed
    held_b, payment_b = book_and_create_payment(stack, parent_b, child_b, activity, "cart-b2")
    assert held_b["outcome"] == "pending_payment"
    [intent_b] = stripe_harness.payment_intents(payment_b["id"])
    body, signature = webhook(
        stack, "payment_intent.succeeded", stripe_harness.confirm(intent_b["id"], CARD_OK)
    )
    with entrypoint_waiter(
        stack.booking, "on_payment_succeeded", callback=about("payment_id", payment_b["id"]), timeout=15
    ):
        copies = [
            eventlet.spawn(rpc, stack, "handle_provider_event", "stripe", body, signature) for _ in range(3)
        ]
        assert sorted(copy.wait()["status"] for copy in copies) == ["duplicate", "duplicate", "processed"]
    assert booking_status(stack, parent_b, child_b) == "confirmed"
    account_b = call(stack.billing, "family_account", town.id, caller=parent_b)
    assert sorted((e["kind"], e["amount_cents"]) for e in account_b["entries"]) == [
        ("charge", -1250),
        ("payment", 1250),
    ]

    # another day: C holds the place and does not pay in time; D takes the freed place and pays
    parent_c, _family_c, child_c = town.family(800)
    parent_d, _family_d, child_d = town.family(800)
    clock.set_now(T0 + dt.timedelta(minutes=30))
    held_c, payment_c = book_and_create_payment(stack, parent_c, child_c, activity, "cart-c", DAY2)
    assert held_c["outcome"] == "pending_payment"
    clock.set_now(T0 + dt.timedelta(minutes=51))
    call(stack.booking, "release_expired_holds")
    assert booking_status(stack, parent_c, child_c, DAY2) == "released"
    _held_d, payment_d = book_and_create_payment(stack, parent_d, child_d, activity, "cart-d", DAY2)
    [intent_d] = stripe_harness.payment_intents(payment_d["id"])
    body, signature = webhook(stack, "payment_intent.succeeded", stripe_harness.confirm(intent_d["id"]))
    with entrypoint_waiter(
        stack.booking, "on_payment_succeeded", callback=about("payment_id", payment_d["id"]), timeout=15
    ):
        assert (
            call(stack.billing, "handle_provider_event", "stripe", body, signature)["status"] == "processed"
        )
    assert booking_status(stack, parent_d, child_d, DAY2) == "confirmed"

    # C's card succeeds now, too late: the place is gone, the money goes back to the card
    [intent_c] = stripe_harness.payment_intents(payment_c["id"])
    paid_late = stripe_harness.confirm(intent_c["id"], CARD_OK)
    assert paid_late["status"] == "succeeded"
    with entrypoint_waiter(
        stack.recorder, "on_refund_issued", callback=about("payment_id", payment_c["id"]), timeout=15
    ) as refunded:
        body, signature = webhook(stack, "payment_intent.succeeded", paid_late)
        assert (
            call(stack.billing, "handle_provider_event", "stripe", body, signature)["status"] == "processed"
        )
    refund = refunded.get()
    assert (refund["reason"], refund["amount_cents"]) == ("place_lost", 1250)
    assert [r["amount"] for r in stripe_harness.refunds(intent_c["id"])] == [1250]
    assert booking_status(stack, parent_c, child_c, DAY2) == "released"
    assert booking_status(stack, parent_d, child_d, DAY2) == "confirmed"
    engine = get_engine(stack.booking_config["DB_URIS"]["booking"])
    with Session(engine) as session:
        taken = session.scalars(
            select(Occurrence.taken).where(Occurrence.activity_id == activity["id"])
        ).all()
    assert taken == [1, 1]  # never above capacity
    account_c = call(stack.billing, "family_account", town.id, caller=parent_c)
    assert sum(e["amount_cents"] for e in account_c["entries"]) == 0  # paid, then given back in full
    assert any(e["kind"] == "refund" and e["amount_cents"] == -1250 for e in account_c["entries"])

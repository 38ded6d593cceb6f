"""billing's rules without a broker: holds and their grouping, payment settings and encrypted keys,
the provider registry and the demo provider, and, on an in-memory SQLite database built from the
models, the ledger (append-only), credit set aside by pending payments, provider events applied once
and refunds never above what was paid."""

import datetime as dt
import json
import uuid

import pytest
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from services.billing import (
    checkout,
    ledger,
    payment_settings,
    payments,
    provider_events,
    refunds,
    secret_box,
)
from services.billing.exceptions import (
    DemoProviderDisabled,
    PaymentNotConfigured,
    PaymentNotPaid,
    RefundExceedsPaid,
)
from services.billing.models import Base, LedgerEntry, OutboxEvent, Payment, Refund, Tariff
from services.billing.payments import Group, Hold
from services.billing.providers import provider_for
from services.billing.providers.base import (
    PAYMENT_FAILED,
    PAYMENT_SUCCEEDED,
    InvalidSignature,
    PaymentRequest,
    ProviderEvent,
    ProviderPayment,
    ProviderRefund,
)
from services.billing.providers.demo import demo_event
from services.billing.settings import BillingSettings
from services.common.errors import ValidationFailed

NOW = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
SETTINGS = BillingSettings(public_url="http://portal.test", config={"PUBLIC_URL": "http://portal.test"})


@pytest.fixture
def session():
    engine = create_engine("sqlite://")

    @event.listens_for(engine, "connect")
    def _fk(dbapi_conn, _record):
        dbapi_conn.execute("PRAGMA foreign_keys=ON")

    Base.metadata.create_all(engine)
    with Session(engine) as session:
        yield session
    engine.dispose()


def hold(day, activity="a1", child="c1", expires=None):
    return Hold(
        booking_id=str(uuid.uuid4()),
        child_id=child,
        activity_id=activity,
        date=dt.date(2026, 3, day),
        expires_at=expires,
    )


def group(*holds_, commune="town", family="fam", quotient=None):
    return Group(commune, family, quotient, tuple(holds_))


def tariff(session, activity="a1", commune="town", price=415, rule="refund"):
    session.add(
        Tariff(
            activity_id=activity,
            commune_id=commune,
            unit_price_cents=price,
            cancellation_refund=rule,
            updated_at=NOW,
        )
    )
    session.flush()


# ---------------------------------------------------------------------- holds


def test_holds_are_checked_and_deduplicated():
    item = {"booking_id": "b1", "child_id": "c1", "activity_id": "a1", "date": "2026-03-09"}
    parsed = payments.parse_holds(
        [item, item, {**item, "booking_id": "b2", "hold_expires_at": "2026-03-02T08:20:00"}]
    )
    assert [h.booking_id for h in parsed] == ["b1", "b2"]
    assert parsed[1].expires_at == dt.datetime(2026, 3, 2, 8, 20, tzinfo=dt.UTC)
    for bad in ("x", [{"booking_id": "b1"}], [{**item, "date": "09/03/2026"}], [{**item, "child_id": 3}]):
        with pytest.raises(ValidationFailed):
            payments.parse_holds(bad)
    with pytest.raises(ValidationFailed):
        payments.idempotency_key("")


def test_holds_are_grouped_by_commune_and_family_and_foreign_children_left_out():
    holds_ = [hold(10, child="c1"), hold(9, child="c2"), hold(9, child="c1"), hold(9, child="stranger")]
    groups = payments.group_holds(holds_, {"c1": ("t1", "f1"), "c2": ("t2", "f2")}, {"f1": 300})
    assert [(g.commune_id, g.family_id, g.quotient, len(g.holds)) for g in groups] == [
        ("t1", "f1", 300, 2),
        ("t2", "f2", None, 1),
    ]
    assert [h.date.day for h in groups[0].holds] == [9, 10]


# ---------------------------------------------------------------------- settings and keys


def test_payment_settings_are_checked_and_demo_refused_in_production():
    stripe = {"provider": "stripe", "secret_key": "sk_test_12345678", "webhook_secret": "whsec_12345678"}
    assert payment_settings.parse(stripe, production=True) == stripe
    assert payment_settings.parse({"provider": "demo"}, production=False) == {"provider": "demo"}
    with pytest.raises(DemoProviderDisabled):
        payment_settings.parse({"provider": "demo"}, production=True)
    with pytest.raises(ValidationFailed) as refused:
        payment_settings.parse(
            {"provider": "stripe", "secret_key": "pk_live_x", "publishable_key": "sk_x"}, False
        )
    assert set(refused.value.details["fields"]) == {"secret_key", "webhook_secret", "publishable_key"}
    with pytest.raises(ValidationFailed):
        payment_settings.parse({"provider": "paypal"}, False)
    with pytest.raises(ValidationFailed):
        payment_settings.parse({"provider": "demo", "secret_key": "sk_test_12345678"}, False)


def test_secrets_are_encrypted_and_unreadable_under_another_key():
    token = secret_box.encrypt("key one", "sk_test_secret")
    assert "sk_test_secret" not in token
    assert secret_box.decrypt("key one", token) == "sk_test_secret"
    assert secret_box.decrypt("key two", token) is None
    assert secret_box.decrypt("key one", None) is None


def test_a_communes_provider_its_own_else_the_platforms(session):
    assert payment_settings.choice(session, SETTINGS, "town").name == "demo"
    production = BillingSettings(production=True, secrets_key="k", config={})
    with pytest.raises(PaymentNotConfigured):
        payment_settings.choice(session, production, "town")
    stripe = {"provider": "stripe", "secret_key": "sk_test_12345678", "webhook_secret": "whsec_12345678"}
    shown = payment_settings.set_settings(session, production, "town", stripe, "agent", NOW)
    assert shown["secret_key_set"] and "sk_test_12345678" not in json.dumps(shown)
    found = payment_settings.choice(session, production, "town")
    assert (found.name, found.settings["secret_key"]) == ("stripe", "sk_test_12345678")
    # the platform's Stripe account, for communes without settings
    platform = BillingSettings(
        production=True, default_provider="stripe", config={"STRIPE_SECRET_KEY": "sk_p"}
    )
    assert payment_settings.choice(session, platform, "elsewhere").settings["secret_key"] == "sk_p"
    assert payment_settings.webhook_choice(session, platform, None) is None


def test_settings_from_config():
    settings = BillingSettings.from_config({"PAYMENT_PROVIDER": "Stripe", "PUBLIC_URL": "https://p.example/"})
    assert (settings.default_provider, settings.public_url, settings.production) == (
        "stripe",
        "https://p.example",
        False,
    )
    with pytest.raises(RuntimeError):
        BillingSettings.from_config({"PAYMENT_PROVIDER": "cash"})
    with pytest.raises(RuntimeError):  # the local default key is refused in production
        BillingSettings.from_config({"ENVIRONMENT": "production"})


# ---------------------------------------------------------------------- providers


def test_registry_and_demo_provider():
    demo = provider_for("demo", {}, {"PUBLIC_URL": "https://portail.example/"})
    created = demo.create_payment(PaymentRequest("p1", 1000, "x", "payment-p1"))
    assert created == ProviderPayment(
        "p1", "pending", checkout_url="https://portail.example/payments/demo/p1"
    )
    assert demo.refund("p1", 100, "k").status == "succeeded"
    with pytest.raises(InvalidSignature):
        demo.parse_event(b"{}", None)
    with pytest.raises(ValueError):
        provider_for("cash", {}, {})
    stripe = provider_for("stripe", {"secret_key": "sk_test_x", "webhook_secret": "whsec_x"}, {})
    assert stripe.name == "stripe"
    assert demo_event("p1", "succeeded").event_id == "demo-p1-succeeded"
    assert demo_event("p1", "failed").kind == PAYMENT_FAILED
    assert demo_event("p1", "maybe") is None


def test_the_payment_intent_of_an_unverified_stripe_body():
    intent = {"data": {"object": {"object": "payment_intent", "id": "pi_1"}}}
    charge = {"data": {"object": {"object": "charge", "id": "ch_1", "payment_intent": "pi_2"}}}
    assert provider_events.stripe_payment_ref(json.dumps(intent)) == "pi_1"
    assert provider_events.stripe_payment_ref(json.dumps(charge)) == "pi_2"
    assert provider_events.stripe_payment_ref("not json") is None
    assert provider_events.stripe_payment_ref(json.dumps({"data": []})) is None


# ---------------------------------------------------------------------- on SQLite


def test_the_ledger_is_append_only(session):
    ledger.append(session, "town", "fam", "payment", 500, "Paiement", NOW)
    session.commit()
    for statement in ("UPDATE ledger_entries SET amount_cents = 0", "DELETE FROM ledger_entries"):
        with pytest.raises(DBAPIError):
            session.execute(text(statement))
        session.rollback()
    assert ledger.balance(session, "town", "fam") == 500


def test_a_payment_stores_its_days_and_uses_credit_set_aside_for_it_only(session):
    tariff(session, price=415)
    ledger.append(session, "town", "fam", "cancellation", 300, "Annulation", NOW)
    first = payments.create(session, SETTINGS, "acc", "k1", group(hold(9), hold(10)), NOW)
    assert (first.total_cents, first.credit_used_cents, first.amount_cents) == (830, 300, 530)
    assert first.expires_at == NOW + dt.timedelta(minutes=payments.DEFAULT_HOLD_MINUTES)
    assert first.provider == "demo" and first.provider_idempotency_key == f"payment-{first.id}"
    assert [d.unit_price_cents for d in payments.days(session, first.id)] == [415, 415]
    # the same key again: the same payment
    assert payments.create(session, SETTINGS, "acc", "k1", group(hold(11)), NOW).id == first.id
    # the credit is set aside for the pending payment: not spent twice
    second = payments.create(session, SETTINGS, "acc", "k2", group(hold(11)), NOW)
    assert (second.credit_used_cents, second.amount_cents) == (0, 415)
    # no tariff: free, succeeded at once with the ledger entries and the event
    free = payments.create(session, SETTINGS, "acc", "k3", group(hold(12, activity="free")), NOW)
    assert (free.status, free.provider, free.total_cents) == ("succeeded", "credit", 0)
    assert session.scalars(select(OutboxEvent.event_type)).all() == ["payment_succeeded"]


def test_provider_answers_are_recorded_once(session):
    tariff(session)
    payment = payments.create(session, SETTINGS, "acc", "k", group(hold(9)), NOW)
    checkout.record_answer(session, payment.id, checkout.UNAVAILABLE)
    assert (payment.provider_error, checkout.needs_provider(payment)) == ("unavailable", True)
    checkout.record_answer(
        session, payment.id, ProviderPayment("pi_1", "pending", client_secret="pi_1_secret")
    )
    assert (payment.provider_ref, payment.provider_error, payment.client_secret) == (
        "pi_1",
        None,
        "pi_1_secret",
    )
    checkout.record_answer(session, payment.id, ProviderPayment("pi_2", "pending"))  # a late duplicate
    assert payment.provider_ref == "pi_1"
    other = payments.create(session, SETTINGS, "acc", "k2", group(hold(10)), NOW)
    checkout.record_answer(session, other.id, checkout.REJECTED)
    assert (other.status, other.provider_error) == ("failed", "rejected")


def test_provider_events_apply_once_and_in_any_order(session):
    tariff(session, price=1000)
    payment = payments.create(session, SETTINGS, "acc", "k", group(hold(9)), NOW)
    payment.provider, payment.provider_ref = "stripe", "pi_1"
    succeeded = ProviderEvent("evt_1", PAYMENT_SUCCEEDED, "pi_1", 1000)
    failed = ProviderEvent("evt_0", PAYMENT_FAILED, "pi_1")
    assert provider_events.apply(session, "stripe", succeeded, NOW) == "processed"
    assert provider_events.apply(session, "stripe", succeeded, NOW) == "duplicate"
    assert provider_events.apply(session, "stripe", failed, NOW) == "ignored"  # late: changes nothing
    assert payment.status == "succeeded"
    assert (
        provider_events.apply(session, "stripe", ProviderEvent("evt_x", PAYMENT_SUCCEEDED, "pi_?"), NOW)
        == "ignored"
    )
    assert (
        provider_events.apply(session, "stripe", ProviderEvent("evt_x", PAYMENT_SUCCEEDED, "pi_?"), NOW)
        == "duplicate"
    )
    kinds = session.scalars(select(LedgerEntry.kind).order_by(LedgerEntry.id)).all()
    assert kinds == ["charge", "payment"] and ledger.balance(session, "town", "fam") == 0


def test_refunds_never_exceed_what_was_paid(session):
    tariff(session, price=1000)
    payment = payments.create(session, SETTINGS, "acc", "k", group(hold(9)), NOW)
    with pytest.raises(PaymentNotPaid):
        refunds.reserve(session, payment, 100, refunds.AGENT, "r0", [], "agent", NOW)
    payments.succeed(session, payment, NOW)
    first = refunds.reserve(session, payment, 700, refunds.AGENT, "r1", [], "agent", NOW)
    assert refunds.reserve(session, payment, 999, refunds.AGENT, "r1", [], "agent", NOW) is first  # replay
    with pytest.raises(RefundExceedsPaid):
        refunds.reserve(session, payment, 301, refunds.AGENT, "r2", [], "agent", NOW)
    assert payment.refunded_cents == 700
    refunds.record_outcome(session, first.id, ProviderRefund("re_1", "succeeded"), NOW)
    refunds.record_outcome(session, first.id, ProviderRefund("re_1", "succeeded"), NOW)  # twice: once
    assert session.scalars(select(LedgerEntry.kind).where(LedgerEntry.kind == "refund")).all() == ["refund"]
    refused = refunds.reserve(session, payment, 300, refunds.AGENT, "r3", [], "agent", NOW)
    refunds.record_outcome(session, refused.id, "failed", NOW)  # the provider refused it
    assert (refused.status, payment.refunded_cents) == ("failed", 700)
    unanswered = refunds.reserve(session, payment, 300, refunds.AGENT, "r4", [], "agent", NOW)
    refunds.record_outcome(session, unanswered.id, refunds.UNAVAILABLE, NOW)
    assert (unanswered.status, unanswered.provider_error) == ("pending", "unavailable")
    assert refunds.pending_ids(session, NOW + dt.timedelta(minutes=1)) == [unanswered.id]
    assert session.get(Refund, first.id).provider_idempotency_key == f"refund-{payment.id}-r1"
    assert ledger.balance(session, "town", "fam") == -700


def test_a_payment_row_cannot_be_refunded_beyond_its_amount_even_by_a_buggy_writer(session):
    tariff(session, price=1000)
    payment = payments.create(session, SETTINGS, "acc", "k", group(hold(9)), NOW)
    session.commit()
    with pytest.raises(DBAPIError):
        session.execute(text("UPDATE payments SET refunded_cents = 1001 WHERE id = :id"), {"id": payment.id})
    session.rollback()
    assert session.get(Payment, payment.id).refunded_cents == 0


def test_billing_asks_communes_for_quotients_as_itself():
    """get_family_billing_profile answers internal callers only: the parent's identity must not travel."""
    from types import SimpleNamespace

    from services.billing.access import _WithoutCaller

    parent = {"account_id": "a1", "roles": ["agent:x"], "session_id": "s", "client_ip": "1.2.3.4"}
    worker_ctx = SimpleNamespace(container="c", context_data={**parent, "call_id_stack": ["billing.quote.1"]})
    seen = _WithoutCaller(worker_ctx)
    assert seen.context_data == {"call_id_stack": ["billing.quote.1"]}
    assert seen.container == "c" and worker_ctx.context_data["account_id"] == "a1"

"""StripeProvider through the real `stripe` SDK over HTTP, against localstripe behind the harness's
proxy (tests/stripe_harness.py): idempotent creation and refunds, retries after failures, card
outcomes, cancellation, webhooks signed offline and sent by localstripe, per-commune keys."""

import json
import threading
import time
import uuid

import pytest
import stripe

from services.billing.providers.base import (
    CANCELLED,
    FAILED,
    IGNORED,
    PAYMENT_FAILED,
    PAYMENT_SUCCEEDED,
    PENDING,
    REFUND_SUCCEEDED,
    SUCCEEDED,
    InvalidSignature,
    PaymentRequest,
    ProviderRejected,
    ProviderUnavailable,
)
from services.billing.providers.stripe import StripeProvider
from tests.stripe_harness import CARD_DECLINED, CARD_OK, event_body, sign, stripe_harness_fixture  # noqa: F401

pytestmark = pytest.mark.integration

WEBHOOK_SECRET = "whsec_" + uuid.uuid4().hex


@pytest.fixture
def provider(stripe_harness):
    return StripeProvider(
        stripe_harness.secret_key, WEBHOOK_SECRET, api_base=stripe_harness.api_base, timeout=5
    )


def payment_request(amount_cents=1250, key=None, payment_id=None):
    payment_id = payment_id or str(uuid.uuid4())
    return PaymentRequest(
        payment_id=payment_id,
        amount_cents=amount_cents,
        description="Accueil de loisirs : 3 jours",
        idempotency_key=key or f"pay-{payment_id}",
        metadata={"commune_id": "c-1"},
    )


def paid_intent(provider, stripe_harness, amount_cents=1000):
    created = provider.create_payment(payment_request(amount_cents))
    assert stripe_harness.confirm(created.provider_ref, CARD_OK)["status"] == "succeeded"
    return created.provider_ref


# ---------------------------------------------------------------------- creation, idempotency


def test_create_payment_sends_amount_metadata_and_card(provider, stripe_harness):
    request = payment_request(1250)
    created = provider.create_payment(request)

    assert created.status == PENDING
    assert created.provider_ref.startswith("pi_")
    assert created.client_secret.startswith(created.provider_ref + "_secret_")
    [intent] = stripe_harness.payment_intents(request.payment_id)
    assert intent["id"] == created.provider_ref
    assert intent["amount"] == 1250 and intent["currency"] == "eur"
    assert intent["metadata"] == {"commune_id": "c-1", "payment_id": request.payment_id}
    assert provider.retrieve_payment(created.provider_ref) == created


def test_same_idempotency_key_twice_gives_one_payment_intent(provider, stripe_harness):
    request = payment_request()
    first = provider.create_payment(request)
    second = provider.create_payment(request)

    assert second == first
    assert len(stripe_harness.payment_intents(request.payment_id)) == 1
    assert len(stripe_harness.forwarded_with_key(request.idempotency_key)) == 1
    assert [r[2] for r in stripe_harness.replayed].count(request.idempotency_key) == 1

    other = provider.create_payment(payment_request(key="another-key", payment_id=request.payment_id))
    assert other.provider_ref != first.provider_ref  # a new key is a new PaymentIntent


def test_provider_error_then_retry_with_same_key_gives_one_payment_intent(provider, stripe_harness):
    request = payment_request()
    stripe_harness.fail_next(1, "error")
    with pytest.raises(ProviderUnavailable):
        provider.create_payment(request)
    assert stripe_harness.payment_intents(request.payment_id) == []

    created = provider.create_payment(request)
    assert [pi["id"] for pi in stripe_harness.payment_intents(request.payment_id)] == [created.provider_ref]


def test_lost_response_then_retry_with_same_key_gives_one_payment_intent(provider, stripe_harness):
    """The request reached Stripe and created the PaymentIntent, but the answer was lost: the retry with
    the stored key must get that PaymentIntent, not a second one."""
    request = payment_request()
    stripe_harness.fail_next(1, "lost_response")
    with pytest.raises(ProviderUnavailable):
        provider.create_payment(request)
    [intent] = stripe_harness.payment_intents(request.payment_id)

    created = provider.create_payment(request)
    assert created.provider_ref == intent["id"]
    assert len(stripe_harness.payment_intents(request.payment_id)) == 1


def test_connection_closed_without_answer_is_unavailable(provider, stripe_harness):
    request = payment_request()
    stripe_harness.fail_next(1, "drop")
    with pytest.raises(ProviderUnavailable):
        provider.create_payment(request)
    assert stripe_harness.payment_intents(request.payment_id) == []


def test_timeout_is_unavailable(stripe_harness):
    slow = StripeProvider(
        stripe_harness.secret_key, WEBHOOK_SECRET, api_base=stripe_harness.api_base, timeout=0.3
    )
    request = payment_request()
    stripe_harness.delay = 1.5
    stripe_harness.fail_next(1, "slow")
    started = time.monotonic()
    with pytest.raises(ProviderUnavailable):
        slow.create_payment(request)
    assert time.monotonic() - started < 1.4
    stripe_harness.wait_idle()  # the abandoned request goes on at Stripe
    created = slow.create_payment(request)  # same key: the one the slow request created
    assert [pi["id"] for pi in stripe_harness.payment_intents(request.payment_id)] == [created.provider_ref]


def test_same_key_while_the_first_request_runs_is_unavailable_then_one_payment_intent(
    provider, stripe_harness
):
    request = payment_request()
    stripe_harness.delay = 1.0
    stripe_harness.fail_next(1, "slow")
    first = {}
    thread = threading.Thread(target=lambda: first.setdefault("payment", provider.create_payment(request)))
    thread.start()
    deadline = time.monotonic() + 5
    while not stripe_harness.in_flight and time.monotonic() < deadline:
        time.sleep(0.02)
    with pytest.raises(ProviderUnavailable):  # Stripe answers 409: retry later with the same key
        provider.create_payment(request)
    thread.join(10)
    assert provider.create_payment(request) == first["payment"]
    assert len(stripe_harness.payment_intents(request.payment_id)) == 1


def test_same_key_with_other_parameters_is_rejected(provider, stripe_harness):
    request = payment_request(1000)
    provider.create_payment(request)
    changed = PaymentRequest(
        payment_id=request.payment_id,
        amount_cents=1100,
        description=request.description,
        idempotency_key=request.idempotency_key,
        metadata=request.metadata,
    )
    with pytest.raises(ProviderRejected) as raised:
        provider.create_payment(changed)
    assert raised.value.code == "idempotency_error"
    assert [pi["amount"] for pi in stripe_harness.payment_intents(request.payment_id)] == [1000]


def test_sdk_retries_reuse_our_key(stripe_harness):
    retrying = StripeProvider(
        stripe_harness.secret_key,
        WEBHOOK_SECRET,
        api_base=stripe_harness.api_base,
        timeout=5,
        max_network_retries=2,
    )
    request = payment_request()
    stripe_harness.fail_next(1, "lost_response")
    created = retrying.create_payment(request)  # one call: the SDK retried after the lost answer
    assert [pi["id"] for pi in stripe_harness.payment_intents(request.payment_id)] == [created.provider_ref]
    assert len(stripe_harness.forwarded_with_key(request.idempotency_key)) == 1
    assert (request.idempotency_key) in [r[2] for r in stripe_harness.replayed]


def test_unknown_payment_intent_is_rejected(provider):
    with pytest.raises(ProviderRejected):
        provider.retrieve_payment("pi_doesnotexist000")


def test_bad_secret_key_is_rejected_without_the_key_in_the_error(stripe_harness):
    bad_key = "rk_nope_" + uuid.uuid4().hex  # localstripe refuses keys that are not sk_...
    provider = StripeProvider(bad_key, WEBHOOK_SECRET, api_base=stripe_harness.api_base)
    with pytest.raises(ProviderRejected) as raised:
        provider.create_payment(payment_request())
    assert raised.value.code == "authentication_error"
    assert bad_key not in str(raised.value) and bad_key not in repr(provider)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__


def test_each_provider_uses_its_own_key(stripe_harness):
    key_a, key_b = "sk_test_a_" + uuid.uuid4().hex, "sk_test_b_" + uuid.uuid4().hex
    a = StripeProvider(key_a, WEBHOOK_SECRET, api_base=stripe_harness.api_base)
    b = StripeProvider(key_b, WEBHOOK_SECRET, api_base=stripe_harness.api_base)
    request_a, request_b = payment_request(), payment_request()
    a.create_payment(request_a)
    b.create_payment(request_b)
    a.retrieve_payment(stripe_harness.payment_intents(request_a.payment_id)[0]["id"])

    used = {
        (f[2], f[3])
        for f in stripe_harness.forwarded
        if f[2] in (request_a.idempotency_key, request_b.idempotency_key)
    }
    assert used == {(request_a.idempotency_key, key_a), (request_b.idempotency_key, key_b)}
    assert stripe_harness.forwarded[-1][3] == key_a  # the retrieve
    assert stripe.api_key is None  # the SDK's global key is never set


# ---------------------------------------------------------------------- card outcomes, cancel


def test_good_card_succeeds(provider, stripe_harness):
    created = provider.create_payment(payment_request())
    stripe_harness.confirm(created.provider_ref, CARD_OK)
    assert provider.retrieve_payment(created.provider_ref).status == SUCCEEDED


def test_declined_card_fails(provider, stripe_harness):
    created = provider.create_payment(payment_request())
    intent = stripe_harness.confirm(created.provider_ref, CARD_DECLINED)
    assert intent["last_payment_error"]["code"] == "card_declined"
    assert provider.retrieve_payment(created.provider_ref).status == FAILED


def test_cancel_payment_is_idempotent(provider, stripe_harness):
    created = provider.create_payment(payment_request())
    provider.cancel_payment(created.provider_ref, "cancel-1")
    assert provider.retrieve_payment(created.provider_ref).status == CANCELLED
    provider.cancel_payment(created.provider_ref, "cancel-1")  # replayed by key
    provider.cancel_payment(created.provider_ref, "cancel-2")  # already cancelled: done
    assert len(stripe_harness.forwarded_with_key("cancel-1")) == 1


def test_cancel_of_a_paid_payment_is_rejected(provider, stripe_harness):
    ref = paid_intent(provider, stripe_harness)
    with pytest.raises(ProviderRejected):
        provider.cancel_payment(ref, f"cancel-{ref}")
    assert provider.retrieve_payment(ref).status == SUCCEEDED


# ---------------------------------------------------------------------- refunds


def test_partial_then_full_refund_and_replayed_refund_not_duplicated(provider, stripe_harness):
    ref = paid_intent(provider, stripe_harness, 1000)

    first = provider.refund(ref, 400, f"refund-1-{ref}")
    second = provider.refund(ref, 600, f"refund-2-{ref}")
    again = provider.refund(ref, 400, f"refund-1-{ref}")

    assert first.status == SUCCEEDED and second.status == SUCCEEDED
    assert first.provider_ref.startswith("re_") and second.provider_ref != first.provider_ref
    assert again == first
    assert sorted(r["amount"] for r in stripe_harness.refunds(ref)) == [400, 600]


def test_refund_after_lost_response_is_not_duplicated(provider, stripe_harness):
    ref = paid_intent(provider, stripe_harness, 1000)
    stripe_harness.fail_next(1, "lost_response")
    with pytest.raises(ProviderUnavailable):
        provider.refund(ref, 300, f"lost-{ref}")
    refund = provider.refund(ref, 300, f"lost-{ref}")
    assert [r["id"] for r in stripe_harness.refunds(ref)] == [refund.provider_ref]


def test_refund_of_a_failed_payment_is_rejected(provider, stripe_harness):
    created = provider.create_payment(payment_request())
    stripe_harness.confirm(created.provider_ref, CARD_DECLINED)
    with pytest.raises(ProviderRejected):
        provider.refund(created.provider_ref, 100, f"refund-{created.provider_ref}")


# ---------------------------------------------------------------------- webhooks


def intent_object(ref="pi_123", amount=1250, received=1250, status="succeeded"):
    return {
        "id": ref,
        "object": "payment_intent",
        "amount": amount,
        "amount_received": received,
        "status": status,
    }


def test_signed_event_is_parsed(provider):
    body = event_body(
        "payment_intent.succeeded", intent_object(received=1250), event_id="evt_1", created=1700
    )
    event = provider.parse_event(body.encode(), sign(body, WEBHOOK_SECRET))
    assert (event.event_id, event.kind, event.provider_ref, event.amount_cents, event.created) == (
        "evt_1",
        PAYMENT_SUCCEEDED,
        "pi_123",
        1250,
        1700,
    )
    assert provider.parse_event(body, sign(body, WEBHOOK_SECRET)) == event  # str body too


def test_tampered_body_is_refused(provider):
    body = event_body("payment_intent.succeeded", intent_object(received=100))
    header = sign(body, WEBHOOK_SECRET)
    with pytest.raises(InvalidSignature):
        provider.parse_event(
            body.replace('"amount_received": 100', '"amount_received": 999').encode(), header
        )


def test_wrong_secret_is_refused(provider):
    body = event_body("payment_intent.succeeded", intent_object())
    with pytest.raises(InvalidSignature):
        provider.parse_event(body.encode(), sign(body, "whsec_someone_else"))


def test_stale_signature_is_refused_fresh_one_accepted(provider):
    body = event_body("payment_intent.succeeded", intent_object())
    with pytest.raises(InvalidSignature):
        provider.parse_event(body.encode(), sign(body, WEBHOOK_SECRET, timestamp=int(time.time()) - 301))
    recent = provider.parse_event(body.encode(), sign(body, WEBHOOK_SECRET, timestamp=int(time.time()) - 200))
    assert recent.kind == PAYMENT_SUCCEEDED


@pytest.mark.parametrize("header", [None, "", "garbage", "t=abc,v1=00", "t=1700000000"])
def test_missing_or_malformed_header_is_refused(provider, header):
    body = event_body("payment_intent.succeeded", intent_object())
    with pytest.raises(InvalidSignature):
        provider.parse_event(body.encode(), header)


def test_signed_bad_json_is_refused(provider):
    body = '{"id": "evt_1", "type": '
    with pytest.raises(InvalidSignature):
        provider.parse_event(body.encode(), sign(body, WEBHOOK_SECRET))


def test_webhooks_sent_by_localstripe_are_parsed(provider, stripe_harness):
    """localstripe signs its own events (its format, its timestamps): a real end-to-end check."""
    secret = "whsec_ls_" + uuid.uuid4().hex
    stripe_harness.register_webhook(secret, ["payment_intent.succeeded", "payment_intent.payment_failed"])
    receiver = StripeProvider(stripe_harness.secret_key, secret, api_base=stripe_harness.api_base)
    good = provider.create_payment(payment_request(1500))
    bad = provider.create_payment(payment_request(700))
    stripe_harness.confirm(good.provider_ref, CARD_OK)
    stripe_harness.confirm(bad.provider_ref, CARD_DECLINED)

    body, header = stripe_harness.wait_webhook("payment_intent.succeeded", good.provider_ref)
    event = receiver.parse_event(body, header)
    assert (event.kind, event.provider_ref, event.amount_cents) == (
        PAYMENT_SUCCEEDED,
        good.provider_ref,
        1500,
    )
    assert event.event_id == json.loads(body)["id"]

    body, header = stripe_harness.wait_webhook("payment_intent.payment_failed", bad.provider_ref)
    event = receiver.parse_event(body, header)
    assert (event.kind, event.provider_ref) == (PAYMENT_FAILED, bad.provider_ref)
    with pytest.raises(InvalidSignature):
        provider.parse_event(body, header)  # another account's secret


def test_refund_events_are_parsed(provider):
    charge = {"id": "ch_1", "object": "charge", "payment_intent": "pi_9", "amount_refunded": 400}
    body = event_body("charge.refunded", charge)
    event = provider.parse_event(body, sign(body, WEBHOOK_SECRET))
    assert (event.kind, event.provider_ref, event.amount_cents) == (REFUND_SUCCEEDED, "pi_9", 400)

    other = event_body("customer.created", {"id": "cus_1", "object": "customer"})
    assert provider.parse_event(other, sign(other, WEBHOOK_SECRET)).kind == IGNORED

"""StripeProvider's rules without any network: event mapping, status mapping, error mapping, offline
webhook verification, and that no secret leaks into errors or the SDK's global state."""

import time

import pytest
import stripe

from services.billing.providers import stripe as stripe_provider
from services.billing.providers.base import (
    CANCELLED,
    FAILED,
    IGNORED,
    PAYMENT_FAILED,
    PAYMENT_SUCCEEDED,
    PENDING,
    REFUND_FAILED,
    REFUND_SUCCEEDED,
    SUCCEEDED,
    InvalidSignature,
    ProviderRejected,
    ProviderUnavailable,
)
from services.billing.providers.stripe import (
    StripeProvider,
    event_from_dict,
    payment_status,
    provider_error,
    refund_status,
)
from tests.stripe_harness import event_body, sign

SECRET_KEY = "sk_test_unit_secret_0123456789"
WEBHOOK_SECRET = "whsec_unit_0123456789"


def event(event_type, obj, event_id="evt_1", created=1700000000):
    return {
        "id": event_id,
        "object": "event",
        "type": event_type,
        "created": created,
        "data": {"object": obj},
    }


def intent(**fields):
    return {"id": "pi_1", "object": "payment_intent", "amount": 1000, **fields}


# ---------------------------------------------------------------------- events


def test_payment_intent_succeeded_carries_amount_received():
    mapped = event_from_dict(event("payment_intent.succeeded", intent(amount_received=900)))
    assert (mapped.event_id, mapped.kind, mapped.provider_ref, mapped.amount_cents, mapped.created) == (
        "evt_1",
        PAYMENT_SUCCEEDED,
        "pi_1",
        900,
        1700000000,
    )


def test_payment_intent_succeeded_without_amount_received_uses_amount():
    assert event_from_dict(event("payment_intent.succeeded", intent())).amount_cents == 1000


def test_payment_failed():
    mapped = event_from_dict(event("payment_intent.payment_failed", intent(status="requires_payment_method")))
    assert (mapped.kind, mapped.provider_ref, mapped.amount_cents) == (PAYMENT_FAILED, "pi_1", None)


def test_charge_refunded_is_about_its_payment_intent():
    charge = {"id": "ch_1", "object": "charge", "payment_intent": "pi_7", "amount_refunded": 300}
    mapped = event_from_dict(event("charge.refunded", charge))
    assert (mapped.kind, mapped.provider_ref, mapped.amount_cents) == (REFUND_SUCCEEDED, "pi_7", 300)


def test_expanded_payment_intent_on_a_charge():
    charge = {"id": "ch_1", "object": "charge", "payment_intent": {"id": "pi_8"}, "amount_refunded": 1}
    assert event_from_dict(event("charge.refunded", charge)).provider_ref == "pi_8"


@pytest.mark.parametrize(
    ("event_type", "status", "kind"),
    [
        ("refund.updated", "succeeded", REFUND_SUCCEEDED),
        ("refund.updated", "failed", REFUND_FAILED),
        ("refund.updated", "canceled", REFUND_FAILED),
        ("refund.failed", "failed", REFUND_FAILED),
        ("refund.created", "succeeded", REFUND_SUCCEEDED),
        ("refund.updated", "pending", IGNORED),
        ("refund.updated", "requires_action", IGNORED),
    ],
)
def test_refund_events(event_type, status, kind):
    refund = {"id": "re_1", "object": "refund", "payment_intent": "pi_3", "amount": 250, "status": status}
    mapped = event_from_dict(event(event_type, refund))
    assert (mapped.kind, mapped.provider_ref) == (kind, "pi_3")
    if kind != IGNORED:
        assert mapped.amount_cents == 250


@pytest.mark.parametrize(
    "event_type",
    ["payment_intent.created", "payment_intent.canceled", "customer.created", "charge.succeeded"],
)
def test_other_events_are_ignored(event_type):
    assert event_from_dict(event(event_type, intent(amount_received=1000))).kind == IGNORED


def test_amounts_must_be_integers():
    mapped = event_from_dict(event("payment_intent.succeeded", intent(amount_received="1000")))
    assert mapped.amount_cents is None
    assert (
        event_from_dict(event("payment_intent.succeeded", intent(amount_received=True))).amount_cents is None
    )


@pytest.mark.parametrize("bad", [{}, {"id": ""}, {"id": 5, "type": "x"}])
def test_event_without_id_is_refused(bad):
    with pytest.raises((KeyError, ValueError)):
        event_from_dict(bad)


# ---------------------------------------------------------------------- statuses


@pytest.mark.parametrize(
    ("status", "error", "expected"),
    [
        ("succeeded", None, SUCCEEDED),
        ("canceled", None, CANCELLED),
        ("requires_payment_method", {"code": "card_declined"}, FAILED),
        ("requires_payment_method", None, PENDING),
        ("requires_confirmation", None, PENDING),
        ("requires_action", None, PENDING),
        ("processing", None, PENDING),
        ("requires_capture", None, PENDING),
    ],
)
def test_payment_status(status, error, expected):
    assert payment_status(status, error) == expected


@pytest.mark.parametrize(
    ("status", "expected"),
    [
        ("succeeded", SUCCEEDED),
        ("pending", PENDING),
        ("requires_action", PENDING),
        ("failed", FAILED),
        ("canceled", FAILED),
    ],
)
def test_refund_status(status, expected):
    assert refund_status(status) == expected


# ---------------------------------------------------------------------- errors

LEAKY = f"Invalid API Key provided: {SECRET_KEY} card 4242424242424242"


@pytest.mark.parametrize(
    "exc",
    [
        stripe.APIConnectionError(LEAKY),
        stripe.RateLimitError(LEAKY, http_status=429),
        stripe.APIError(LEAKY, http_status=500),
        stripe.APIError(LEAKY, http_status=503),
        stripe.APIError(LEAKY, http_status=409),  # a concurrent request with the same key
        stripe.APIError(LEAKY, http_status=200),  # an answer that is not Stripe's JSON
        stripe.StripeError(LEAKY),
    ],
)
def test_unavailable_errors(exc):
    error = provider_error(exc)
    assert isinstance(error, ProviderUnavailable)
    assert SECRET_KEY not in str(error) and "4242" not in str(error)


@pytest.mark.parametrize(
    ("exc", "code"),
    [
        (stripe.CardError(LEAKY, None, "card_declined", http_status=402), "card_declined"),
        (stripe.CardError(LEAKY, None, "expired_card", http_status=402), "expired_card"),
        (stripe.CardError(LEAKY, None, None, http_status=402), "card_declined"),
        (
            stripe.InvalidRequestError(LEAKY, "amount", "amount_too_small", http_status=400),
            "amount_too_small",
        ),
        (stripe.InvalidRequestError(LEAKY, None, None, http_status=404), "invalid_request"),
        (stripe.InvalidRequestError(LEAKY, None, "Not A Code; sk_x", http_status=400), "invalid_request"),
        (stripe.IdempotencyError(LEAKY, http_status=400), "idempotency_error"),
        (stripe.AuthenticationError(LEAKY, http_status=401), "authentication_error"),
        (stripe.PermissionError(LEAKY, http_status=403), "permission_error"),
    ],
)
def test_rejected_errors(exc, code):
    error = provider_error(exc)
    assert isinstance(error, ProviderRejected)
    assert error.code == code
    assert SECRET_KEY not in str(error) and "4242" not in str(error)


def test_call_raises_ours_without_stripe_cause(caplog):
    def fails():
        raise stripe.CardError(LEAKY, None, "card_declined", http_status=402)

    with caplog.at_level("DEBUG"), pytest.raises(ProviderRejected) as raised:
        stripe_provider._call("create_payment", fails)
    assert raised.value.__cause__ is None and raised.value.__suppress_context__
    assert "card_declined" in caplog.text
    assert SECRET_KEY not in caplog.text and "4242" not in caplog.text


def test_invalid_amounts_are_rejected_before_any_call():
    provider = StripeProvider(SECRET_KEY, WEBHOOK_SECRET, api_base="http://127.0.0.1:9")  # nothing there
    with pytest.raises(ProviderRejected) as raised:
        provider.refund("pi_1", 0, "k")
    assert raised.value.code == "invalid_amount"


def test_provider_keeps_keys_to_itself():
    before = stripe.api_key
    provider = StripeProvider(SECRET_KEY, WEBHOOK_SECRET, api_base="http://127.0.0.1:9")
    assert stripe.api_key == before is None
    assert SECRET_KEY not in repr(provider) and WEBHOOK_SECRET not in repr(provider)


# ---------------------------------------------------------------------- webhook verification (offline)


@pytest.fixture
def provider():
    return StripeProvider(SECRET_KEY, WEBHOOK_SECRET, api_base="http://127.0.0.1:9")


def test_parse_event_verifies_then_maps(provider):
    body = event_body("payment_intent.succeeded", intent(amount_received=1000), event_id="evt_ok")
    mapped = provider.parse_event(body.encode(), sign(body, WEBHOOK_SECRET))
    assert (mapped.event_id, mapped.kind, mapped.amount_cents) == ("evt_ok", PAYMENT_SUCCEEDED, 1000)


@pytest.mark.parametrize(
    "mangle",
    [
        lambda body, header: (body.replace(b"1000", b"1001"), header),  # tampered body
        lambda body, header: (body, sign(body, "whsec_other")),  # another secret
        lambda body, header: (body, sign(body, WEBHOOK_SECRET, timestamp=int(time.time()) - 301)),  # stale
        lambda body, header: (body, None),  # no header
        lambda body, header: (body, header.replace("v1=", "v0=")),  # another scheme
        lambda body, header: (b"\xff" + body, sign(body, WEBHOOK_SECRET)),  # not UTF-8
    ],
)
def test_parse_event_refuses(provider, mangle):
    body = event_body("payment_intent.succeeded", intent(amount_received=1000)).encode()
    bad_body, bad_header = mangle(body, sign(body, WEBHOOK_SECRET))
    with pytest.raises(InvalidSignature):
        provider.parse_event(bad_body, bad_header)


@pytest.mark.parametrize("body", ["{not json", "[1, 2]", '"text"', '{"object": "event"}'])
def test_signed_but_malformed_body_is_refused(provider, body):
    with pytest.raises(InvalidSignature):
        provider.parse_event(body, sign(body, WEBHOOK_SECRET))


def test_missing_keys_fail_at_the_call_not_at_construction():
    provider = StripeProvider(None, None, api_base="http://127.0.0.1:9")  # a commune half configured
    body = event_body("payment_intent.succeeded", intent())
    with pytest.raises(InvalidSignature):
        provider.parse_event(body, sign(body, "whsec_x"))


def test_empty_webhook_secret_refuses_everything():
    provider = StripeProvider(SECRET_KEY, "", api_base="http://127.0.0.1:9")
    body = event_body("payment_intent.succeeded", intent())
    with pytest.raises(InvalidSignature):
        provider.parse_event(body, sign(body, ""))

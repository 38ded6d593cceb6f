"""The gateway's billing routes and the cart's composition with billing, without a broker: the
service's route methods run with fake booking/billing proxies that answer like the RPC contract (and
fail like DeadlineProxy does when a service is down)."""

import json

import pytest
from nameko.testing.services import worker_factory
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from gateway import cart_billing
from gateway.errors import error_response
from gateway.openapi import document
from gateway.service import GatewayService
from services.common.errors import Conflict, NotFound, ServiceError, ServiceTimeout, ServiceUnavailable

COMMUNE = "6f1c1d7e-2f0a-4d8e-9a55-0a1b2c3d4e5f"
ACTIVITY = "0b7e7c55-9a0a-4c1e-8d55-1a2b3c4d5e6f"
PAYMENT = "a3c4a4a2-6d7b-4f0e-9a1d-2b3c4d5e6f70"
CHILD = "c9d8e7f6-1111-4222-8333-944455566677"


class Fake:
    """A proxy that records its calls and answers from `answers` (a value, or an exception to raise)."""

    def __init__(self, **answers):
        self.answers = answers
        self.calls = []

    def __getattr__(self, method):
        if method not in self.answers:
            raise AttributeError(method)

        def call(*args, **kwargs):
            self.calls.append((method, args, kwargs))
            answer = self.answers[method]
            if isinstance(answer, BaseException):
                raise answer
            return answer(*args, **kwargs) if callable(answer) else answer

        return call


def gateway(booking=None, billing=None, environment="local"):
    booking = booking or Fake()
    return worker_factory(
        GatewayService,
        booking=booking,
        booking_validation=booking,  # the same service, with validation's longer deadline
        billing=billing or Fake(),
        config={"ENVIRONMENT": environment, "PUBLIC_URL": "http://portail.test"},
    )


def request(method, path, body=None, headers=None, raw=None):
    headers = {"Authorization": "Bearer token", **(headers or {})}
    if raw is not None:
        builder = EnvironBuilder(method=method, path=path, data=raw, headers=headers)
    else:
        builder = EnvironBuilder(method=method, path=path, json=body, headers=headers)
    return Request(builder.get_environ())


def call(handler, req, *args):
    """What JsonHttpEntrypoint does: the handler's response, or its error as the JSON error body."""
    try:
        response = handler(req, *args)
    except ServiceError as exc:
        response = error_response(exc)
    text = response.get_data(as_text=True)
    return response.status_code, (
        json.loads(text) if text and response.mimetype == "application/json" else text
    )


def book_item(item_id, date="2026-12-07"):
    return {"id": item_id, "child_id": CHILD, "activity_id": ACTIVITY, "date": date, "action": "book"}


def payment(**fields):
    return {
        "id": PAYMENT,
        "commune_id": COMMUNE,
        "provider": "demo",
        "amount_cents": 750,
        "total_cents": 750,
        "credit_used_cents": 0,
        "status": "pending",
        "checkout_url": f"http://portail.test/payments/demo/{PAYMENT}",
        "client_secret": None,
        "provider_error": None,
        "refunded_cents": 0,
        "days": [],
        **fields,
    }


# --- GET /api/v1/cart -------------------------------------------------------------------------


def test_cart_items_carry_their_price_and_the_cart_its_total():
    cart = {"items": [book_item("i1"), book_item("i2", "2026-12-08")]}
    quote = {
        "items": [
            {"id": "i2", "unit_price_cents": 415, "amount_cents": 415},
            {"id": "i1", "unit_price_cents": 415, "amount_cents": 415},
        ],
        "total_cents": 830,
        "communes": [{"commune_id": COMMUNE, "total_cents": 830}],
    }
    billing = Fake(quote=quote)
    svc = gateway(Fake(get_cart=cart), billing)
    status, body = call(svc.get_cart, request("GET", "/api/v1/cart"))
    assert status == 200
    assert [(i["id"], i["unit_price_cents"], i["amount_cents"]) for i in body["items"]] == [
        ("i1", 415, 415),
        ("i2", 415, 415),
    ]
    assert body["total_cents"] == 830 and body["prices_unavailable"] is False
    assert billing.calls == [("quote", (cart["items"],), {})]  # the items exactly as booking gave them


@pytest.mark.parametrize("failure", [ServiceUnavailable(), ServiceTimeout(), NotFound()])
def test_cart_is_still_shown_when_billing_does_not_answer(failure):
    cart = {"items": [book_item("i1")]}
    svc = gateway(Fake(get_cart=cart), Fake(quote=failure))
    status, body = call(svc.get_cart, request("GET", "/api/v1/cart"))
    assert status == 200
    assert body["prices_unavailable"] is True and body["total_cents"] is None
    assert body["items"] == [{**book_item("i1"), "unit_price_cents": None, "amount_cents": None}]


def test_an_empty_cart_costs_nothing_without_asking_billing():
    billing = Fake(quote=AssertionError("not called"))
    svc = gateway(Fake(get_cart={"items": []}), billing)
    status, body = call(svc.get_cart, request("GET", "/api/v1/cart"))
    assert (status, body) == (200, {"items": [], "total_cents": 0, "prices_unavailable": False})
    assert billing.calls == []


def test_an_item_missing_from_the_quote_shows_no_price_rather_than_a_wrong_one():
    cart = {"items": [book_item("i1"), book_item("i2")]}
    priced = cart_billing.priced_cart(
        cart, {"items": [{"id": "i1", "unit_price_cents": 100, "amount_cents": 100}]}
    )
    assert priced["items"][1]["unit_price_cents"] is None and priced["items"][1]["amount_cents"] is None


# --- POST /api/v1/cart/validate ---------------------------------------------------------------


def held(date, booking_id):
    return {
        "child_id": CHILD,
        "activity_id": ACTIVITY,
        "date": date,
        "action": "book",
        "outcome": "pending_payment",
        "booking_id": booking_id,
        "hold_expires_at": "2026-12-01T10:30:00+00:00",
    }


VALIDATION = {
    "results": [
        held("2026-12-07", "b1"),
        {"child_id": CHILD, "activity_id": ACTIVITY, "date": "2026-12-08", "action": "book",
         "outcome": "confirmed", "booking_id": "b2"},
        {"child_id": CHILD, "activity_id": ACTIVITY, "date": "2026-12-09", "action": "book",
         "outcome": "rejected", "reason": "FULL"},
        held("2026-12-10", "b4"),
    ],
    "payment": None,
}  # fmt: skip


def test_validation_creates_the_payment_of_the_held_days_with_the_same_key():
    second = payment(id="another", commune_id="other-commune")
    billing = Fake(create_payment={"payments": [payment(), second]})
    svc = gateway(Fake(validate_cart=VALIDATION), billing)
    status, body = call(
        svc.validate_cart, request("POST", "/api/v1/cart/validate", headers={"Idempotency-Key": "k-7"})
    )
    assert status == 200
    assert body["results"] == VALIDATION["results"]
    assert body["payment"] == payment() and body["payments"] == [payment(), second]
    assert body["payment_error"] is None
    ((method, (key, holds), _),) = billing.calls
    assert method == "create_payment" and key == "k-7"
    assert holds == [
        {"booking_id": "b1", "child_id": CHILD, "activity_id": ACTIVITY, "date": "2026-12-07",
         "hold_expires_at": "2026-12-01T10:30:00+00:00"},
        {"booking_id": "b4", "child_id": CHILD, "activity_id": ACTIVITY, "date": "2026-12-10",
         "hold_expires_at": "2026-12-01T10:30:00+00:00"},
    ]  # fmt: skip


def test_validation_without_held_days_asks_billing_nothing():
    validation = {"results": [VALIDATION["results"][1]], "payment": None}
    billing = Fake(create_payment=AssertionError("not called"))
    svc = gateway(Fake(validate_cart=validation), billing)
    status, body = call(
        svc.validate_cart, request("POST", "/api/v1/cart/validate", headers={"Idempotency-Key": "k"})
    )
    assert (
        status == 200 and body["payment"] is None and body["payments"] == [] and body["payment_error"] is None
    )
    assert billing.calls == []


@pytest.mark.parametrize("failure", [ServiceUnavailable(), ServiceTimeout(), RuntimeError("boom")])
def test_validation_is_never_a_5xx_when_billing_fails(failure):
    svc = gateway(Fake(validate_cart=VALIDATION), Fake(create_payment=failure))
    status, body = call(
        svc.validate_cart, request("POST", "/api/v1/cart/validate", headers={"Idempotency-Key": "k"})
    )
    assert status == 200
    assert body["results"] == VALIDATION["results"]  # the held places are reported
    assert body["payment"] is None and body["payments"] == []
    assert body["payment_error"] == "BILLING_UNAVAILABLE"


def test_a_billing_refusal_is_reported_by_its_code():
    refused = Conflict("Paiement non configuré.")
    refused.code = "PAYMENT_NOT_CONFIGURED"
    svc = gateway(Fake(validate_cart=VALIDATION), Fake(create_payment=refused))
    status, body = call(
        svc.validate_cart, request("POST", "/api/v1/cart/validate", headers={"Idempotency-Key": "k"})
    )
    assert status == 200 and body["payment_error"] == "PAYMENT_NOT_CONFIGURED"


def test_a_replay_after_a_billing_failure_retries_the_payment():
    answers = iter([ServiceUnavailable(), {"payments": [payment()]}])

    def create_payment(key, holds):
        answer = next(answers)
        if isinstance(answer, Exception):
            raise answer
        return answer

    billing = Fake(create_payment=create_payment)
    svc = gateway(Fake(validate_cart=VALIDATION), billing)
    first = call(
        svc.validate_cart, request("POST", "/api/v1/cart/validate", headers={"Idempotency-Key": "k"})
    )[1]
    replay = call(
        svc.validate_cart, request("POST", "/api/v1/cart/validate", headers={"Idempotency-Key": "k"})
    )[1]
    assert first["payment_error"] == "BILLING_UNAVAILABLE" and replay["payment"]["id"] == PAYMENT
    assert [c[1][0] for c in billing.calls] == ["k", "k"]


# --- agents: tariffs, payment settings, refunds ----------------------------------------------

TARIFF_PATH = f"/api/v1/agent/communes/{COMMUNE}/activities/{ACTIVITY}/tariff"


def test_tariff_with_bands_goes_to_billing_without_the_unused_price():
    bands = [{"qf_max": 500, "unit_price_cents": 150}, {"qf_max": None, "unit_price_cents": 450}]
    billing = Fake(set_tariff=lambda c, a, t: {"commune_id": c, "activity_id": a, **t})
    svc = gateway(billing=billing)
    status, body = call(svc.set_tariff, request("PUT", TARIFF_PATH, {"bands": bands}), COMMUNE, ACTIVITY)
    assert status == 200
    assert billing.calls == [
        ("set_tariff", (COMMUNE, ACTIVITY, {"bands": bands, "cancellation_refund": "refund"}), {})
    ]
    assert svc.attach_caller.called  # the agent's identity travels with the RPC


@pytest.mark.parametrize(
    "body, fields",
    [
        ({}, {"unit_price_cents", "bands"}),
        (
            {"unit_price_cents": 100, "bands": [{"qf_max": None, "unit_price_cents": 1}]},
            {"unit_price_cents", "bands"},
        ),
        ({"unit_price_cents": -1}, {"unit_price_cents"}),
        ({"unit_price_cents": 1_000_001}, {"unit_price_cents"}),
        ({"unit_price_cents": "4.15"}, {"unit_price_cents"}),
        ({"bands": []}, {"bands"}),
        ({"bands": [{"qf_max": None}]}, {"bands"}),
        ({"unit_price_cents": 100, "cancellation_refund": "cash"}, {"cancellation_refund"}),
    ],
)
def test_bad_tariffs_are_refused_naming_the_fields(body, fields):
    billing = Fake(set_tariff=AssertionError("not called"))
    svc = gateway(billing=billing)
    status, answer = call(svc.set_tariff, request("PUT", TARIFF_PATH, body), COMMUNE, ACTIVITY)
    assert status == 400 and answer["error"] == "VALIDATION_ERROR"
    assert set(answer["fields"]) == fields
    assert billing.calls == []


def test_tariff_of_another_commune_is_not_found_and_bad_ids_never_reach_billing():
    svc = gateway(billing=Fake(get_tariff=NotFound()))
    assert call(svc.get_tariff, request("GET", TARIFF_PATH), COMMUNE, ACTIVITY)[0] == 404
    billing = Fake(get_tariff=AssertionError("not called"))
    svc = gateway(billing=billing)
    assert call(svc.get_tariff, request("GET", TARIFF_PATH), "not-a-uuid", ACTIVITY)[0] == 404
    assert billing.calls == []


def test_payment_settings_stripe_needs_its_keys_and_demo_sends_none():
    path = f"/api/v1/agent/communes/{COMMUNE}/payment-settings"
    billing = Fake(set_payment_settings=lambda c, s: {"commune_id": c, "provider": s["provider"]})
    svc = gateway(billing=billing)
    status, answer = call(svc.set_payment_settings, request("PUT", path, {"provider": "stripe"}), COMMUNE)
    assert status == 400 and set(answer["fields"]) == {"secret_key", "webhook_secret"}
    assert call(svc.set_payment_settings, request("PUT", path, {"provider": "cash"}), COMMUNE)[0] == 400
    assert call(svc.set_payment_settings, request("PUT", path, {"provider": "demo"}), COMMUNE)[0] == 200
    stripe = {"provider": "stripe", "secret_key": "sk_test_1", "webhook_secret": "whsec_1"}
    assert call(svc.set_payment_settings, request("PUT", path, stripe), COMMUNE)[0] == 200
    assert [c[1][1] for c in billing.calls] == [{"provider": "demo"}, stripe]


def test_payment_settings_refused_in_production_keep_billing_s_code():
    disabled = ServiceError("Le fournisseur de démonstration est désactivé.")
    disabled.code = "DEMO_PROVIDER_DISABLED"
    svc = gateway(billing=Fake(set_payment_settings=disabled))
    path = f"/api/v1/agent/communes/{COMMUNE}/payment-settings"
    status, body = call(svc.set_payment_settings, request("PUT", path, {"provider": "demo"}), COMMUNE)
    assert status == 400 and body["error"] == "DEMO_PROVIDER_DISABLED"


REFUNDS = f"/api/v1/agent/communes/{COMMUNE}/payments/{PAYMENT}/refunds"


def test_refund_needs_an_idempotency_key():
    billing = Fake(refund_payment=AssertionError("not called"))
    svc = gateway(billing=billing)
    status, body = call(svc.refund_payment, request("POST", REFUNDS, {"amount_cents": 100}), COMMUNE, PAYMENT)
    assert status == 400 and set(body["fields"]) == {"Idempotency-Key"}
    long_key = {"Idempotency-Key": "k" * 201}
    assert (
        call(svc.refund_payment, request("POST", REFUNDS, {"amount_cents": 100}, long_key), COMMUNE, PAYMENT)[
            0
        ]
        == 400
    )
    assert billing.calls == []


@pytest.mark.parametrize("amount", [0, -5, "100", None])
def test_refund_amount_is_a_positive_integer(amount):
    svc = gateway(billing=Fake(refund_payment=AssertionError("not called")))
    req = request("POST", REFUNDS, {"amount_cents": amount}, {"Idempotency-Key": "r-1"})
    status, body = call(svc.refund_payment, req, COMMUNE, PAYMENT)
    assert status == 400 and set(body["fields"]) == {"amount_cents"}


def test_refund_is_created_then_replayed():
    refund = {"id": "r", "payment_id": PAYMENT, "amount_cents": 300, "status": "succeeded", "reason": "agent"}
    answers = iter([refund, {**refund, "replayed": True}])
    billing = Fake(refund_payment=lambda *args: next(answers))
    svc = gateway(billing=billing)
    req = lambda: request("POST", REFUNDS, {"amount_cents": 300}, {"Idempotency-Key": "r-1"})  # noqa: E731
    assert call(svc.refund_payment, req(), COMMUNE, PAYMENT) == (201, refund)
    assert call(svc.refund_payment, req(), COMMUNE, PAYMENT) == (200, refund)  # the flag is not shown
    assert billing.calls[0] == ("refund_payment", (COMMUNE, PAYMENT, 300, "r-1"), {})


def test_refund_beyond_what_was_paid_is_a_conflict():
    exceeds = Conflict("Le remboursement dépasse le montant payé.")
    exceeds.code = "REFUND_EXCEEDS_PAID"
    svc = gateway(billing=Fake(refund_payment=exceeds))
    req = request("POST", REFUNDS, {"amount_cents": 300}, {"Idempotency-Key": "r-2"})
    status, body = call(svc.refund_payment, req, COMMUNE, PAYMENT)
    assert status == 409 and body["error"] == "REFUND_EXCEEDS_PAID"


# --- parents: payment, account ----------------------------------------------------------------


def test_payment_and_account_are_the_callers_or_not_found():
    billing = Fake(
        get_payment=payment(), family_account={"commune_id": COMMUNE, "balance_cents": 0, "entries": []}
    )
    svc = gateway(billing=billing)
    status, body = call(svc.get_payment, request("GET", f"/api/v1/payments/{PAYMENT}"), PAYMENT)
    assert status == 200 and body["id"] == PAYMENT
    status, body = call(svc.family_account, request("GET", f"/api/v1/communes/{COMMUNE}/account"), COMMUNE)
    assert status == 200 and body["balance_cents"] == 0
    assert [c[:2] for c in billing.calls] == [("get_payment", (PAYMENT,)), ("family_account", (COMMUNE,))]
    hidden = gateway(billing=Fake(get_payment=NotFound(), family_account=NotFound()))
    assert call(hidden.get_payment, request("GET", "/"), PAYMENT)[0] == 404
    assert call(hidden.family_account, request("GET", "/"), COMMUNE)[0] == 404
    assert call(hidden.get_payment, request("GET", "/"), "../etc")[0] == 404


def test_billing_routes_are_in_the_openapi_document():
    paths = document("http://portail.test")["paths"]
    assert set(paths["/api/v1/agent/communes/{commune_id}/activities/{activity_id}/tariff"]) == {"get", "put"}
    assert set(paths["/api/v1/agent/communes/{commune_id}/payment-settings"]) == {"get", "put"}
    refunds = paths["/api/v1/agent/communes/{commune_id}/payments/{payment_id}/refunds"]["post"]
    assert refunds["requestBody"]["content"]["application/json"]["schema"]["required"] == ["amount_cents"]
    assert {"201", "200", "409"} <= set(refunds["responses"])
    assert "security" in paths["/api/v1/payments/{payment_id}"]["get"]
    assert "security" in paths["/api/v1/communes/{commune_id}/account"]["get"]
    assert "security" not in paths["/webhooks/stripe"]["post"]  # the signature is the authentication
    assert set(paths["/payments/demo/{payment_id}"]) == {"get", "post"}
    tariff = paths["/api/v1/agent/communes/{commune_id}/activities/{activity_id}/tariff"]["put"]
    assert "bands" in tariff["requestBody"]["content"]["application/json"]["schema"]["properties"]

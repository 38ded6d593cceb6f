"""Billing over HTTP, the whole stack with the demo provider on PostgreSQL: an agent prices a prepaid
activity by family quotient, a parent books a week, pays it on the demo page, and the days become
booked while the family account shows the charge and the payment. Also: a forged Stripe webhook, and
what another family's parent cannot see."""

import datetime as dt
import time
from urllib.parse import urlparse

import pytest

from tests.e2e.towns import Town, linked_family, next_monday, prepaid_activity, set_tariff

pytestmark = pytest.mark.e2e

BANDS = [
    {"qf_max": 500, "unit_price_cents": 150},
    {"qf_max": 1000, "unit_price_cents": 415},
    {"qf_max": None, "unit_price_cents": 600},
]


def wait_for(check, timeout=20.0):
    """Poll `check` until it returns something truthy (effects travel through events)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def test_a_prepaid_week_paid_on_the_demo_page(platform, admin):
    town = Town(platform, *admin, "Payville")
    agent = town.agent_client
    settings = agent.request(
        "PUT", town.path("/payment-settings"), token=town.agent, json={"provider": "demo"}
    )
    assert settings.status_code == 200, settings.text
    assert agent.get(town.path("/payment-settings"), token=town.agent).json()["provider"] == "demo"

    camp = prepaid_activity(town)
    assert set_tariff(town, camp["id"], {"bands": BANDS})["bands"] == BANDS
    tariff = agent.get(town.path(f"/activities/{camp['id']}/tariff"), token=town.agent)
    assert tariff.status_code == 200 and tariff.json()["unit_price_cents"] is None
    refused = agent.request(
        "PUT", town.path(f"/activities/{camp['id']}/tariff"), token=town.agent, json={"unit_price_cents": -1}
    )
    assert refused.status_code == 400 and set(refused.json()["fields"]) == {"unit_price_cents"}

    client, token, _, (lea,) = linked_family(platform, town, ["Léa"], quotient=800)  # second band: 4,15 €
    monday = next_monday()
    week = {"from": monday.isoformat(), "to": (monday + dt.timedelta(days=4)).isoformat()}
    added = client.post(
        "/api/v1/cart/items",
        token=token,
        json={
            "child_id": lea["id"],
            "activity_id": camp["id"],
            "period": {**week, "weekdays": camp["weekdays"]},
        },
    )
    assert added.status_code == 201, added.text

    cart = client.get("/api/v1/cart", token=token).json()
    assert cart["prices_unavailable"] is False
    assert [(i["unit_price_cents"], i["amount_cents"]) for i in cart["items"]] == [(415, 415)] * 5
    assert cart["total_cents"] == 2075

    validated = client.post("/api/v1/cart/validate", token=token, headers={"Idempotency-Key": "week-1"})
    assert validated.status_code == 200, validated.text
    answer = validated.json()
    assert [r["outcome"] for r in answer["results"]] == ["pending_payment"] * 5
    payment = answer["payment"]
    assert answer["payments"] == [payment] and answer["payment_error"] is None
    assert payment["status"] == "pending" and payment["provider"] == "demo"
    assert (payment["amount_cents"], payment["total_cents"], payment["credit_used_cents"]) == (2075, 2075, 0)
    assert sorted(d["date"] for d in payment["days"]) == [
        (monday + dt.timedelta(days=n)).isoformat() for n in range(5)
    ]
    checkout = urlparse(payment["checkout_url"])
    assert checkout.path == f"/payments/demo/{payment['id']}"
    assert payment["checkout_url"].startswith(platform.env["PUBLIC_URL"])

    replay = client.post("/api/v1/cart/validate", token=token, headers={"Idempotency-Key": "week-1"})
    assert replay.status_code == 200 and replay.json()["payment"]["id"] == payment["id"]  # not a second one

    browser = platform.client()  # the demo page needs no login
    page = browser.get(checkout.path)
    assert page.status_code == 200 and page.headers["Content-Type"].startswith("text/html")
    assert '<html lang="fr">' in page.text and "Paiement de TEST" in page.text
    assert "20,75\u00a0€" in page.text and 'value="succeeded"' in page.text

    paid = browser.post(checkout.path, json={"outcome": "succeeded"})
    assert paid.status_code == 200, paid.text
    assert paid.json()["status"] == "succeeded"
    mine = client.get(f"/api/v1/payments/{payment['id']}", token=token)
    assert mine.status_code == 200 and mine.json()["status"] == "succeeded"
    assert 'name="outcome"' not in browser.get(checkout.path).text  # decided: no buttons any more

    def booked_days():
        days = client.get(f"/api/v1/children/{lea['id']}/calendar", token=token, params=week).json()["days"]
        booked = [d for d in days if d["activity_id"] == camp["id"] and d["state"] == "booked"]
        return booked if len(booked) == 5 else None

    assert wait_for(booked_days), "the paid days were not confirmed by booking"

    account = client.get(f"/api/v1/communes/{town.id}/account", token=token)
    assert account.status_code == 200, account.text
    entries = account.json()["entries"]
    assert sorted((e["kind"], e["amount_cents"]) for e in entries) == [("charge", -2075), ("payment", 2075)]
    assert all(e["payment_id"] == payment["id"] for e in entries)
    assert account.json()["balance_cents"] == 0

    # the agent sees the payment of their commune and refunds one day, once per key
    assert agent.get(f"/api/v1/payments/{payment['id']}", token=town.agent).status_code == 200
    refunds = town.path(f"/payments/{payment['id']}/refunds")
    first = agent.post(
        refunds, token=town.agent, json={"amount_cents": 415}, headers={"Idempotency-Key": "r-1"}
    )
    assert first.status_code == 201, first.text
    again = agent.post(
        refunds, token=town.agent, json={"amount_cents": 415}, headers={"Idempotency-Key": "r-1"}
    )
    assert again.status_code == 200 and again.json() == first.json()  # the first refund, not a second
    too_much = agent.post(
        refunds, token=town.agent, json={"amount_cents": 2000}, headers={"Idempotency-Key": "r-2"}
    )
    assert too_much.status_code == 409 and too_much.json()["error"] == "REFUND_EXCEEDS_PAID"
    no_key = agent.post(refunds, token=town.agent, json={"amount_cents": 1})
    assert no_key.status_code == 400 and set(no_key.json()["fields"]) == {"Idempotency-Key"}


def test_forged_webhooks_and_other_families_see_nothing(platform, admin):
    town = Town(platform, *admin, "Privpay")
    camp = prepaid_activity(town)
    set_tariff(town, camp["id"], {"unit_price_cents": 500})
    client, token, _, (child,) = linked_family(platform, town, ["Chloé"], quotient=300)
    day = next_monday().isoformat()
    client.post(
        "/api/v1/cart/items",
        token=token,
        json={"child_id": child["id"], "activity_id": camp["id"], "dates": [day]},
    )
    payment = client.post("/api/v1/cart/validate", token=token, headers={"Idempotency-Key": "p"}).json()[
        "payment"
    ]
    assert payment["amount_cents"] == 500

    other_town = Town(platform, *admin, "Elsewhere")
    stranger, stranger_token, _, _ = linked_family(platform, other_town, ["Autre"])
    hidden = stranger.get(f"/api/v1/payments/{payment['id']}", token=stranger_token)
    assert hidden.status_code == 404 and "Chloé" not in hidden.text
    assert stranger.get(f"/api/v1/communes/{town.id}/account", token=stranger_token).status_code == 404
    own = stranger.get(f"/api/v1/communes/{other_town.id}/account", token=stranger_token)
    assert own.status_code == 200 and own.json()["balance_cents"] == 0 and own.json()["entries"] == []
    other_agent = other_town.agent_client.get(f"/api/v1/payments/{payment['id']}", token=other_town.agent)
    assert other_agent.status_code == 404
    assert platform.client().get(f"/api/v1/payments/{payment['id']}").status_code == 401

    forged = platform.client().post(
        "/webhooks/stripe",
        data=b'{"id": "evt_forged", "type": "payment_intent.succeeded", "data": {"object": {"id": "pi_x"}}}',
        headers={
            "Stripe-Signature": f"t={int(time.time())},v1={'0' * 64}",
            "Content-Type": "application/json",
        },
    )
    assert forged.status_code == 400 and forged.json()["error"] == "INVALID_SIGNATURE"
    not_utf8 = platform.client().post(
        "/webhooks/stripe", data=b"\xff\xfe", headers={"Stripe-Signature": "t=1,v1=0"}
    )
    assert not_utf8.status_code == 400 and not_utf8.json()["error"] == "INVALID_SIGNATURE"

    # the page's own form (no JavaScript): a refused test payment charges nothing
    failed = platform.client().post(f"/payments/demo/{payment['id']}", data={"outcome": "failed"})
    assert failed.status_code == 200 and failed.headers["Content-Type"].startswith("text/html")
    assert "Paiement de test refusé" in failed.text and 'name="outcome"' not in failed.text
    assert client.get(f"/api/v1/payments/{payment['id']}", token=token).json()["status"] == "failed"
    account = client.get(f"/api/v1/communes/{town.id}/account", token=token).json()
    assert account["entries"] == [] and account["balance_cents"] == 0
    assert platform.client().get("/payments/demo/00000000-0000-4000-8000-000000000000").status_code == 404


def test_billing_down_holds_the_places_and_a_replay_gets_the_payment(platform, admin):
    town = Town(platform, *admin, "Downville")
    camp = prepaid_activity(town)
    set_tariff(town, camp["id"], {"unit_price_cents": 320})
    client, token, _, (child,) = linked_family(platform, town, ["Noé"])
    days = [next_monday().isoformat(), (next_monday() + dt.timedelta(days=1)).isoformat()]
    client.post(
        "/api/v1/cart/items",
        token=token,
        json={"child_id": child["id"], "activity_id": camp["id"], "dates": days},
    )

    platform.stack.kill("billing")
    try:
        cart = client.get("/api/v1/cart", token=token)
        assert cart.status_code == 200 and cart.json()["prices_unavailable"] is True
        assert [i["amount_cents"] for i in cart.json()["items"]] == [None, None]
        validated = client.post("/api/v1/cart/validate", token=token, headers={"Idempotency-Key": "down-1"})
        assert validated.status_code == 200, validated.text
        assert [r["outcome"] for r in validated.json()["results"]] == ["pending_payment"] * 2  # places held
        assert validated.json()["payment"] is None
        assert validated.json()["payment_error"] == "BILLING_UNAVAILABLE"
    finally:
        platform.stack.start_service("billing")
        platform.stack.wait_ready()

    replay = client.post("/api/v1/cart/validate", token=token, headers={"Idempotency-Key": "down-1"})
    assert replay.status_code == 200 and replay.json()["results"] == validated.json()["results"]
    payment = replay.json()["payment"]
    assert (
        payment["status"] == "pending"
        and payment["amount_cents"] == 640
        and replay.json()["payment_error"] is None
    )
    again = client.post("/api/v1/cart/validate", token=token, headers={"Idempotency-Key": "down-1"})
    assert again.json()["payments"] == [payment]  # one payment for the key, however often it is replayed

"""Stripe's webhook route and the demo payment page, without a broker (fake billing proxy), and the
French formatting of amounts and dates."""

import io
from urllib.parse import quote

import pytest
from test_gateway_billing import PAYMENT, Fake, call, gateway, payment, request
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from gateway.demo_page import euros, french_date, page_context
from gateway.routes.payment_pages import allowed_return, return_origins
from services.common.errors import NotFound, ServiceError, ServiceUnavailable

DEMO = f"/payments/demo/{PAYMENT}"


def signature_error():
    error = ServiceError("Signature invalide.")
    error.code = "INVALID_SIGNATURE"
    return error


# --- POST /webhooks/stripe --------------------------------------------------------------------


def test_webhook_hands_the_raw_body_and_signature_to_billing_without_a_token():
    billing = Fake(handle_provider_event={"status": "processed"})
    svc = gateway(billing=billing)
    raw = '{"id": "evt_1", "type": "payment_intent.succeeded", "note": "été"}'.encode()
    req = request("POST", "/webhooks/stripe", raw=raw, headers={"Stripe-Signature": "t=1,v1=abc"})
    status, body = call(svc.stripe_webhook, req)
    assert (status, body) == (200, {"received": True})
    assert billing.calls == [("handle_provider_event", ("stripe", raw.decode(), "t=1,v1=abc"), {})]
    assert not svc.authenticator.called  # no access token is looked at


def test_webhook_bad_signature_is_a_400():
    svc = gateway(billing=Fake(handle_provider_event=signature_error()))
    req = request("POST", "/webhooks/stripe", raw=b"{}", headers={"Stripe-Signature": "t=1,v1=forged"})
    status, body = call(svc.stripe_webhook, req)
    assert status == 400 and body["error"] == "INVALID_SIGNATURE"


def test_webhook_refuses_non_utf8_oversized_bodies_and_huge_signatures_before_billing():
    billing = Fake(handle_provider_event=AssertionError("not called"))
    svc = gateway(billing=billing)
    status, body = call(svc.stripe_webhook, request("POST", "/webhooks/stripe", raw=b"\xff\xfe{}"))
    assert status == 400 and body["error"] == "INVALID_SIGNATURE"
    status, body = call(svc.stripe_webhook, request("POST", "/webhooks/stripe", raw=b"x" * (64 * 1024 + 1)))
    assert status == 413 and body["error"] == "PAYLOAD_TOO_LARGE"
    huge = request("POST", "/webhooks/stripe", raw=b"{}", headers={"Stripe-Signature": "v" * 5000})
    assert call(svc.stripe_webhook, huge)[0] == 400
    assert billing.calls == []


def test_webhook_when_billing_is_down_asks_stripe_to_retry():
    svc = gateway(billing=Fake(handle_provider_event=ServiceUnavailable()))
    assert call(svc.stripe_webhook, request("POST", "/webhooks/stripe", raw=b"{}"))[0] == 503


# --- the demo page ----------------------------------------------------------------------------

DAYS = [
    {"booking_id": "b2", "child_id": "c", "activity_id": "a", "date": "2026-12-08", "unit_price_cents": 415},
    {"booking_id": "b1", "child_id": "c", "activity_id": "a", "date": "2026-12-07", "unit_price_cents": 415},
]


def test_demo_page_is_french_labelled_test_and_shows_amount_and_days():
    billing = Fake(demo_payment=payment(amount_cents=1250, total_cents=1250, days=DAYS))
    svc = gateway(billing=billing)
    status, html = call(svc.demo_payment_page, request("GET", DEMO), PAYMENT)
    assert status == 200
    assert '<html lang="fr">' in html and 'name="viewport"' in html
    assert "Paiement de TEST — aucun argent n'est débité" in html
    assert "12,50\u00a0€" in html
    assert html.index("lundi 7 décembre 2026") < html.index("mardi 8 décembre 2026")  # in date order
    assert 'name="outcome" value="succeeded"' in html and 'name="outcome" value="failed"' in html
    assert "Simuler un paiement accepté" in html and "Simuler un paiement refusé" in html
    assert f'action="/payments/demo/{PAYMENT}"' in html
    assert not svc.authenticator.called


def test_demo_page_escapes_what_it_shows():
    evil = payment(days=[{**DAYS[0], "date": "<script>alert(1)</script>"}], status="<b>x</b>")
    svc = gateway(billing=Fake(demo_payment=evil))
    html = call(svc.demo_payment_page, request("GET", DEMO), PAYMENT)[1]
    assert "<script>" not in html and "&lt;script&gt;" in html and "<b>x</b>" not in html


def test_a_decided_payment_shows_no_buttons():
    svc = gateway(billing=Fake(demo_payment=payment(status="succeeded")))
    html = call(svc.demo_payment_page, request("GET", DEMO), PAYMENT)[1]
    assert "Paiement accepté" in html and 'name="outcome"' not in html


@pytest.mark.parametrize(
    "answer", [NotFound(), payment(provider="stripe"), "disabled"], ids=["unknown", "stripe", "disabled"]
)
def test_demo_page_of_an_unknown_or_non_demo_payment_is_not_found(answer):
    if answer == "disabled":
        answer = ServiceError("désactivé")
        answer.code = "DEMO_PROVIDER_DISABLED"
    svc = gateway(billing=Fake(demo_payment=answer))
    status, html = call(svc.demo_payment_page, request("GET", DEMO), PAYMENT)
    assert status == 404 and "introuvable" in html and 'name="outcome"' not in html


def test_demo_routes_are_not_found_in_production_without_asking_billing():
    billing = Fake(demo_payment=AssertionError("not called"), demo_outcome=AssertionError("not called"))
    svc = gateway(billing=billing, environment="production")
    assert call(svc.demo_payment_page, request("GET", DEMO), PAYMENT)[0] == 404
    status, body = call(svc.demo_payment_outcome, request("POST", DEMO, {"outcome": "succeeded"}), PAYMENT)
    assert status == 404 and body["error"] == "NOT_FOUND"
    assert call(svc.demo_payment_outcome, request("POST", DEMO, {"outcome": "?"}), PAYMENT)[0] == 404
    form = request("POST", DEMO, raw=b"outcome=succeeded")
    form.environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
    assert call(svc.demo_payment_outcome, form, PAYMENT)[0] == 404
    assert billing.calls == []


def test_demo_outcome_in_json_returns_the_payment():
    billing = Fake(demo_outcome=lambda pid, outcome: payment(status=outcome))
    svc = gateway(billing=billing)
    status, body = call(svc.demo_payment_outcome, request("POST", DEMO, {"outcome": "succeeded"}), PAYMENT)
    assert status == 200 and body["status"] == "succeeded"
    assert billing.calls == [("demo_outcome", (PAYMENT, "succeeded"), {})]
    status, body = call(svc.demo_payment_outcome, request("POST", DEMO, {"outcome": "maybe"}), PAYMENT)
    assert status == 400 and set(body["fields"]) == {"outcome"}
    disabled = ServiceError("désactivé")
    disabled.code = "DEMO_PROVIDER_DISABLED"
    hidden = gateway(billing=Fake(demo_outcome=disabled))
    assert call(hidden.demo_payment_outcome, request("POST", DEMO, {"outcome": "failed"}), PAYMENT)[0] == 404


def form_post(outcome):
    req = request("POST", DEMO, raw=f"outcome={outcome}".encode())
    req.environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
    return req


def test_demo_form_posts_the_outcome_and_shows_the_result():
    billing = Fake(demo_outcome=lambda pid, outcome: payment(status=outcome, days=DAYS))
    svc = gateway(billing=billing)
    status, html = call(svc.demo_payment_outcome, form_post("failed"), PAYMENT)
    assert status == 200 and "Paiement de test refusé" in html and 'role="status"' in html
    assert billing.calls == [("demo_outcome", (PAYMENT, "failed"), {})]
    status, html = call(svc.demo_payment_outcome, form_post("nonsense"), PAYMENT)
    assert status == 400 and 'role="alert"' in html
    assert len(billing.calls) == 1


def test_a_late_contrary_outcome_shows_the_payment_as_it_stands():
    # billing never undoes a success: a "failed" after it leaves the payment succeeded
    svc = gateway(billing=Fake(demo_outcome=payment(status="succeeded")))
    html = call(svc.demo_payment_outcome, form_post("failed"), PAYMENT)[1]
    assert "Paiement accepté" in html and "Paiement de test refusé" not in html


# --- the way back (?return_to=) ---------------------------------------------------------------

ORIGINS = return_origins({"PAYMENT_RETURN_ORIGINS": "http://localhost:8001, https://factures.example"})
BACK = "http://localhost:8001/factures/inv-1"


@pytest.mark.parametrize(
    "value",
    [
        BACK,
        "http://localhost:8001/",
        "http://LOCALHOST:8001/factures/inv-1?x=1#top",
        "https://factures.example/factures/inv-1",
        "https://factures.example:443/factures/inv-1",  # the default port, written out
        "http://localhost:8000/payments",  # the gateway's own PUBLIC_URL origin (default here)
    ],
)
def test_a_return_address_on_an_allowed_origin_is_kept(value):
    assert allowed_return(value, ORIGINS) == value


@pytest.mark.parametrize(
    "value",
    [
        "http://evil.example/factures/inv-1",  # another host
        "http://localhost.evil.example:8001/",
        "https://localhost:8001/factures/inv-1",  # scheme mismatch
        "http://factures.example/factures/inv-1",
        "http://localhost:8002/factures/inv-1",  # port mismatch
        "http://localhost/factures/inv-1",
        "https://factures.example:8443/",
        "javascript:alert(1)",
        "javascript://localhost:8001/%0aalert(1)",
        "data:text/html,<script>alert(1)</script>",
        "//evil.example/factures",
        "//localhost:8001/factures",  # scheme-relative: not an absolute address
        "/factures/inv-1",
        "http://localhost:8001@evil.example/",  # userinfo: the host is evil.example
        "http://user:pw@localhost:8001/",
        "http://localhost:8001\\@evil.example/",
        "http://localhost:8001/x\r\nSet-Cookie: a=1",
        'http://localhost:8001/"><script>alert(1)</script>',
        "http://localhost:99999/",
        "http://localhost:80x1/",
        "http:///factures",
        BACK + "?" + "a" * 2000,  # overlong
        "",
        None,
        ["http://localhost:8001/"],
    ],
)
def test_a_return_address_elsewhere_is_refused(value):
    assert allowed_return(value, ORIGINS) is None


def test_return_origins_default_to_the_local_invoices_site_and_the_gateway_itself():
    origins = return_origins({"PUBLIC_URL": "https://portail.example/"})
    assert origins == {("http", "localhost", 8001), ("https", "portail.example", 443)}
    assert return_origins({"PAYMENT_RETURN_ORIGINS": "", "PUBLIC_URL": "http://p.test"}) == {
        ("http", "p.test", 80)
    }
    assert return_origins({"PAYMENT_RETURN_ORIGINS": "nonsense, ftp://x.test"}) == {
        ("http", "localhost", 8000)
    }


def demo_get(return_to):
    return request("GET", f"{DEMO}?return_to={quote(return_to, safe='')}")


def test_the_demo_page_links_back_to_an_allowed_return_address_escaped():
    svc = gateway(billing=Fake(demo_payment=payment(invoice_id="inv-1")))
    back = BACK + "?a=1&b=2"
    status, html = call(svc.demo_payment_page, demo_get(back), PAYMENT)
    assert status == 200
    assert f'<a class="back" href="{BACK}?a=1&amp;b=2">Retour à la facture</a>' in html
    assert f'name="return_to" value="{BACK}?a=1&amp;b=2"' in html  # the form carries it along


def test_a_booking_payment_links_back_with_a_generic_label():
    svc = gateway(billing=Fake(demo_payment=payment(status="succeeded")))
    html = call(svc.demo_payment_page, demo_get("http://localhost:8001/"), PAYMENT)[1]
    assert '<a class="back" href="http://localhost:8001/">Retour au site</a>' in html
    assert "Vous pouvez fermer cette page" not in html


@pytest.mark.parametrize(
    "value",
    [
        "http://evil.example/",
        "javascript:alert(1)",
        "//evil.example",
        "http://localhost:8001@evil.example/",
        'http://localhost:8001/"><script>alert(1)</script>',
        BACK + "?" + "a" * 2000,
    ],
)
def test_the_demo_page_shows_no_link_for_another_return_address_nor_repeats_it(value):
    svc = gateway(billing=Fake(demo_payment=payment(invoice_id="inv-1")))
    status, html = call(svc.demo_payment_page, demo_get(value), PAYMENT)
    assert status == 200 and 'class="back"' not in html and 'name="return_to"' not in html
    assert "Retour à la facture" not in html
    assert "evil" not in html and "script>alert" not in html and "aaaaaaaaaa" not in html


def test_the_allowlist_is_the_setting():
    svc = gateway(billing=Fake(demo_payment=payment(invoice_id="inv-1")))
    svc.config = {**svc.config, "PAYMENT_RETURN_ORIGINS": "https://factures.example"}
    html = call(svc.demo_payment_page, demo_get(BACK), PAYMENT)[1]
    assert 'class="back"' not in html
    html = call(svc.demo_payment_page, demo_get("https://factures.example/factures/inv-1"), PAYMENT)[1]
    assert '<a class="back" href="https://factures.example/factures/inv-1">' in html


def test_the_result_page_after_the_form_links_back():
    billing = Fake(demo_outcome=lambda pid, outcome: payment(status=outcome, invoice_id="inv-1"))
    svc = gateway(billing=billing)
    req = request("POST", DEMO, raw=f"outcome=succeeded&return_to={quote(BACK, safe='')}".encode())
    req.environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
    status, html = call(svc.demo_payment_outcome, req, PAYMENT)
    assert status == 200 and "Votre facture est réglée" in html
    assert f'<a class="back" href="{BACK}">Retour à la facture</a>' in html
    evil = request("POST", DEMO, raw=b"outcome=failed&return_to=http%3A%2F%2Fevil.example%2F")
    evil.environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
    status, html = call(svc.demo_payment_outcome, evil, PAYMENT)
    assert status == 200 and 'class="back"' not in html and "evil" not in html


def test_an_unknown_payment_still_links_back_but_never_elsewhere():
    svc = gateway(billing=Fake(demo_payment=NotFound()))
    status, html = call(svc.demo_payment_page, demo_get(BACK), PAYMENT)
    assert status == 404 and f'<a class="back" href="{BACK}">Retour au site</a>' in html
    status, html = call(svc.demo_payment_page, demo_get("http://evil.example/"), PAYMENT)
    assert status == 404 and 'class="back"' not in html


# --- formatting -------------------------------------------------------------------------------


def test_amounts_and_dates_in_french():
    assert euros(1250) == "12,50\u00a0€"
    assert euros(5) == "0,05\u00a0€"
    assert euros(123456789) == "1\u202f234\u202f567,89\u00a0€"
    assert euros(-300) == "-3,00\u00a0€"
    assert french_date("2026-12-01") == "mardi 1er décembre 2026"
    assert french_date("2027-08-15") == "dimanche 15 août 2027"
    assert french_date("n'importe quoi") == "n'importe quoi"


def test_page_context_mentions_the_credit_used_only_when_there_is_one():
    assert page_context(payment())["credit_used"] is None
    context = page_context(payment(amount_cents=700, total_cents=1000, credit_used_cents=300))
    assert (context["amount"], context["total"], context["credit_used"]) == (
        "7,00\u00a0€",
        "10,00\u00a0€",
        "3,00\u00a0€",
    )


def test_webhook_refuses_an_oversized_chunked_body_without_reading_it_all():
    billing = Fake(handle_provider_event=AssertionError("not called"))
    svc = gateway(billing=billing)
    stream = io.BytesIO(b"x" * (10 * 1024 * 1024))
    environ = EnvironBuilder(method="POST", path="/webhooks/stripe", input_stream=stream).get_environ()
    environ.pop("CONTENT_LENGTH", None)  # chunked: no length announced
    environ["wsgi.input_terminated"] = True
    status, body = call(svc.stripe_webhook, Request(environ))
    assert status == 413 and body["error"] == "PAYLOAD_TOO_LARGE"
    assert stream.tell() <= 64 * 1024 + 1 + 65536  # at most the limit (plus one buffer) was read

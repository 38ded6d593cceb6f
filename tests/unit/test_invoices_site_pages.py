"""The invoices site's pages, run in-process against a stand-in for the gateway that speaks the
agreed contract (OIDC discovery, JWKS, token endpoint; GET /api/v1/invoices, one invoice, its PDF,
POST .../payments). No broker: the browser is werkzeug's test client, the gateway a requests adapter."""

import base64
import hashlib
import io
import json
import re
import time
from html import unescape
from urllib.parse import parse_qs, urlsplit

import pytest
import requests
from joserfc import jwt
from joserfc.jwk import RSAKey
from werkzeug.routing import Map, Rule
from werkzeug.test import Client
from werkzeug.wrappers import Request

from invoices_site.settings import SiteSettings
from invoices_site.views import Site

ISSUER = "http://portal.test"
SITE = "http://factures.test"
GATEWAY = "http://gateway.internal"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)

INVOICES = [
    {
        "id": "inv-1",
        "number": "2026-0042",
        "commune": "Saint-Lô <script>alert(1)</script>",
        "month": "2026-11",
        "total_cents": 123456,
        "paid_cents": 0,
        "status": "issued",
        "due_date": "2026-12-15",
    },
    {
        "id": "inv-2",
        "number": "2026-0007",
        "commune": "Agneaux",
        "month": "2026-10",
        "total_cents": 1250,
        "paid_cents": 1250,
        "status": "paid",
        "due_date": "2026-11-15",
    },
]
DETAIL = {
    **INVOICES[0],
    "family": "Famille Martin",
    "issued_at": "2026-12-01T08:00:00+00:00",
    "credit_applied_cents": 456,
    "paid_cents": 456,  # billing counts the credit applied at issue as paid
    "amount_due_cents": 123000,
    "payment_instructions": "Chèque à l'ordre du Trésor public",
    "lines": [
        {
            "child_first_name": "Léa",
            "activity_name": "Cantine",
            "unit_price_cents": 350,
            "quantity": 12,
            "amount_cents": 4200,
        }
    ],
}
PDF = b"%PDF-1.4\n" + b"x" * 200_000 + b"\n%%EOF\n"


class StandInGateway(requests.adapters.BaseAdapter):
    """The gateway as the site sees it, with knobs to misbehave."""

    def __init__(self):
        super().__init__()
        self.codes = {}
        self.calls = []
        self.invoices = list(INVOICES)
        self.reject_tokens = False
        self.list_status = None  # e.g. (404, "NOT_FOUND")
        self.id_token_overrides = {}
        self.up = True
        self.checkout_url = ISSUER + "/payments/demo/pay-1"

    def authorize(self, location):
        """What the provider does for a browser with a live SSO session: a code for the request."""
        query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
        code = f"code-{len(self.codes)}"
        self.codes[code] = query
        return query, code

    def send(self, request, **kwargs):
        if not self.up:
            raise requests.ConnectionError("down")
        url = urlsplit(request.url)
        assert f"{url.scheme}://{url.netloc}" == GATEWAY, request.url  # server-side calls only
        self.calls.append((request.method, url.path, dict(request.headers), request.body))
        handler = getattr(self, "route_" + request.method.lower(), None)
        status, body, headers = handler(url.path, request)
        response = requests.Response()
        response.status_code = status
        response.headers = requests.structures.CaseInsensitiveDict(headers)
        response.raw = io.BytesIO(body)
        response.url = request.url
        response.request = request
        return response

    def close(self):
        pass

    def json(self, status, payload):
        return status, json.dumps(payload).encode(), {"Content-Type": "application/json"}

    def authorized(self, request):
        return not self.reject_tokens and request.headers.get("Authorization") == "Bearer access-token"

    def route_get(self, path, request):
        if path == "/.well-known/openid-configuration":
            return self.json(
                200,
                {
                    "issuer": ISSUER,
                    "authorization_endpoint": ISSUER + "/oidc/authorize",
                    "token_endpoint": ISSUER + "/oidc/token",
                    "jwks_uri": ISSUER + "/oidc/jwks",
                    "end_session_endpoint": ISSUER + "/oidc/logout",
                },
            )
        if path == "/oidc/jwks":
            return self.json(200, {"keys": [KEY.as_dict(private=False)]})
        if not self.authorized(request):
            return self.json(
                401, {"error": "INVALID_TOKEN", "message": "Jeton d'accès absent, invalide ou expiré."}
            )
        if path == "/api/v1/invoices":
            if self.list_status:
                status, code = self.list_status
                return self.json(status, {"error": code, "message": "Message de la passerelle."})
            return self.json(200, self.invoices)
        if path == "/api/v1/invoices/inv-1":
            return self.json(200, DETAIL)
        if path == "/api/v1/invoices/inv-1/pdf":
            return 200, PDF, {"Content-Type": "application/pdf", "Content-Length": str(len(PDF))}
        if path == "/api/v1/invoices/boom":
            return 500, b"Traceback (most recent call last): secret", {"Content-Type": "text/plain"}
        return self.json(404, {"error": "NOT_FOUND", "message": "Introuvable."})

    def route_post(self, path, request):
        if path == "/oidc/token":
            form = {k: v[0] for k, v in parse_qs(request.body).items()}
            asked = self.codes.pop(form.get("code"), None)
            challenge = base64.urlsafe_b64encode(
                hashlib.sha256(form.get("code_verifier", "").encode()).digest()
            ).rstrip(b"=")
            if (
                asked is None
                or challenge.decode() != asked["code_challenge"]
                or form.get("redirect_uri") != asked["redirect_uri"]
                or form.get("client_id") != "invoices"
            ):
                return self.json(400, {"error": "invalid_grant"})
            now = int(time.time())
            claims = {
                "iss": ISSUER,
                "aud": "invoices",
                "sub": "account-1",
                "nonce": asked["nonce"],
                "iat": now,
                "exp": now + 600,
                "email": "parent@example.org",
                **self.id_token_overrides,
            }
            id_token = jwt.encode({"alg": "RS256", "kid": "k1"}, claims, KEY)
            return self.json(
                200,
                {
                    "token_type": "Bearer",
                    "access_token": "access-token",
                    "expires_in": 600,
                    "id_token": id_token,
                },
            )
        if not self.authorized(request):
            return self.json(401, {"error": "INVALID_TOKEN", "message": "Jeton."})
        if path == "/api/v1/invoices/inv-1/payments":
            return self.json(
                201,
                {
                    "id": "pay-1",
                    "provider": "demo",
                    "amount_cents": 122544,
                    "status": "pending",
                    "expires_at": "2026-12-01T09:00:00+00:00",
                    "checkout_url": self.checkout_url,
                },
            )
        if path == "/api/v1/invoices/inv-2/payments":
            return self.json(409, {"error": "INVOICE_PAID", "message": "Cette facture est déjà payée."})
        return self.json(404, {"error": "NOT_FOUND", "message": "Introuvable."})


URLS = Map(
    [
        Rule("/", endpoint="home", methods=["GET"]),
        Rule("/auth/login", endpoint="login", methods=["GET"]),
        Rule("/auth/callback", endpoint="callback", methods=["GET"]),
        Rule("/auth/logout", endpoint="logout", methods=["POST"]),
        Rule("/factures/<invoice_id>", endpoint="invoice", methods=["GET"]),
        Rule("/factures/<invoice_id>/pdf", endpoint="pdf", methods=["GET"]),
        Rule("/factures/<invoice_id>/payer", endpoint="pay", methods=["POST"]),
    ]
)


def wsgi_app(site):
    """The routes of service.py, without nameko."""

    def app(environ, start_response):
        request = Request(environ)
        endpoint, values = URLS.bind_to_environ(environ).match()
        response = getattr(site, endpoint)(request, **values)
        return response(environ, start_response)

    return app


@pytest.fixture
def gateway():
    return StandInGateway()


@pytest.fixture
def site(gateway):
    http = requests.Session()
    http.mount(GATEWAY, gateway)
    settings = SiteSettings(public_url=SITE, gateway_url=GATEWAY, issuer=ISSUER, session_secret="test secret")
    return Site(settings, http)


@pytest.fixture
def browser(site):
    return Client(wsgi_app(site))


def set_cookies(response):
    return response.headers.getlist("Set-Cookie")


def sign_in(browser, gateway, path="/"):
    """Visit `path` without a session, go through the provider (SSO: no form), come back."""
    to_provider = browser.get(path)
    assert to_provider.status_code == 302
    query, code = gateway.authorize(to_provider.headers["Location"])
    back = browser.get(f"/auth/callback?code={code}&state={query['state']}")
    return to_provider, query, back


def html(response):
    return response.get_data(as_text=True)


def text(response):
    return unescape(html(response))


def test_a_visit_without_a_session_goes_to_the_provider_with_pkce(browser, gateway):
    response = browser.get("/")
    location = response.headers["Location"]
    assert response.status_code == 302 and location.startswith(ISSUER + "/oidc/authorize?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert query["client_id"] == "invoices" and query["redirect_uri"] == SITE + "/auth/callback"
    assert query["code_challenge_method"] == "S256" and len(query["code_challenge"]) == 43
    assert query["state"] and query["nonce"] and query["state"] != query["nonce"]
    (cookie,) = set_cookies(response)
    assert cookie.startswith("pf_invoices_login=") and "HttpOnly" in cookie and "SameSite=Lax" in cookie
    assert "Path=/auth" in cookie and "Secure" not in cookie  # http site; https sets Secure
    assert query["state"] not in cookie and query["nonce"] not in cookie  # sealed


def test_signing_in_lists_the_family_invoices_in_french_and_escaped(browser, gateway):
    _, _, back = sign_in(browser, gateway)
    assert back.status_code == 303 and back.headers["Location"] == "/"
    session_cookie = next(c for c in set_cookies(back) if c.startswith("pf_invoices="))
    assert "HttpOnly" in session_cookie and "SameSite=Lax" in session_cookie
    assert any(c.startswith("pf_invoices_login=;") for c in set_cookies(back))  # spent
    token_call = next(call for call in gateway.calls if call[1] == "/oidc/token")
    assert "code_verifier=" in token_call[3] and "Authorization" not in token_call[2]  # public client

    page = browser.get("/")
    body = html(page)
    assert page.status_code == 200 and '<html lang="fr">' in body
    assert page.headers["Content-Security-Policy"].startswith("default-src 'none'")
    assert "<h1>Mes factures</h1>" in body
    assert "1\u202f234,56\u00a0€" in body and "12,50\u00a0€" in body
    assert "novembre 2026" in body and "octobre 2026" in body and "15 décembre 2026" in body
    assert "À payer" in body and "Payée" in body
    assert "<script>alert(1)</script>" not in body and "&lt;script&gt;" in body
    assert 'href="/factures/inv-1"' in body and "Voir la facture n° 2026-0042" in body
    list_call = next(call for call in gateway.calls if call[1] == "/api/v1/invoices")
    assert list_call[2]["Authorization"] == "Bearer access-token"


def test_no_invoices_reads_aucune_facture(browser, gateway):
    gateway.invoices = []
    sign_in(browser, gateway)
    assert "Aucune facture" in html(browser.get("/"))


def test_an_error_of_the_list_is_shown_as_a_french_message(browser, gateway):
    gateway.list_status = (404, "NOT_FOUND")
    sign_in(browser, gateway)
    page = browser.get("/")
    assert page.status_code == 404 and "Message de la passerelle." in html(page)


def test_an_invoice_shows_its_lines_totals_and_what_remains(browser, gateway):
    sign_in(browser, gateway)
    page = browser.get("/factures/inv-1")
    body = html(page)
    assert page.status_code == 200 and "<h1>Facture n° 2026-0042</h1>" in body
    assert "Léa" in body and "Cantine" in body and "3,50\u00a0€" in body and "42,00\u00a0€" in body
    assert "Avoir déduit" in body and "4,56\u00a0€" in body
    assert "Reste à payer" in body and "1\u202f230,00\u00a0€" in body  # 1234,56 - 4,56 (credit, paid)
    assert "Chèque à l'ordre du Trésor public" in unescape(body)
    assert 'href="/factures/inv-1/pdf"' in body and "Payer 1\u202f230,00\u00a0€ en ligne" in body
    assert "1er décembre 2026" in body


def test_the_pdf_is_streamed_from_the_gateway(browser, gateway):
    sign_in(browser, gateway)
    response = browser.get("/factures/inv-1/pdf")
    assert response.status_code == 200 and response.headers["Content-Type"] == "application/pdf"
    assert response.get_data() == PDF and response.headers["Content-Length"] == str(len(PDF))
    assert response.headers["Content-Disposition"] == 'attachment; filename="facture-inv-1.pdf"'
    assert response.headers["Cache-Control"] == "no-store"


def csrf_of(body):
    return re.search(r'name="csrf_token" value="([^"]+)"', body).group(1)


def test_paying_creates_a_payment_and_goes_to_its_checkout_page(browser, gateway):
    sign_in(browser, gateway)
    body = html(browser.get("/factures/inv-1"))
    key = re.search(r'name="idempotency_key" value="([^"]+)"', body).group(1)
    refused = browser.post("/factures/inv-1/payer", data={"idempotency_key": key})
    assert refused.status_code == 400 and not any(c[1].endswith("/payments") for c in gateway.calls)
    paid = browser.post("/factures/inv-1/payer", data={"csrf_token": csrf_of(body), "idempotency_key": key})
    assert paid.status_code == 303
    assert paid.headers["Location"] == (
        ISSUER + "/payments/demo/pay-1?return_to=http%3A%2F%2Ffactures.test%2Ffactures%2Finv-1"
    )
    call = next(c for c in gateway.calls if c[1] == "/api/v1/invoices/inv-1/payments")
    assert call[2]["Idempotency-Key"] == key and call[2]["Authorization"] == "Bearer access-token"


@pytest.mark.parametrize(
    "checkout_url, expected",
    [
        # the gateway's demo page, on its public origin (PUBLIC_URL, here the issuer) or internal one
        (
            ISSUER + "/payments/demo/pay-1",
            ISSUER + "/payments/demo/pay-1?return_to=http%3A%2F%2Ffactures.test%2Ffactures%2Finv-1",
        ),
        (
            "http://PORTAL.test:80/payments/demo/pay-1?lang=fr",
            "http://portal.test:80/payments/demo/pay-1?lang=fr"  # (the Location's host in lower case)
            "&return_to=http%3A%2F%2Ffactures.test%2Ffactures%2Finv-1",
        ),
        (
            GATEWAY + "/payments/demo/pay-1",
            GATEWAY + "/payments/demo/pay-1?return_to=http%3A%2F%2Ffactures.test%2Ffactures%2Finv-1",
        ),
        # a real provider on another origin: untouched
        (
            "https://checkout.stripe.com/c/pay/cs_test_a1#fid",
            "https://checkout.stripe.com/c/pay/cs_test_a1#fid",
        ),
        ("https://portal.test/payments/demo/pay-1", "https://portal.test/payments/demo/pay-1"),  # scheme
        ("http://portal.test:8080/payments/demo/pay-1", "http://portal.test:8080/payments/demo/pay-1"),
        ("http://portal.test@evil.example/x", "http://portal.test@evil.example/x"),
    ],
)
def test_only_the_gateways_own_checkout_page_gets_the_way_back(browser, gateway, checkout_url, expected):
    gateway.checkout_url = checkout_url
    sign_in(browser, gateway)
    body = html(browser.get("/factures/inv-1"))
    paid = browser.post("/factures/inv-1/payer", data={"csrf_token": csrf_of(body)})
    assert paid.status_code == 303 and paid.headers["Location"] == expected


def test_an_api_refusal_is_shown_in_french_on_the_invoice(browser, gateway):
    sign_in(browser, gateway)
    body = html(browser.get("/factures/inv-1"))
    refused = browser.post("/factures/inv-2/payer", data={"csrf_token": csrf_of(body)})
    assert refused.status_code == 409 and "Cette facture est déjà payée." in html(refused)


def test_gateway_failures_are_french_pages_without_traces(browser, gateway):
    sign_in(browser, gateway)
    boom = browser.get("/factures/boom")
    assert boom.status_code == 500 and "Traceback" not in html(boom) and "secret" not in html(boom)
    assert "erreur inattendue" in html(boom)
    missing = browser.get("/factures/nope")
    assert missing.status_code == 404 and "Cette facture est introuvable." in html(missing)
    gateway.up = False
    down = browser.get("/")
    assert down.status_code == 503 and "Réessayez" in html(down)


def test_a_refused_access_token_signs_in_again_and_returns_to_the_same_page(browser, gateway):
    sign_in(browser, gateway)
    gateway.reject_tokens = True
    again = browser.get("/factures/inv-1")
    assert again.status_code == 302 and again.headers["Location"].startswith(ISSUER + "/oidc/authorize?")
    gateway.reject_tokens = False
    query, code = gateway.authorize(again.headers["Location"])
    back = browser.get(f"/auth/callback?code={code}&state={query['state']}")
    assert back.status_code == 303 and back.headers["Location"] == "/factures/inv-1"


def test_an_expired_access_token_signs_in_again_before_calling_the_api(browser, gateway, monkeypatch):
    sign_in(browser, gateway)
    calls = len(gateway.calls)
    later = time.time() + 601
    monkeypatch.setattr(time, "time", lambda: later)
    again = browser.get("/")
    assert again.status_code == 302 and again.headers["Location"].startswith(ISSUER + "/oidc/authorize?")
    assert len(gateway.calls) == calls  # discovery is cached, and the API was not called


@pytest.mark.parametrize(
    "override, message",
    [
        ({"nonce": "another"}, "n'a pas pu être vérifiée"),
        ({"aud": "portal"}, "n'a pas pu être vérifiée"),
        ({"iss": "http://evil.test"}, "n'a pas pu être vérifiée"),
    ],
)
def test_a_bad_id_token_signs_nobody_in(browser, gateway, override, message):
    gateway.id_token_overrides = override
    _, _, back = sign_in(browser, gateway)
    assert back.status_code == 400 and message in text(back)
    assert not any(c.startswith("pf_invoices=") and "pf_invoices=;" not in c for c in set_cookies(back))


def test_a_callback_with_another_state_or_an_error_signs_nobody_in(browser, gateway):
    first = browser.get("/")
    query, code = gateway.authorize(first.headers["Location"])
    forged = browser.get(f"/auth/callback?code={code}&state=forged")
    assert forged.status_code == 400 and not any(c.startswith("pf_invoices=") for c in set_cookies(forged))
    denied = browser.get(f"/auth/callback?error=access_denied&state={query['state']}")
    assert denied.status_code == 400 and "La connexion n'a pas abouti." in text(denied)
    stranger = Client(browser.application)  # no login cookie at all
    assert stranger.get(f"/auth/callback?code={code}&state={query['state']}").status_code == 400


def test_the_return_path_cannot_leave_the_site(browser, gateway):
    to_provider = browser.get("/auth/login?next=//evil.example/")
    query, code = gateway.authorize(to_provider.headers["Location"])
    back = browser.get(f"/auth/callback?code={code}&state={query['state']}")
    assert back.status_code == 303 and back.headers["Location"] == "/"


def test_signing_out_ends_the_session_here_and_at_the_provider(browser, gateway):
    sign_in(browser, gateway)
    body = html(browser.get("/"))
    assert browser.post("/auth/logout", data={"csrf_token": "forged"}).status_code == 400
    out = browser.post("/auth/logout", data={"csrf_token": csrf_of(body)})
    location = out.headers["Location"]
    assert out.status_code == 303 and location.startswith(ISSUER + "/oidc/logout?")
    query = {k: v[0] for k, v in parse_qs(urlsplit(location).query).items()}
    assert query["post_logout_redirect_uri"] == SITE + "/" and query["id_token_hint"].count(".") == 2
    assert any(c.startswith("pf_invoices=;") for c in set_cookies(out))
    back = browser.get("/?state=out")
    assert back.status_code == 200 and "Vous êtes déconnecté" in html(back)
    assert 'href="/auth/login"' in html(back)
    assert browser.get("/").status_code == 302  # no session left


def test_a_forged_or_foreign_session_cookie_is_ignored(browser, gateway):
    browser.set_cookie("pf_invoices", "forged-value", domain="localhost")
    assert browser.get("/").status_code == 302

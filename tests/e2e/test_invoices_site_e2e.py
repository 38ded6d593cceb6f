"""The invoices site in a real headless Chromium, against the real processes: single sign-on from the
portal (no password asked), sign-out (single logout: the password is asked again), and a direct visit
without a provider session (the provider's login form, then back on the site signed in).

The browser steps are scenarios (plain functions below) that tests/browser.py runs in a process of
their own; the tests prepare accounts and check what the scenarios report."""

import time
from urllib.parse import urlsplit

import pytest
import requests

from tests.browser import new_context, run_scenario

pytestmark = pytest.mark.e2e

PORTAL_CALLBACK = "http://localhost:8000/auth/callback"


def portal_authorize_url(issuer):
    """What the portal's "Se connecter" button opens: the provider's authorization endpoint."""
    return (
        f"{issuer}/oidc/authorize?response_type=code&client_id=portal"
        "&redirect_uri=http%3A%2F%2Flocalhost%3A8000%2Fauth%2Fcallback&scope=openid%20email"
        "&state=portal-state&nonce=portal-nonce&code_challenge_method=S256"
        "&code_challenge=E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"
    )


@pytest.fixture(scope="module")
def site_url(platform):
    url = platform.env["INVOICES_PUBLIC_URL"]
    health = url.replace("localhost", "127.0.0.1") + "/health"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(health, timeout=2).status_code == 200:
                return url
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("the invoices site did not start (see its log in the e2e logs folder)")
        time.sleep(0.2)


# --- browser scenarios (run in their own process by tests/browser.py) ---------------------------


class Visits:
    """Every document the browser asked for in the main frame, redirects included, to prove which
    pages a person went through."""

    def __init__(self, page):
        self.urls = []
        page.on("request", lambda request: request.is_navigation_request() and self.urls.append(request.url))

    def paths(self):
        return [urlsplit(url).path for url in self.urls]


def sign_in_on_provider_form(page, email, password):
    assert urlsplit(page.url).path == "/oidc/login", page.url
    assert page.locator("html").get_attribute("lang") == "fr"
    page.get_by_label("Adresse e-mail").fill(email)
    page.locator("input[type=password]").fill(password)
    page.locator("button[type=submit]").click()


def expect_signed_in_list(page, site_url):
    page.wait_for_url(site_url + "/")
    assert page.locator("html").get_attribute("lang") == "fr"
    assert page.get_by_role("heading", level=1).inner_text() == "Mes factures"
    assert "Aucune facture" in page.locator("main").inner_text()
    assert page.get_by_role("button", name="Se déconnecter").is_visible()


def sso_then_logout(browser, site_url, issuer, email, password):
    context = new_context(browser)
    page = context.new_page()
    # the portal's own callback page is not part of this stack: the browser answers it itself
    context.route(
        lambda url: url.startswith(PORTAL_CALLBACK + "?"),
        lambda route: route.fulfill(
            status=200, content_type="text/html", body="<html lang=fr>Portail</html>"
        ),
    )

    # 1. on the portal: the provider's login form, the password typed once
    page.goto(portal_authorize_url(issuer))
    sign_in_on_provider_form(page, email, password)
    page.wait_for_url(lambda url: url.startswith(PORTAL_CALLBACK + "?"))
    assert "code=" in page.url and "state=portal-state" in page.url

    # 2. the invoices site: signed in through the provider without seeing its form
    visits = Visits(page)
    page.goto(site_url + "/")
    expect_signed_in_list(page, site_url)
    sso_paths = visits.paths()
    session = [c for c in context.cookies(site_url) if c["name"] == "pf_invoices"]

    # 3. sign out: the site's session and the provider's are both ended
    page.get_by_role("button", name="Se déconnecter").click()
    page.wait_for_url(site_url + "/?state=out")
    signed_out_text = page.locator("main").inner_text()
    session_after_logout = [c for c in context.cookies(site_url) if c["name"] == "pf_invoices"]

    # 4. back on the site: the provider's login form again; the password brings the parent back
    visits = Visits(page)
    page.get_by_role("link", name="Se connecter").click()
    page.wait_for_url(lambda url: urlsplit(url).path == "/oidc/login")
    sign_in_on_provider_form(page, email, password)
    expect_signed_in_list(page, site_url)
    context.close()
    return {
        "sso_paths": sso_paths,
        "session_cookie": session,
        "signed_out_text": signed_out_text,
        "session_after_logout": session_after_logout,
        "relogin_paths": visits.paths(),
    }


def direct_visit(browser, site_url, email, password):
    context = new_context(browser)
    page = context.new_page()
    visits = Visits(page)
    page.goto(site_url + "/factures/pas-encore-de-facture")
    page.wait_for_url(lambda url: urlsplit(url).path == "/oidc/login")
    sign_in_on_provider_form(page, email, password)
    # back on the page first asked for, signed in
    page.wait_for_url(site_url + "/factures/pas-encore-de-facture")
    invoice_text = page.locator("main").inner_text()
    signed_in = page.get_by_role("button", name="Se déconnecter").is_visible()
    page.goto(site_url + "/")
    expect_signed_in_list(page, site_url)
    context.close()
    return {"paths": visits.paths(), "invoice_text": invoice_text, "signed_in": signed_in}


# --- tests -------------------------------------------------------------------------------------


def test_a_parent_signed_in_on_the_portal_is_not_asked_again_and_signs_out_everywhere(platform, site_url):
    email, password = platform.registered_account()
    seen = run_scenario(
        sso_then_logout, site_url=site_url, issuer=platform.env["PUBLIC_URL"], email=email, password=password
    )
    # single sign-on: through the provider's authorization endpoint, never its login form
    assert "/oidc/authorize" in seen["sso_paths"] and "/auth/callback" in seen["sso_paths"]
    assert "/oidc/login" not in seen["sso_paths"], seen["sso_paths"]
    (cookie,) = seen["session_cookie"]
    assert cookie["httpOnly"] and cookie["sameSite"] == "Lax"
    assert email not in cookie["value"] and "." not in cookie["value"].rstrip("=")  # sealed, not a JWT
    # single logout: the site's cookie is gone, and the provider asks for the password again
    assert "Vous êtes déconnecté" in seen["signed_out_text"]
    assert seen["session_after_logout"] == []
    assert "/oidc/login" in seen["relogin_paths"], seen["relogin_paths"]


def test_a_direct_visit_without_a_provider_session_shows_the_login_form_then_the_site(platform, site_url):
    email, password = platform.registered_account()
    seen = run_scenario(direct_visit, site_url=site_url, email=email, password=password)
    assert seen["paths"][:3] == ["/factures/pas-encore-de-facture", "/oidc/authorize", "/oidc/login"], seen
    assert seen["signed_in"]
    # no such invoice (the gateway has no invoice routes yet): a French message, never a trace
    assert "introuvable" in seen["invoice_text"] and "Traceback" not in seen["invoice_text"]

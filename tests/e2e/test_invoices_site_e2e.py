"""The invoices site in a real headless Chromium, against the real processes: single sign-on from the
portal (no password asked), sign-out (single logout: the password is asked again), and a direct visit
without a provider session (the provider's login form, then back on the site signed in). A parent
paying an invoice on the site is in test_invoicing_e2e.py, with the month that issues it.

The browser steps are scenarios (plain functions below) that tests/browser.py runs in a process of
their own; the tests prepare accounts and check what the scenarios report."""

from urllib.parse import urlsplit

import pytest

from tests.browser import new_context, run_scenario
from tests.e2e.towns import Visits, sign_in_on_portal, sign_in_on_provider_form

pytestmark = pytest.mark.e2e


# --- browser scenarios (run in their own process by tests/browser.py) ---------------------------


def expect_signed_in_list(page, site_url):
    page.wait_for_url(site_url + "/")
    assert page.locator("html").get_attribute("lang") == "fr"
    assert page.get_by_role("heading", level=1).inner_text() == "Mes factures"
    assert "Aucune facture" in page.locator("main").inner_text()
    assert page.get_by_role("button", name="Se déconnecter").is_visible()


def sso_then_logout(browser, site_url, issuer, email, password):
    context = new_context(browser)
    page = context.new_page()

    # 1. on the portal: the provider's login form, the password typed once
    sign_in_on_portal(context, page, issuer, email, password)

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
    # no such invoice: a French message, never a trace
    assert "introuvable" in seen["invoice_text"] and "Traceback" not in seen["invoice_text"]

"""Helpers shared by the e2e modules: a commune with its agent, a parent, INSEE codes."""

import base64
import datetime as dt
import hashlib
import itertools
import re
import secrets
from urllib.parse import parse_qs, quote, urlencode, urlsplit

_insee = itertools.count(10001)
CODE = re.compile(r"\b[0-9A-Z]{4}-[0-9A-Z]{4}-[0-9A-Z]{4}\b")


def new_insee():
    return f"{next(_insee) % 100000:05d}"


class Town:
    """A commune with its agent, as the admin sets it up through the API."""

    def __init__(self, platform, admin_client, admin_token, name):
        self.platform = platform
        created = admin_client.post(
            "/api/v1/admin/communes", token=admin_token, json={"name": name, "insee_code": new_insee()}
        )
        assert created.status_code == 201, created.text
        self.commune = created.json()
        self.id = self.commune["id"]
        self.agent_client = platform.client()
        agent_email, agent_password = platform.registered_account(self.agent_client)
        granted = admin_client.post(
            f"/api/v1/admin/communes/{self.id}/agents", token=admin_token, json={"email": agent_email}
        )
        assert granted.status_code == 201 and granted.json()["status"] == "granted", granted.text
        # the role is in tokens issued from now on
        self.agent = platform.login(self.agent_client, agent_email, agent_password)["access_token"]

    def path(self, suffix=""):
        return f"/api/v1/agent/communes/{self.id}{suffix}"

    def family(self, reference, email, quotient=None):
        body = {"reference": reference, "name": f"Famille {reference}", "email": email}
        if quotient is not None:
            body["quotient_familial"] = quotient
        response = self.agent_client.post(self.path("/families"), token=self.agent, json=body)
        assert response.status_code == 201, response.text
        return response.json()

    def child(self, family_id, first_name, birth_date="2018-05-04"):
        response = self.agent_client.post(
            self.path(f"/families/{family_id}/children"),
            token=self.agent,
            json={
                "first_name": first_name,
                "last_name": "Martin",
                "birth_date": birth_date,
                "school": "École Jaurès",
            },
        )
        assert response.status_code == 201, response.text
        return response.json()

    def code(self, family_id):
        response = self.agent_client.post(
            self.path(f"/families/{family_id}/adhesion-codes"), token=self.agent
        )
        assert response.status_code == 201, response.text
        return response.json()


def parent(platform):
    client = platform.client()
    address, password = platform.registered_account(client)
    return client, address, platform.login(client, address, password)["access_token"]


# --- billing (issue 5): prepaid activities, tariffs, a linked parent ----------------------------

WEEKDAYS = ["monday", "tuesday", "wednesday", "thursday", "friday"]
DEADLINE = {"days_before": 1, "at": "10:00"}


def next_monday(weeks_ahead=2):
    """A Monday at least a week ahead: booking and cancellation deadlines are never near."""
    today = dt.date.today()
    return today + dt.timedelta(days=7 * weeks_ahead - today.weekday())


def prepaid_activity(town, **fields):
    """A prepaid activity (places held until paid), Monday to Friday for four weeks."""
    start = next_monday()
    body = {
        "name": "Centre de loisirs",
        "kind": "holiday_camp",
        "billing_mode": "prepaid",
        "capacity": 10,
        "weekdays": WEEKDAYS,
        "start_date": start.isoformat(),
        "end_date": (start + dt.timedelta(days=27)).isoformat(),
        "booking_deadline": DEADLINE,
        "cancellation_deadline": DEADLINE,
        "hold_minutes": 30,
        **fields,
    }
    response = town.agent_client.post(town.path("/activities"), token=town.agent, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def set_tariff(town, activity_id, tariff):
    response = town.agent_client.request(
        "PUT", town.path(f"/activities/{activity_id}/tariff"), token=town.agent, json=tariff
    )
    assert response.status_code == 200, response.text
    return response.json()


def linked_family(platform, town, names, quotient=None):
    """A family (with this quotient) and its children, and a parent account linked to it by an
    adhesion code; returns (client, token, family, children)."""
    family = town.family(f"F-{platform.new_email()[:12]}", platform.new_email("famille"), quotient=quotient)
    children = [town.child(family["id"], name) for name in names]
    client, _, token = parent(platform)
    joined = client.post("/api/v1/adhesions", token=token, json={"code": town.code(family["id"])["code"]})
    assert joined.status_code == 201, joined.text
    return client, token, family, children


# --- the portal and the invoices site in a real browser (scenarios run by tests/browser.py) -------

PORTAL_CALLBACK = "http://localhost:8000/auth/callback"


def portal_authorize_url(issuer):
    """What the portal's "Se connecter" button opens: the provider's authorization endpoint, with a
    fresh state, nonce and PKCE challenge as the portal makes them for every sign-in. Returns (url,
    state). The nonce must be new: the provider refuses a nonce it has already seen for the client
    ("Replay attack", sent to the portal's callback), so a fixed one works once per stack."""
    state, nonce = secrets.token_urlsafe(16), secrets.token_urlsafe(16)
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    query = urlencode(
        {
            "response_type": "code",
            "client_id": "portal",
            "redirect_uri": PORTAL_CALLBACK,
            "scope": "openid email",
            "state": state,
            "nonce": nonce,
            "code_challenge_method": "S256",
            "code_challenge": challenge,
        },
        quote_via=quote,
    )
    return f"{issuer}/oidc/authorize?{query}", state


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


def sign_in_on_portal(context, page, issuer, email, password):
    """The parent signs in on the portal (the provider's login form, the password typed once); the
    portal's own callback page is not part of this stack: the browser answers it itself."""
    context.route(
        lambda url: url.startswith(PORTAL_CALLBACK + "?"),
        lambda route: route.fulfill(
            status=200, content_type="text/html", body="<html lang=fr>Portail</html>"
        ),
    )
    url, state = portal_authorize_url(issuer)
    page.goto(url)
    sign_in_on_provider_form(page, email, password)
    page.wait_for_url(lambda url: url.startswith(PORTAL_CALLBACK + "?"))
    answer = parse_qs(urlsplit(page.url).query)
    assert answer.get("state") == [state] and "code" in answer, page.url

"""The OpenID provider end to end on SQLite, without a broker: the forwarded requests go straight
to oidc.handle_http, as the identity service's `oidc_http` RPC does."""

import base64
import datetime as dt
from urllib.parse import parse_qs, urlencode, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from services.common import clock
from services.identity import accounts, keys, oidc
from services.identity.models import AuthorizationCode, Base, LoginSession, OutboxEvent
from services.identity.settings import IdentitySettings
from tests import oidc_harness as harness  # noqa: E402
from tests.oidc_harness import INVOICES_CB, ISSUER, PORTAL_CB  # noqa: E402, F401

CONFIG = {
    "OIDC_PORTAL_REDIRECT_URIS": PORTAL_CB,
    "OIDC_PORTAL_POST_LOGOUT_URIS": "http://portal.test/",
    "OIDC_INVOICES_REDIRECT_URIS": INVOICES_CB,
    "OIDC_INVOICES_POST_LOGOUT_URIS": "http://invoices.test/",
}
SETTINGS = IdentitySettings(public_url=ISSUER, issuer=ISSUER)
EMAIL = "parent@example.org"
from tests.oidc_harness import PASSWORD  # noqa: E402

VERIFIER = "correct-verifier-" + "x" * 40


@pytest.fixture
def session():
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        yield s


def make_account(session, email=EMAIL, verify=True):
    account = accounts.register(session, SETTINGS, email, PASSWORD, "fr")
    if verify:
        payloads = [e.payload for e in session.scalars(select(OutboxEvent)).all()]
        token = [p for p in payloads if p.get("email") == email][-1]["token"]
        accounts.verify_email(session, token)
    return account


class Browser(harness.Browser):
    """Sends what the gateway would forward straight to oidc.handle_http."""

    def __init__(self, session, config=CONFIG):
        super().__init__(self.handle, "203.0.113.7")
        self.session = session
        self.config = config  # a test may change it between requests

    def handle(self, request):
        return oidc.handle_http(self.session, SETTINGS, self.config, request)


def revoked_events(session):
    """The session ids announced as revoked (`session_revoked` outbox events), in order."""
    rows = session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
    return [e.payload["session_id"] for e in rows if e.event_type == "session_revoked"]


def authorize_params(client_id="portal", redirect_uri=PORTAL_CB, verifier=VERIFIER, **extra):
    extra.setdefault("state", "state-1")
    extra.setdefault("nonce", f"nonce-{client_id}-{len(extra) - 1}")
    return harness.authorize_params(verifier, client_id, redirect_uri, scope="openid email profile", **extra)


def sign_in(browser, params, email=EMAIL, password=PASSWORD):
    return harness.sign_in(browser, params, email, password)


def get_code(browser, params):
    response = browser.send("GET", "/oidc/authorize", params)
    assert response.status == 302, response.body
    assert response.location.startswith(params["redirect_uri"] + "?")
    assert response.query["state"] == params["state"]
    return response.query["code"]


def exchange(browser, code, client_id="portal", redirect_uri=PORTAL_CB, verifier=VERIFIER, **extra):
    return harness.exchange(browser, code, verifier, client_id, redirect_uri, **extra)


def signed_in(session):
    make_account(session)
    browser = Browser(session)
    after_login = sign_in(browser, authorize_params())
    assert after_login.status == 303
    return browser, browser.follow(after_login)


def test_login_then_code_then_tokens(session):
    account = make_account(session)
    browser = Browser(session)
    params = authorize_params()
    after_login = sign_in(browser, params)
    assert after_login.status == 303
    assert "pf_sso" in browser.cookies and "pf_login" not in browser.cookies
    back = urlsplit(after_login.location)
    assert back.path == "/oidc/authorize"
    assert {k: v[0] for k, v in parse_qs(back.query).items()} == params

    code = get_code(browser, params)
    row = session.scalars(select(AuthorizationCode)).one()
    assert row.code_hash != code and len(row.code_hash) == 64
    assert row.code_challenge_method == "S256"
    assert row.expires_at - row.auth_time <= dt.timedelta(seconds=61)

    response = exchange(browser, code)
    assert response.status == 200, response.body
    assert response.header("Cache-Control") == "no-store"
    import json

    tokens = json.loads(response.body)
    assert tokens["token_type"] == "Bearer"
    assert "refresh_token" not in tokens
    jwks = KeySet.import_key_set(json.loads(browser.send("GET", "/oidc/jwks").body))
    id_token = jwt.decode(tokens["id_token"], jwks, algorithms=["RS256"])
    claims = id_token.claims
    assert id_token.header["kid"] and id_token.header["alg"] == "RS256"
    assert claims["iss"] == ISSUER and claims["aud"] == "portal" and claims["sub"] == account.id
    assert claims["nonce"] == params["nonce"]
    assert claims["email"] == EMAIL and claims["email_verified"] is True
    sso = session.scalars(select(LoginSession).where(LoginSession.kind == "sso")).one()
    assert claims["sid"] == sso.id
    assert claims["auth_time"] == int(sso.created_at.timestamp())
    access = keys.verify(
        tokens["access_token"], keys.public_jwks(session, dt.timedelta(days=1)), ISSUER, "portal-api"
    )
    assert access["sid"] == sso.id and access["sub"] == account.id


def test_wrong_or_missing_verifier_is_refused(session):
    browser, issued = signed_in(session)
    code = issued.query["code"]
    wrong = exchange(browser, code, verifier="wrong-verifier-" + "y" * 40)
    assert wrong.status == 400 and '"error":"invalid_grant"' in wrong.body
    missing = exchange(browser, code, verifier=None)
    assert missing.status == 400 and '"error":"invalid_request"' in missing.body
    malformed = exchange(browser, code, verifier="short")
    assert malformed.status == 400 and '"error":"invalid_request"' in malformed.body
    assert exchange(browser, code).status == 200  # a failed proof does not spend the code


def test_code_is_single_use_and_a_replay_revokes_the_session(session):
    browser, issued = signed_in(session)
    code = issued.query["code"]
    assert exchange(browser, code).status == 200
    replay = exchange(browser, code)
    assert replay.status == 400 and '"error":"invalid_grant"' in replay.body
    sso = session.scalars(select(LoginSession).where(LoginSession.kind == "sso")).one()
    assert sso.revoked_reason == "code_replay"
    assert revoked_events(session) == [sso.id]  # the gateways refuse its access tokens at once
    again = browser.send("GET", "/oidc/authorize", authorize_params(nonce="n2"))
    assert again.location.startswith(ISSUER + "/oidc/login?")


def test_code_expires_after_a_minute(session):
    clock.set_now(dt.datetime(2030, 1, 1, 8, 0, tzinfo=dt.UTC))
    browser, issued = signed_in(session)
    clock.advance(dt.timedelta(seconds=61))
    late = exchange(browser, issued.query["code"])
    assert late.status == 400 and '"error":"invalid_grant"' in late.body


@pytest.mark.parametrize(
    "change",
    [
        {"redirect_uri": PORTAL_CB + "/"},
        {"client_id": "invoices", "redirect_uri": INVOICES_CB},
        {"client_id": "nobody"},
    ],
)
def test_code_is_bound_to_client_and_redirect_uri(session, change):
    browser, issued = signed_in(session)
    response = exchange(browser, issued.query["code"], **change)
    assert response.status in (400, 401)
    assert '"error":"invalid_grant"' in response.body or '"error":"invalid_client"' in response.body


def test_confidential_client_must_authenticate(session):
    config = {**CONFIG, "OIDC_INVOICES_CLIENT_SECRET": "invoices-secret"}
    browser, _ = signed_in(session)
    browser.config = config
    params = authorize_params("invoices", INVOICES_CB)
    code = get_code(browser, params)
    anonymous = exchange(browser, code, "invoices", INVOICES_CB)
    assert anonymous.status in (400, 401) and '"error":"invalid_client"' in anonymous.body
    wrong = exchange(browser, code, "invoices", INVOICES_CB, client_secret="nope")
    assert '"error":"invalid_client"' in wrong.body
    basic = "Basic " + base64.b64encode(b"invoices:invoices-secret").decode()
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": INVOICES_CB,
        "code_verifier": VERIFIER,
    }
    ok = browser.send("POST", "/oidc/token", form, authorization=basic)
    assert ok.status == 200, ok.body


def test_nonce_cannot_be_replayed(session):
    browser, _ = signed_in(session)
    replay = browser.send("GET", "/oidc/authorize", authorize_params())  # same nonce as the first
    assert replay.status == 302 and replay.query["error"] == "invalid_request"


def test_prompt_login_and_max_age_force_the_login_page(session):
    browser, _ = signed_in(session)
    forced = browser.send("GET", "/oidc/authorize", authorize_params(prompt="login"))
    assert forced.location.startswith(ISSUER + "/oidc/login?")
    clock.advance(dt.timedelta(seconds=120))
    stale = browser.send("GET", "/oidc/authorize", authorize_params(max_age="60"))
    assert stale.location.startswith(ISSUER + "/oidc/login?")
    fresh = browser.send("GET", "/oidc/authorize", authorize_params(max_age="3600"))
    assert fresh.query["code"]
    silent = browser.send("GET", "/oidc/authorize", authorize_params(prompt="none", nonce="silent"))
    assert silent.query["code"]


def test_login_after_prompt_login_issues_the_code_and_replaces_the_session(session):
    browser, _ = signed_in(session)
    first = session.scalars(select(LoginSession).where(LoginSession.kind == "sso")).one()
    after_login = sign_in(browser, authorize_params(prompt="login", nonce="again"))
    assert "prompt" not in parse_qs(urlsplit(after_login.location).query)
    assert browser.follow(after_login).query["code"]
    session.refresh(first)
    assert first.revoked_reason == "relogin"


def test_login_refusals(session):
    make_account(session)
    make_account(session, "unverified@example.org", verify=False)
    browser = Browser(session)
    wrong = sign_in(browser, authorize_params(), password="not the password")
    assert wrong.status == 401
    assert 'role="alert" aria-live="assertive">Adresse e-mail ou mot de passe incorrect.' in wrong.body
    assert wrong.hidden("email") is None and 'value="parent@example.org"' in wrong.body
    unverified = sign_in(browser, authorize_params(), email="unverified@example.org")
    assert unverified.status == 403 and "confirmer votre adresse" in unverified.body
    assert "pf_sso" not in browser.cookies


def test_login_is_throttled(session):
    make_account(session)
    browser = Browser(session)
    statuses = [sign_in(browser, authorize_params(), password=f"wrong {i}").status for i in range(6)]
    assert statuses[:5] == [401] * 5
    throttled = sign_in(browser, authorize_params())  # even the right password waits
    assert throttled.status == 429
    assert int(throttled.header("Retry-After")) >= 1
    assert "pf_sso" not in browser.cookies


def test_login_needs_the_csrf_cookie_and_same_origin(session):
    make_account(session)
    browser = Browser(session)
    page = browser.follow(browser.send("GET", "/oidc/authorize", authorize_params()))
    form = {"csrf_token": page.hidden("csrf_token"), "authorize": page.hidden("authorize"), "email": EMAIL}
    form["password"] = PASSWORD
    cross_site = browser.send("POST", "/oidc/login", form, origin="http://evil.test")
    assert cross_site.status == 400 and "pf_sso" not in browser.cookies
    browser.cookies.clear()
    no_cookie = browser.send("POST", "/oidc/login", {**form, "csrf_token": page.hidden("csrf_token")})
    assert no_cookie.status == 400 and "pf_sso" not in browser.cookies
    retry = browser.send("POST", "/oidc/login", {**form, "csrf_token": no_cookie.hidden("csrf_token")})
    assert retry.status == 303 and "pf_sso" in browser.cookies


def test_login_page_in_english_when_asked(session):
    browser = Browser(session)
    page = browser.follow(browser.send("GET", "/oidc/authorize", authorize_params(ui_locales="en")))
    assert '<html lang="en">' in page.body and "Sign in" in page.body


def test_userinfo(session):
    browser, issued = signed_in(session)
    import json

    tokens = json.loads(exchange(browser, issued.query["code"]).body)
    info = browser.send("GET", "/oidc/userinfo", authorization="Bearer " + tokens["access_token"])
    assert info.status == 200
    assert json.loads(info.body) == {
        "sub": json.loads(info.body)["sub"],
        "email": EMAIL,
        "email_verified": True,
    }
    no_token = browser.send("GET", "/oidc/userinfo")
    assert no_token.status == 401 and no_token.header("WWW-Authenticate").startswith("Bearer")
    id_token_as_access = browser.send("GET", "/oidc/userinfo", authorization="Bearer " + tokens["id_token"])
    assert id_token_as_access.status == 401 and 'error="invalid_token"' in id_token_as_access.header(
        "WWW-Authenticate"
    )


def test_logout_without_id_token_hint_asks_first(session):
    browser, _ = signed_in(session)
    params = {"client_id": "invoices", "post_logout_redirect_uri": "http://invoices.test/", "state": "s9"}
    question = browser.send("GET", "/oidc/logout", params)
    assert question.status == 200 and 'name="confirm" value="1"' in question.body
    assert session.scalars(select(LoginSession)).one().revoked_at is None
    form = {**params, "confirm": "1", "csrf_token": question.hidden("csrf_token")}
    done = browser.send("POST", "/oidc/logout", form, origin=ISSUER)
    assert done.status == 302 and done.location == "http://invoices.test/?state=s9"
    assert "pf_sso" not in browser.cookies
    assert session.scalars(select(LoginSession)).one().revoked_reason == "logout"
    assert revoked_events(session) == [session.scalars(select(LoginSession)).one().id]


def test_logout_never_redirects_to_an_unregistered_uri(session):
    browser, issued = signed_in(session)
    import json

    id_token = json.loads(exchange(browser, issued.query["code"]).body)["id_token"]
    params = {"id_token_hint": id_token, "post_logout_redirect_uri": "http://evil.test/", "state": "s"}
    response = browser.send("GET", "/oidc/logout", params)
    assert response.status == 200 and response.location is None  # signed out, no redirect
    assert session.scalars(select(LoginSession)).one().revoked_at is not None
    assert revoked_events(session) == [session.scalars(select(LoginSession)).one().id]  # once, not twice
    bad_hint = browser.send(
        "GET", "/oidc/logout", {"id_token_hint": "not.a.jwt", "post_logout_redirect_uri": PORTAL_CB}
    )
    assert bad_hint.status == 400 and bad_hint.location is None


def test_authorize_by_post_with_form_parameters(session):
    browser, _ = signed_in(session)
    response = browser.send("POST", "/oidc/authorize", authorize_params(nonce="by-post"))
    assert response.status == 302 and response.query["code"]


def test_login_page_preserves_the_authorization_request(session):
    browser = Browser(session)
    params = authorize_params(login_hint="parent@example.org")
    page = browser.follow(browser.send("GET", "/oidc/authorize", params))
    assert parse_qs(page.hidden("authorize")) == {k: [v] for k, v in params.items()}
    assert 'value="parent@example.org"' in page.body
    assert urlencode(params)  # round-trips


def test_login_page_opened_on_its_own_leads_home(session):
    make_account(session)
    browser = Browser(session)
    page = browser.send("GET", "/oidc/login")
    form = {"csrf_token": page.hidden("csrf_token"), "authorize": "", "email": EMAIL, "password": PASSWORD}
    response = browser.send("POST", "/oidc/login", form)
    assert response.status == 303 and response.location == ISSUER + "/"
    assert "pf_sso" in browser.cookies


def test_two_racing_exchanges_spend_the_code_once(tmp_path):
    """Both exchanges read the code unspent; the conditional update lets only one through."""
    from authlib.oauth2.rfc6749 import InvalidGrantError

    from services.identity.oidc_http import parse_request

    engine = create_engine(f"sqlite:///{tmp_path}/race.db")
    Base.metadata.create_all(engine)
    with Session(engine) as setup, setup.begin():
        _, issued = signed_in(setup)
        code = issued.query["code"]
    conf = oidc.OidcSettings.from_config(CONFIG, SETTINGS)
    request = {"method": "POST", "path": "/oidc/token", "form": {"code": code}}

    def read_code(session):
        provider = oidc.Provider(session, SETTINGS, conf)
        grant = oidc.CodeGrant(provider.create_oauth2_request(parse_request(request)), provider)
        return grant, grant.query_authorization_code(code, conf.clients["portal"])

    with Session(engine) as first, Session(engine) as second:
        grant_1, code_1 = read_code(first)
        grant_2, code_2 = read_code(second)
        assert code_1 is not None and code_2 is not None
        grant_1.delete_authorization_code(code_1)
        first.commit()
        with pytest.raises(InvalidGrantError):
            grant_2.delete_authorization_code(code_2)

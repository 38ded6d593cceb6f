"""The OpenID provider through the identity service's `oidc_http` RPC, on the real PostgreSQL and
RabbitMQ, with requests shaped exactly as the gateway forwards them."""

import uuid

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet
from nameko.testing.services import entrypoint_hook
from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common.db import get_engine
from services.identity import accounts, keys
from services.identity.models import LoginSession, OutboxEvent
from services.identity.service import IdentityService
from services.identity.settings import IdentitySettings

pytestmark = pytest.mark.integration

from tests import oidc_harness as harness  # noqa: E402
from tests.oidc_harness import INVOICES_CB, ISSUER, PASSWORD, PORTAL_CB  # noqa: E402, F401

VERIFIER = "integration-verifier-" + "z" * 40


@pytest.fixture
def oidc_config(identity_config):
    return {
        **identity_config,
        "PUBLIC_URL": ISSUER,
        "OIDC_PORTAL_REDIRECT_URIS": PORTAL_CB,
        "OIDC_PORTAL_POST_LOGOUT_URIS": "http://portal.test/",
        "OIDC_INVOICES_REDIRECT_URIS": INVOICES_CB,
        "OIDC_INVOICES_POST_LOGOUT_URIS": "http://invoices.test/",
    }


@pytest.fixture
def service(container_factory, oidc_config):
    container = container_factory(IdentityService, oidc_config)
    container.start()
    return container


@pytest.fixture
def account(identity_db_uri):
    """A verified account, made with the account rules: register, then the emailed token."""
    email = f"parent-{uuid.uuid4().hex[:8]}@example.org"
    settings = IdentitySettings(public_url=ISSUER, issuer=ISSUER)
    with Session(get_engine(identity_db_uri)) as session, session.begin():
        created = accounts.register(session, settings, email, PASSWORD, "fr")
        payloads = [e.payload for e in session.scalars(select(OutboxEvent)).all()]
        token = next(p["token"] for p in payloads if p.get("account_id") == created.id and "token" in p)
        accounts.verify_email(session, token)
        return {"id": created.id, "email": email}


class Browser(harness.Browser):
    """Forwards requests as the gateway does: one `oidc_http` RPC each."""

    def __init__(self, container):
        def transport(request):
            with entrypoint_hook(container, "oidc_http") as oidc_http:
                raw = oidc_http(request)
            assert set(raw) == {"status", "headers", "body"}
            return raw

        super().__init__(transport, client_ip="198.51.100.20")
        self.container = container


def authorize_params(client_id="portal", redirect_uri=PORTAL_CB, **extra):
    return harness.authorize_params(VERIFIER, client_id, redirect_uri, **extra)


sign_in = harness.sign_in


def code_from(response, params):
    assert response.status == 302, response.body
    assert response.location.startswith(params["redirect_uri"] + "?")
    assert response.query["state"] == params["state"]
    return response.query["code"]


def exchange(browser, code, client_id="portal", redirect_uri=PORTAL_CB, verifier=VERIFIER):
    return harness.exchange(browser, code, verifier, client_id, redirect_uri)


def verify_id_token(browser, id_token, audience, nonce):
    jwks = browser.send("GET", "/oidc/jwks")
    assert jwks.status == 200
    decoded = jwt.decode(id_token, KeySet.import_key_set(jwks.json()), algorithms=["RS256"])
    jwt.JWTClaimsRegistry(
        iss={"essential": True, "value": ISSUER},
        aud={"essential": True, "value": audience},
        nonce={"essential": True, "value": nonce},
        sub={"essential": True},
        exp={"essential": True},
        sid={"essential": True},
    ).validate(decoded.claims)
    assert decoded.header["alg"] == "RS256" and decoded.header["kid"]
    return decoded.claims


def test_discovery_names_this_issuer(service):
    response = Browser(service).send("GET", "/.well-known/openid-configuration")
    assert response.status == 200
    document = response.json()
    assert document["issuer"] == ISSUER
    assert document["authorization_endpoint"] == ISSUER + "/oidc/authorize"
    assert document["code_challenge_methods_supported"] == ["S256"]


def test_single_sign_on_across_both_clients_then_logout(service, account, identity_db_uri):
    browser = Browser(service)
    portal = authorize_params()

    # no session: the login page, then the password, then the code
    after_login = sign_in(browser, portal, account["email"])
    assert after_login.status == 303
    sso_cookie = next(c for c in browser.set_cookies if c.startswith("pf_sso="))
    assert "HttpOnly" in sso_cookie and "SameSite=Lax" in sso_cookie and "Path=/" in sso_cookie
    assert "Secure" not in sso_cookie  # the issuer is plain http here
    code = code_from(browser.follow(after_login), portal)

    # tokens for the portal, checked against the published keys
    tokens = exchange(browser, code)
    assert tokens.status == 200, tokens.body
    tokens = tokens.json()
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] > 0
    claims = verify_id_token(browser, tokens["id_token"], "portal", portal["nonce"])
    assert claims["sub"] == account["id"]
    assert claims["email"] == account["email"] and claims["email_verified"] is True
    jwks = browser.send("GET", "/oidc/jwks").json()
    access = keys.verify(tokens["access_token"], jwks, ISSUER, "portal-api")
    assert access["sid"] == claims["sid"] and access["sub"] == account["id"]
    with Session(get_engine(identity_db_uri)) as session:
        sso = session.get(LoginSession, claims["sid"])
        assert sso.kind == "sso" and sso.cookie_hash and sso.cookie_hash != browser.cookies["pf_sso"]

    # the API's whoami accepts the access token's session
    with entrypoint_hook(
        service, "whoami", context_data={"account_id": account["id"], "session_id": access["sid"]}
    ) as whoami:
        assert whoami()["email"] == account["email"]

    # userinfo
    info = browser.send("GET", "/oidc/userinfo", authorization="Bearer " + tokens["access_token"])
    assert info.status == 200
    assert info.json() == {"sub": account["id"], "email": account["email"], "email_verified": True}

    # the invoices site: a code with the cookie alone, no password asked
    invoices = authorize_params("invoices", INVOICES_CB)
    invoices_code = code_from(browser.send("GET", "/oidc/authorize", invoices), invoices)
    invoices_tokens = exchange(browser, invoices_code, "invoices", INVOICES_CB).json()
    invoices_claims = verify_id_token(browser, invoices_tokens["id_token"], "invoices", invoices["nonce"])
    assert invoices_claims["sid"] == claims["sid"] and invoices_claims["sub"] == account["id"]

    # RP-initiated logout: signs out, back to the registered URI with the state, cookie cleared
    logout = browser.send(
        "GET",
        "/oidc/logout",
        {
            "id_token_hint": invoices_tokens["id_token"],
            "post_logout_redirect_uri": "http://invoices.test/",
            "state": "bye",
        },
    )
    assert logout.status == 302 and logout.location == "http://invoices.test/?state=bye"
    assert any(c.startswith("pf_sso=;") and "Max-Age=0" in c for c in browser.set_cookies)
    assert "pf_sso" not in browser.cookies

    # the session is over everywhere: userinfo, whoami, and the next authorization asks again
    assert (
        browser.send("GET", "/oidc/userinfo", authorization="Bearer " + tokens["access_token"]).status == 401
    )
    with entrypoint_hook(
        service, "whoami", context_data={"account_id": account["id"], "session_id": access["sid"]}
    ) as whoami:
        from services.identity.exceptions import SessionRevoked

        with pytest.raises(SessionRevoked):
            whoami()
    again = browser.send("GET", "/oidc/authorize", authorize_params())
    assert again.status == 302 and again.location.startswith(ISSUER + "/oidc/login?")


def test_code_replay_and_wrong_verifier_are_refused(service, account):
    browser = Browser(service)
    params = authorize_params()
    code = code_from(browser.follow(sign_in(browser, params, account["email"])), params)

    wrong = exchange(browser, code, verifier="some-other-verifier-" + "q" * 40)
    assert wrong.status == 400 and wrong.json()["error"] == "invalid_grant"
    assert "access_token" not in wrong.body

    first = exchange(browser, code)
    assert first.status == 200
    replay = exchange(browser, code)
    assert replay.status == 400 and replay.json()["error"] == "invalid_grant"
    # the replay revoked the session the code came from
    access_token = first.json()["access_token"]
    assert browser.send("GET", "/oidc/userinfo", authorization="Bearer " + access_token).status == 401


def test_plain_pkce_and_missing_challenge_are_refused(service):
    browser = Browser(service)
    for change in ({"code_challenge_method": "plain", "code_challenge": VERIFIER}, {"code_challenge": None}):
        params = {k: v for k, v in authorize_params(**change).items() if v is not None}
        response = browser.send("GET", "/oidc/authorize", params)
        assert response.status == 302 and response.location.startswith(PORTAL_CB + "?")
        assert response.query["error"] == "invalid_request"
        assert response.query["state"] == params["state"]
        assert "code" not in response.query


def test_unregistered_redirect_uri_is_refused_without_redirect(service):
    browser = Browser(service)
    for params in (
        authorize_params(redirect_uri="http://evil.test/auth/callback"),
        authorize_params(redirect_uri=INVOICES_CB),
        authorize_params(client_id="intruder"),
    ):
        response = browser.send("GET", "/oidc/authorize", params)
        assert response.status in (400, 401)
        assert response.location is None
        assert response.header("Content-Type") == "text/html; charset=utf-8"
        assert '<html lang="fr">' in response.body


def test_prompt_none_without_session(service):
    params = authorize_params(prompt="none")
    response = Browser(service).send("GET", "/oidc/authorize", params)
    assert response.status == 302 and response.location.startswith(PORTAL_CB + "?")
    assert response.query["error"] == "login_required" and response.query["state"] == params["state"]


def test_wrong_password_shows_the_page_again(service, account):
    browser = Browser(service)
    response = sign_in(browser, authorize_params(), account["email"], "not my password at all")
    assert response.status == 401
    assert 'aria-live="assertive">Adresse e-mail ou mot de passe incorrect.' in response.body
    assert "pf_sso" not in browser.cookies

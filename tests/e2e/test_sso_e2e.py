"""Single sign-on through the gateway, as a browser would do it: the portal signs in with the
password; the invoices site then gets a code without the password being asked again."""

import base64
import hashlib
import re
import secrets
from urllib.parse import parse_qs, urlencode, urlparse

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet

pytestmark = pytest.mark.e2e


def pkce():
    verifier = secrets.token_urlsafe(48)
    challenge = base64.urlsafe_b64encode(hashlib.sha256(verifier.encode()).digest()).rstrip(b"=").decode()
    return verifier, challenge


def path_of(location):
    parsed = urlparse(location)
    return parsed.path + ("?" + parsed.query if parsed.query else "")


def authorize(client, client_id, redirect_uri, challenge, nonce, state):
    query = urlencode(
        {
            "response_type": "code",
            "client_id": client_id,
            "redirect_uri": redirect_uri,
            "scope": "openid email",
            "state": state,
            "nonce": nonce,
            "code_challenge": challenge,
            "code_challenge_method": "S256",
        }
    )
    return client.get("/oidc/authorize?" + query)


def test_sso_code_flow_for_portal_then_invoices_without_password(platform):
    browser = platform.client()
    address, password = platform.registered_account(browser)
    discovery = browser.get("/.well-known/openid-configuration").json()
    assert discovery["code_challenge_methods_supported"] == ["S256"]
    issuer = discovery["issuer"]
    portal_redirect = "http://localhost:8000/auth/callback"
    invoices_redirect = "http://localhost:8001/auth/callback"

    verifier, challenge = pkce()
    first = authorize(browser, "portal", portal_redirect, challenge, "n-1", "s-1")
    assert first.status_code == 302 and "/oidc/login" in first.headers["Location"]
    page = browser.get(path_of(first.headers["Location"]))
    assert page.status_code == 200 and 'lang="fr"' in page.text
    form = dict(re.findall(r'name="(csrf_token|authorize)" value="([^"]*)"', page.text))
    form = {k: v.replace("&amp;", "&") for k, v in form.items()}
    logged = browser.post("/oidc/login", data={**form, "email": address, "password": password})
    assert logged.status_code in (302, 303), logged.text[:500]
    back = browser.get(path_of(logged.headers["Location"]))
    assert back.status_code == 302 and back.headers["Location"].startswith(portal_redirect)
    answer = parse_qs(urlparse(back.headers["Location"]).query)
    assert answer["state"] == ["s-1"]

    tokens = browser.post(
        "/oidc/token",
        data={
            "grant_type": "authorization_code",
            "code": answer["code"][0],
            "redirect_uri": portal_redirect,
            "client_id": "portal",
            "code_verifier": verifier,
        },
    )
    assert tokens.status_code == 200, tokens.text
    body = tokens.json()
    keys = KeySet.import_key_set(browser.get("/oidc/jwks").json())
    id_token = jwt.decode(body["id_token"], keys)
    assert id_token.claims["aud"] == "portal" and id_token.claims["nonce"] == "n-1"
    assert id_token.claims["iss"] == issuer
    me = browser.get("/api/v1/me", token=body["access_token"])
    assert me.status_code == 200 and me.json()["email"] == address

    # the invoices site: same browser, no password asked
    verifier2, challenge2 = pkce()
    second = authorize(browser, "invoices", invoices_redirect, challenge2, "n-2", "s-2")
    assert second.status_code == 302 and second.headers["Location"].startswith(invoices_redirect)
    code2 = parse_qs(urlparse(second.headers["Location"]).query)["code"][0]
    tokens2 = browser.post(
        "/oidc/token",
        data={
            "grant_type": "authorization_code",
            "code": code2,
            "redirect_uri": invoices_redirect,
            "client_id": "invoices",
            "code_verifier": verifier2,
        },
    )
    assert tokens2.status_code == 200
    claims2 = jwt.decode(tokens2.json()["id_token"], keys).claims
    assert claims2["aud"] == "invoices" and claims2["sub"] == id_token.claims["sub"]
    userinfo = browser.get("/oidc/userinfo", token=tokens2.json()["access_token"])
    assert userinfo.status_code == 200 and userinfo.json()["email"] == address

    # wrong verifier, plain PKCE, foreign redirect: refused
    verifier3, challenge3 = pkce()
    third = authorize(browser, "invoices", invoices_redirect, challenge3, "n-3", "s-3")
    code3 = parse_qs(urlparse(third.headers["Location"]).query)["code"][0]
    wrong = browser.post(
        "/oidc/token",
        data={
            "grant_type": "authorization_code",
            "code": code3,
            "redirect_uri": invoices_redirect,
            "client_id": "invoices",
            "code_verifier": pkce()[0],
        },
    )
    assert wrong.status_code == 400
    plain = browser.get(
        "/oidc/authorize?"
        + urlencode(
            {
                "response_type": "code",
                "client_id": "invoices",
                "redirect_uri": invoices_redirect,
                "scope": "openid",
                "code_challenge": "x" * 43,
                "code_challenge_method": "plain",
                "state": "s",
            }
        )
    )
    assert plain.status_code == 302 and "error=" in plain.headers["Location"]
    foreign = authorize(browser, "invoices", "https://evil.example/cb", challenge3, "n", "s")
    assert foreign.status_code == 400 and "evil.example" not in foreign.headers.get("Location", "")

    # logout ends the SSO session: the next authorize asks for the password again
    out = browser.get(
        "/oidc/logout?"
        + urlencode(
            {
                "id_token_hint": tokens2.json()["id_token"],
                "post_logout_redirect_uri": "http://localhost:8001/",
                "state": "bye",
            }
        )
    )
    assert out.status_code == 302 and out.headers["Location"].startswith("http://localhost:8001/")
    again = authorize(browser, "invoices", invoices_redirect, pkce()[1], "n-4", "s-4")
    assert again.status_code == 302 and "/oidc/login" in again.headers["Location"]
    assert browser.get("/api/v1/me", token=tokens2.json()["access_token"]).status_code == 401

    # a spent code presented again is refused
    replay = browser.post(
        "/oidc/token",
        data={
            "grant_type": "authorization_code",
            "code": answer["code"][0],
            "redirect_uri": portal_redirect,
            "client_id": "portal",
            "code_verifier": verifier,
        },
    )
    assert replay.status_code == 400 and replay.json()["error"] == "invalid_grant"

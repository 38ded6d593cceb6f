"""A scripted browser for the OpenID provider: sends requests shaped as the gateway forwards them
(to `oidc.handle_http` in unit tests, to the `oidc_http` RPC in integration tests) and keeps its
cookies. Shared by tests/unit/test_oidc_provider.py and tests/integration/test_oidc_flow.py."""

import json
import re
import uuid
from html import unescape
from urllib.parse import parse_qs, urlsplit

from authlib.oauth2.rfc7636 import create_s256_code_challenge

ISSUER = "http://portal.test"
PORTAL_CB = "http://portal.test/auth/callback"
INVOICES_CB = "http://invoices.test/auth/callback"
PASSWORD = "une phrase de passe"


class Browser:
    def __init__(self, transport, client_ip):
        self.transport = transport
        self.client_ip = client_ip
        self.cookies = {}
        self.set_cookies = []

    def send(self, method, path, params=None, authorization=None, origin=None):
        cookie = "; ".join(f"{k}={v}" for k, v in self.cookies.items()) or None
        request = {
            "method": method,
            "path": path,
            "query": (params or {}) if method == "GET" else {},
            "form": (params or {}) if method == "POST" else {},
            "headers": {
                "cookie": cookie,
                "authorization": authorization,
                "content-type": "application/x-www-form-urlencoded" if method == "POST" else None,
                "origin": origin,
            },
            "client_ip": self.client_ip,
        }
        raw = self.transport(request)
        for name, value in raw["headers"]:
            if name.lower() == "set-cookie":
                self.set_cookies.append(value)
                pair, _, attributes = value.partition(";")
                key, _, val = pair.partition("=")
                if "Max-Age=0" in attributes:
                    self.cookies.pop(key, None)
                else:
                    self.cookies[key] = val
        return Response(raw)

    def follow(self, response):
        location = urlsplit(response.location)
        assert f"{location.scheme}://{location.netloc}" == ISSUER
        return self.send("GET", location.path, {k: v[0] for k, v in parse_qs(location.query).items()})


class Response:
    def __init__(self, raw):
        self.status = raw["status"]
        self.headers = raw["headers"]
        self.body = raw["body"]

    def header(self, name):
        return next((v for k, v in self.headers if k.lower() == name.lower()), None)

    @property
    def location(self):
        return self.header("Location")

    @property
    def query(self):
        return {k: v[0] for k, v in parse_qs(urlsplit(self.location).query).items()}

    def json(self):
        return json.loads(self.body)

    def hidden(self, name):
        match = re.search(rf'name="{name}" value="([^"]*)"', self.body)
        return unescape(match.group(1)) if match else None


def authorize_params(verifier, client_id="portal", redirect_uri=PORTAL_CB, scope="openid email", **extra):
    params = {
        "response_type": "code",
        "client_id": client_id,
        "redirect_uri": redirect_uri,
        "scope": scope,
        "state": f"state-{uuid.uuid4().hex[:6]}",
        "nonce": f"nonce-{uuid.uuid4().hex}",
        "code_challenge": create_s256_code_challenge(verifier),
        "code_challenge_method": "S256",
    }
    params.update(extra)
    return params


def sign_in(browser, params, email, password=PASSWORD):
    """authorize -> login page -> POST credentials; returns the response to the POST."""
    to_login = browser.send("GET", "/oidc/authorize", params)
    assert to_login.status == 302
    assert to_login.location.startswith(ISSUER + "/oidc/login?")
    assert to_login.query == params  # the authorization request is preserved
    page = browser.follow(to_login)
    assert page.status == 200 and '<html lang="fr">' in page.body
    form = {
        "csrf_token": page.hidden("csrf_token"),
        "authorize": page.hidden("authorize"),
        "email": email,
        "password": password,
    }
    return browser.send("POST", "/oidc/login", form, origin=ISSUER)


def exchange(browser, code, verifier, client_id="portal", redirect_uri=PORTAL_CB, **extra):
    form = {
        "grant_type": "authorization_code",
        "code": code,
        "redirect_uri": redirect_uri,
        "client_id": client_id,
    }
    if verifier is not None:
        form["code_verifier"] = verifier
    form.update(extra)
    return browser.send("POST", "/oidc/token", form)

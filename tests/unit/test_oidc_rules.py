"""The OpenID provider's rules that need neither database nor broker: client registration and
redirect URI matching, PKCE and request validation at the authorization endpoint, discovery, the
forwarded-request shape, cookies, pages."""

import re
from urllib.parse import parse_qs, urlsplit

import pytest
from authlib.oauth2.rfc7636 import create_s256_code_challenge
from authlib.oidc import discovery as oidc_discovery
from authlib.oidc import rpinitiated

from services.identity import oidc, oidc_pages
from services.identity.oidc_clients import load_clients, redirect_uri_matches
from services.identity.oidc_http import BadRequest, parse_cookies, parse_request, set_cookie
from services.identity.settings import IdentitySettings

ISSUER = "http://portal.test"
PORTAL_CB = "http://portal.test/auth/callback"
INVOICES_CB = "http://invoices.test/auth/callback"
CONFIG = {
    "OIDC_PORTAL_REDIRECT_URIS": PORTAL_CB,
    "OIDC_PORTAL_POST_LOGOUT_URIS": "http://portal.test/",
    "OIDC_INVOICES_REDIRECT_URIS": f"{INVOICES_CB}, http://invoices.test/other",
    "OIDC_INVOICES_POST_LOGOUT_URIS": "http://invoices.test/",
}
SETTINGS = IdentitySettings(public_url=ISSUER, issuer=ISSUER)
VERIFIER = "v" * 20 + "-._~" + "0123456789abcdefghij"


def conf(config=CONFIG, settings=SETTINGS):
    return oidc.OidcSettings.from_config(config, settings)


# --- clients and redirect URIs -----------------------------------------------------------------


def test_clients_come_from_config():
    clients = load_clients(CONFIG)
    assert set(clients) == {"portal", "invoices"}
    assert clients["portal"].redirect_uris == (PORTAL_CB,)
    assert clients["invoices"].redirect_uris == (INVOICES_CB, "http://invoices.test/other")
    assert clients["invoices"].post_logout_redirect_uris == ("http://invoices.test/",)
    assert clients["portal"].is_public and clients["portal"].token_endpoint_auth_methods == ("none",)
    assert clients["portal"].check_endpoint_auth_method("none", "token")
    assert not clients["portal"].check_endpoint_auth_method("client_secret_basic", "token")


def test_a_client_secret_makes_the_client_confidential():
    clients = load_clients({**CONFIG, "OIDC_INVOICES_CLIENT_SECRET": "s3cret-value"})
    invoices = clients["invoices"]
    assert not invoices.is_public
    assert not invoices.check_endpoint_auth_method("none", "token")
    assert invoices.check_endpoint_auth_method("client_secret_basic", "token")
    assert invoices.check_client_secret("s3cret-value")
    assert not invoices.check_client_secret("s3cret-valuE")
    assert "s3cret" not in repr(invoices)


def test_client_without_redirect_uri_is_not_registered():
    assert set(load_clients({**CONFIG, "OIDC_INVOICES_REDIRECT_URIS": ""})) == {"portal"}


@pytest.mark.parametrize(
    "uri, production",
    [
        ("http://x.test/cb#frag", False),
        ("/relative/cb", False),
        ("javascript:alert(1)", False),
        (PORTAL_CB, True),
    ],
)
def test_bad_redirect_uris_are_refused_at_load(uri, production):
    config = {**CONFIG, "OIDC_PORTAL_REDIRECT_URIS": uri}
    if production:
        config["ENVIRONMENT"] = "production"
    with pytest.raises(RuntimeError):
        load_clients(config)


@pytest.mark.parametrize(
    "candidate",
    [
        PORTAL_CB + "/",
        PORTAL_CB + "?next=/x",
        PORTAL_CB + "#x",
        PORTAL_CB[:-1],
        PORTAL_CB + "/../evil",
        "http://PORTAL.test/auth/callback",
        "https://portal.test/auth/callback",
        "http://portal.test:80/auth/callback",
        "http://portal.test.evil.test/auth/callback",
        " " + PORTAL_CB,
        "",
        None,
        123,
    ],
)
def test_redirect_uri_must_match_exactly(candidate):
    assert redirect_uri_matches(PORTAL_CB, (PORTAL_CB,))
    assert not redirect_uri_matches(candidate, (PORTAL_CB,))
    assert not load_clients(CONFIG)["portal"].check_redirect_uri(candidate)


def test_production_needs_an_https_issuer():
    production = {**CONFIG, "ENVIRONMENT": "production"}
    with pytest.raises(RuntimeError):
        conf(production)


# --- discovery -------------------------------------------------------------------------------


def test_discovery_document():
    document = oidc.discovery_document(conf())
    assert document["issuer"] == ISSUER
    assert document["authorization_endpoint"] == ISSUER + "/oidc/authorize"
    assert document["token_endpoint"] == ISSUER + "/oidc/token"
    assert document["userinfo_endpoint"] == ISSUER + "/oidc/userinfo"
    assert document["jwks_uri"] == ISSUER + "/oidc/jwks"
    assert document["end_session_endpoint"] == ISSUER + "/oidc/logout"
    assert document["response_types_supported"] == ["code"]
    assert document["grant_types_supported"] == ["authorization_code"]
    assert document["code_challenge_methods_supported"] == ["S256"]
    assert document["id_token_signing_alg_values_supported"] == ["RS256"]
    assert document["subject_types_supported"] == ["public"]
    assert document["scopes_supported"] == ["openid", "email", "profile"]
    assert document["token_endpoint_auth_methods_supported"] == ["none"]


def test_discovery_document_is_valid_provider_metadata():
    https = IdentitySettings(public_url="https://portail.example.fr", issuer="https://portail.example.fr")
    document = oidc.discovery_document(conf(CONFIG, https))
    metadata = oidc_discovery.OpenIDProviderMetadata(document)
    metadata.validate(metadata_classes=[rpinitiated.OpenIDProviderMetadata])


def test_discovery_lists_secret_methods_when_a_client_has_a_secret():
    document = oidc.discovery_document(conf({**CONFIG, "OIDC_INVOICES_CLIENT_SECRET": "s3cret"}))
    assert document["token_endpoint_auth_methods_supported"] == [
        "client_secret_basic",
        "client_secret_post",
        "none",
    ]


def test_discovery_over_the_forwarded_request():
    response = oidc.handle_http(
        None, SETTINGS, CONFIG, {"method": "GET", "path": "/.well-known/openid-configuration"}
    )
    assert response["status"] == 200
    assert ["Content-Type", "application/json"] in response["headers"]
    assert '"issuer":"http://portal.test"' in response["body"]


# --- the authorization endpoint's checks (no signed-in user: a valid request goes to login) ------


def authorize(**overrides):
    params = {
        "response_type": "code",
        "client_id": "portal",
        "redirect_uri": PORTAL_CB,
        "scope": "openid email",
        "state": "st-123",
        "code_challenge": create_s256_code_challenge(VERIFIER),
        "code_challenge_method": "S256",
    }
    params.update(overrides)
    params = {k: v for k, v in params.items() if v is not None}
    http = parse_request({"method": "GET", "path": "/oidc/authorize", "query": params})
    exchange = oidc.Exchange(session=None, settings=SETTINGS, conf=conf(), http=http, sso_user=None)
    return oidc.authorize(exchange)


def redirected_error(response, redirect_uri=PORTAL_CB):
    assert response.status == 302
    location = response.header("Location")
    assert location.startswith(redirect_uri + "?")
    query = parse_qs(urlsplit(location).query)
    assert "code" not in query
    assert query["state"] == ["st-123"]
    return query["error"][0]


def test_valid_request_without_session_goes_to_the_login_page_with_its_parameters():
    response = authorize(ui_locales="en", login_hint="parent@example.org")
    assert response.status == 302
    location = urlsplit(response.header("Location"))
    assert f"{location.scheme}://{location.netloc}{location.path}" == ISSUER + "/oidc/login"
    query = parse_qs(location.query)
    assert query["client_id"] == ["portal"]
    assert query["state"] == ["st-123"]
    assert query["ui_locales"] == ["en"]
    assert query["login_hint"] == ["parent@example.org"]
    assert query["code_challenge"] == [create_s256_code_challenge(VERIFIER)]


def test_second_client_with_its_own_redirect_uri_is_accepted():
    assert (
        authorize(client_id="invoices", redirect_uri=INVOICES_CB)
        .header("Location")
        .startswith(ISSUER + "/oidc/login?")
    )


@pytest.mark.parametrize(
    "overrides",
    [
        {"code_challenge_method": "plain", "code_challenge": VERIFIER},
        {"code_challenge_method": None},  # no method means plain
        {"code_challenge": None, "code_challenge_method": None},
        {"code_challenge": None},
        {"code_challenge": "too-short"},
        {"code_challenge_method": "S512"},
    ],
)
def test_pkce_is_required_and_s256_only(overrides):
    assert redirected_error(authorize(**overrides)) == "invalid_request"


def test_scope_must_include_openid():
    assert redirected_error(authorize(scope="email")) == "invalid_scope"


def test_unknown_scope_is_refused():
    assert redirected_error(authorize(scope="openid admin")) == "invalid_scope"


@pytest.mark.parametrize("response_type", ["token", "id_token", "code id_token", None])
def test_only_response_type_code(response_type):
    assert redirected_error(authorize(response_type=response_type)) == "unsupported_response_type"


def test_prompt_none_without_session_answers_login_required():
    assert redirected_error(authorize(prompt="none")) == "login_required"


@pytest.mark.parametrize(
    "overrides",
    [
        {"redirect_uri": "http://evil.test/auth/callback"},
        {"redirect_uri": PORTAL_CB + "/"},
        {"redirect_uri": INVOICES_CB},  # another client's
        {"redirect_uri": None},
        {"client_id": "unknown"},
        {"client_id": None},
        {"redirect_uri": "http://evil.test/cb", "response_type": "token"},
        {"redirect_uri": "http://evil.test/cb", "code_challenge_method": "plain"},
    ],
)
def test_errors_before_the_redirect_uri_is_validated_never_redirect(overrides):
    response = authorize(**overrides)
    assert response.status in (400, 401)
    assert response.header("Location") is None
    assert response.header("Content-Type").startswith("text/html")
    assert 'lang="fr"' in response.body
    assert "evil.test" not in response.body


# --- the forwarded request and responses ------------------------------------------------------


@pytest.mark.parametrize(
    "raw",
    [
        None,
        [],
        {"method": "DELETE", "path": "/oidc/token"},
        {"method": "GET", "path": "oidc/token"},
        {"method": "GET", "path": "/oidc/token", "query": {"a": ["1", "2"]}},
        {"method": "GET", "path": "/oidc/token", "query": {"a": "x" * 10000}},
        {"method": "GET", "path": "/oidc/token", "headers": "cookie"},
    ],
)
def test_malformed_forwarded_requests_are_refused(raw):
    with pytest.raises(BadRequest):
        parse_request(raw)
    assert oidc.handle_http(None, SETTINGS, CONFIG, raw)["status"] == 400


def test_unknown_path_and_wrong_method():
    assert oidc.handle_http(None, SETTINGS, CONFIG, {"method": "GET", "path": "/oidc/nope"})["status"] == 404
    response = oidc.handle_http(None, SETTINGS, CONFIG, {"method": "GET", "path": "/oidc/token"})
    assert response["status"] == 405
    assert ["Allow", "POST"] in response["headers"]


def test_preflight_allows_registered_client_origins_only():
    def preflight(origin):
        raw = {"method": "OPTIONS", "path": "/oidc/token", "headers": {"origin": origin}}
        return dict(oidc.handle_http(None, SETTINGS, CONFIG, raw)["headers"])

    assert preflight("http://invoices.test")["Access-Control-Allow-Origin"] == "http://invoices.test"
    assert "Access-Control-Allow-Origin" not in preflight("http://evil.test")


def test_cookies():
    assert parse_cookies("a=1; pf_sso=abc; pf_sso=later; junk; b=") == {"a": "1", "pf_sso": "abc", "b": ""}
    assert parse_cookies(None) == {}
    assert (
        set_cookie("pf_sso", "v", max_age=60, secure=False)
        == "pf_sso=v; Path=/; Max-Age=60; HttpOnly; SameSite=Lax"
    )
    assert set_cookie("pf_sso", "v", max_age=60, secure=True).endswith("; Secure")


def test_return_query_drops_what_forced_the_login():
    query = oidc._return_query("client_id=portal&prompt=login&max_age=0&state=s")
    assert parse_qs(query) == {"client_id": ["portal"], "state": ["s"]}
    assert parse_qs(oidc._return_query("prompt=login consent&a=1")) == {"prompt": ["consent"], "a": ["1"]}


# --- pages -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    "ui_locales, accept, expected",
    [
        (None, None, "fr"),
        (None, "en-GB,en;q=0.9,fr;q=0.5", "en"),
        (None, "fr-FR,fr;q=0.9,en;q=0.8", "fr"),
        (None, "de-DE", "fr"),
        ("en-US fr", "fr", "en"),
        ("de", "en", "en"),
    ],
)
def test_locale(ui_locales, accept, expected):
    assert oidc_pages.choose_locale(ui_locales, accept) == expected


def test_login_page_is_accessible_and_french_first():
    body = oidc_pages.login_page(
        200, "fr", action=ISSUER + "/oidc/login", csrf_token="tok", authorize="a=1&b=<2>", error="Mauvais"
    ).body
    assert '<html lang="fr">' in body
    assert '<label for="email">Adresse e-mail</label>' in body
    assert re.search(r'<input id="email" name="email" type="email" autocomplete="email"', body)
    assert re.search(
        r'<input id="password" name="password" type="password" autocomplete="current-password"', body
    )
    assert 'role="alert" aria-live="assertive">Mauvais</div>' in body
    assert 'aria-describedby="login-error"' in body
    assert '<form method="post" action="http://portal.test/oidc/login">' in body
    assert 'name="csrf_token" value="tok"' in body
    assert "a=1&amp;b=&lt;2&gt;" in body  # escaped
    assert "<script" not in body
    english = oidc_pages.login_page(200, "en", action="/x", csrf_token="t", authorize="").body
    assert '<html lang="en">' in english and "Sign in" in english

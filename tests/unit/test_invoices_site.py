"""The invoices site's pure parts: PKCE, the id token checks, the session cookie, French formatting,
settings."""

import time
from urllib.parse import parse_qs, urlsplit

import pytest
from joserfc import jwt
from joserfc.jwk import KeySet, OctKey, RSAKey

from invoices_site import formatting, oidc_client
from invoices_site.oidc_client import IdTokenInvalid
from invoices_site.session import CookieBox, SignedIn, csrf_matches
from invoices_site.settings import LOCAL_SESSION_SECRET, SiteSettings

ISSUER = "http://portal.test"
KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)
OTHER_KEY = RSAKey.generate_key(2048, parameters={"kid": "k1"}, private=True)
JWKS = {"keys": [KEY.as_dict(private=False)]}


def id_token(key=KEY, alg="RS256", **overrides):
    now = int(time.time())
    claims = {
        "iss": ISSUER,
        "aud": "invoices",
        "sub": "account-1",
        "nonce": "the-nonce",
        "iat": now,
        "exp": now + 600,
        "email": "parent@example.org",
    }
    claims.update(overrides)
    claims = {k: v for k, v in claims.items() if v is not None}
    return jwt.encode({"alg": alg, "kid": "k1"}, claims, key)


def check(token, nonce="the-nonce", **kwargs):
    return oidc_client.check_id_token(token, JWKS, ISSUER, "invoices", nonce, **kwargs)


# --- PKCE, state, nonce --------------------------------------------------------------------------


def test_s256_challenge_matches_rfc_7636_example():
    verifier = "dBjftJeZ4CVP-mB92K27uhbUJU1p1r_wW1gFWFOEjXk"
    assert oidc_client.s256_challenge(verifier) == "E9Melhoa2OwvFrEMTJguCHaoeK1t8URWbuGJSstw-cM"


def test_each_login_request_has_fresh_secrets_and_a_valid_verifier():
    first, second = oidc_client.new_login_request(), oidc_client.new_login_request()
    assert 43 <= len(first.verifier) <= 128
    assert set(first.verifier) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert {first.state, first.nonce, first.verifier}.isdisjoint(
        {second.state, second.nonce, second.verifier}
    )
    assert first.challenge == oidc_client.s256_challenge(first.verifier)


def test_authorization_url_asks_for_code_with_s256_state_and_nonce():
    login = oidc_client.new_login_request("/factures/1")
    url = oidc_client.authorization_url(
        ISSUER + "/oidc/authorize", "invoices", "http://inv.test/auth/callback", login
    )
    query = {k: v[0] for k, v in parse_qs(urlsplit(url).query).items()}
    assert url.startswith(ISSUER + "/oidc/authorize?")
    assert query["response_type"] == "code" and query["code_challenge_method"] == "S256"
    assert query["code_challenge"] == login.challenge and "code_verifier" not in query
    assert query["state"] == login.state and query["nonce"] == login.nonce
    assert query["redirect_uri"] == "http://inv.test/auth/callback" and "openid" in query["scope"].split()


@pytest.mark.parametrize(
    "value, expected",
    [
        ("/factures/abc", "/factures/abc"),
        ("/", "/"),
        ("//evil.example/x", "/"),
        ("https://evil.example/", "/"),
        ("/\\evil.example", "/"),
        ("factures", "/"),
        ("/a\r\nSet-Cookie: x=1", "/"),
        (None, "/"),
        ("/" + "a" * 600, "/"),
    ],
)
def test_return_path_after_sign_in_stays_on_this_site(value, expected):
    assert oidc_client.safe_next(value) == expected


def test_logout_url_carries_the_id_token_hint_and_the_registered_return():
    url = oidc_client.logout_url(ISSUER + "/oidc/logout", "a.b.c", "http://inv.test/", "invoices")
    assert "id_token_hint=a.b.c" in url and "post_logout_redirect_uri=http%3A%2F%2Finv.test%2F" in url


# --- id token ------------------------------------------------------------------------------------


def test_a_genuine_id_token_gives_its_claims():
    claims = check(id_token())
    assert claims["sub"] == "account-1" and claims["email"] == "parent@example.org"


@pytest.mark.parametrize(
    "token, reason",
    [
        (lambda: id_token(nonce="another-nonce"), "nonce"),
        (lambda: id_token(nonce=None), "nonce"),
        (lambda: id_token(aud="portal"), "audience"),
        (lambda: id_token(aud=["portal", "invoices"]), "azp"),
        (lambda: id_token(iss="http://evil.test"), "claims"),
        (lambda: id_token(exp=int(time.time()) - 120), "claims"),
        (lambda: id_token(sub=None), "claims"),
        (lambda: id_token(key=OTHER_KEY), "signature"),
        (lambda: id_token(key=OctKey.import_key("s" * 32), alg="HS256"), "signature"),
        (lambda: "not-a-jwt", "signature"),
        (lambda: None, "missing"),
    ],
)
def test_an_id_token_that_is_not_for_this_login_is_refused(token, reason):
    with pytest.raises(IdTokenInvalid) as refused:
        check(token())
    assert reason in str(refused.value)


def test_an_unsigned_id_token_is_refused():
    header = "eyJhbGciOiJub25lIn0"  # {"alg":"none"}
    genuine = id_token().split(".")
    with pytest.raises(IdTokenInvalid):
        check(f"{header}.{genuine[1]}.")


def test_a_key_set_already_imported_is_accepted():
    assert check(id_token(), now=time.time())["aud"] == "invoices"
    assert oidc_client.check_id_token(
        id_token(), KeySet.import_key_set(JWKS), ISSUER, "invoices", "the-nonce"
    )


# --- the session cookie --------------------------------------------------------------------------


def test_a_sealed_cookie_opens_with_the_same_key_only():
    box = CookieBox("secret", "session", max_age=60)
    value = box.seal({"at": "token", "n": 1})
    assert box.open(value) == {"at": "token", "n": 1}
    assert "token" not in value  # encrypted, not just signed
    assert CookieBox("secret", "login", max_age=60).open(value) is None  # another purpose
    assert CookieBox("other secret", "session", max_age=60).open(value) is None
    tampered = value[:-6] + ("A" if value[-6] != "A" else "B") + value[-5:]
    assert box.open(tampered) is None
    assert box.open("") is None and box.open(None) is None and box.open("x" * 5000) is None


def test_a_sealed_cookie_expires_after_its_max_age():
    box = CookieBox("secret", "session", max_age=60)
    value = box.seal({"a": 1}, now=1_000_000)
    assert box.open(value, now=1_000_059) == {"a": 1}
    assert box.open(value, now=1_000_061) is None


def test_a_session_too_large_for_a_cookie_is_refused_rather_than_dropped_by_the_browser():
    with pytest.raises(ValueError):
        CookieBox("secret", "session", max_age=60).seal({"x": "y" * 4000})


def test_signed_in_round_trips_and_knows_when_its_access_token_expires():
    user = SignedIn.start(
        {"access_token": "at", "id_token": "it", "expires_in": 600}, {"sub": "s", "email": "e"}, now=1000
    )
    assert SignedIn.from_dict(user.as_dict()) == user
    assert not user.access_expired(now=1000 + 500) and user.access_expired(now=1000 + 590)
    assert SignedIn.from_dict({"at": "x"}) is None and SignedIn.from_dict(None) is None
    assert (
        csrf_matches(user.csrf, user.csrf)
        and not csrf_matches(user.csrf, "")
        and not csrf_matches(user.csrf, None)
    )


# --- French formatting ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "cents, text",
    [
        (1250, "12,50\u00a0€"),
        (5, "0,05\u00a0€"),
        (0, "0,00\u00a0€"),
        (123456, "1\u202f234,56\u00a0€"),
        (100000000, "1\u202f000\u202f000,00\u00a0€"),
        (-300, "-3,00\u00a0€"),
        (None, "–"),
        ("12", "–"),
        (True, "–"),
    ],
)
def test_amounts_read_as_french_euros(cents, text):
    assert formatting.euros(cents) == text


def test_months_dates_and_statuses_read_in_french():
    assert formatting.month_label("2026-11") == "novembre 2026"
    assert formatting.month_label("2027-02-01") == "février 2027"
    assert formatting.month_label("2026-13") == "2026-13" and formatting.month_label(None) == ""
    assert formatting.date_label("2026-12-15") == "15 décembre 2026"
    assert formatting.date_label("2026-08-01T10:00:00+00:00") == "1er août 2026"
    assert formatting.date_label("demain") == "demain"
    assert formatting.status_label("partially_paid") == "Partiellement payée"
    assert formatting.status_label("paid") == "Payée" and formatting.status_label("issued") == "À payer"


def test_what_remains_to_pay_counts_payments_and_credit():
    # billing's paid_cents already includes the credit applied at issue; amount_due_cents wins
    assert (
        formatting.remaining_cents({"total_cents": 5000, "paid_cents": 1500, "credit_applied_cents": 500})
        == 3500
    )
    assert (
        formatting.remaining_cents({"total_cents": 5000, "paid_cents": 1500, "amount_due_cents": 3500})
        == 3500
    )
    assert formatting.remaining_cents({"total_cents": 5000, "paid_cents": 6000}) == 0
    assert formatting.remaining_cents({"total_cents": None}) == 0


# --- settings ------------------------------------------------------------------------------------


def test_local_defaults_work_and_production_refuses_them():
    local = SiteSettings.from_config({})
    assert (
        local.session_secret == LOCAL_SESSION_SECRET
        and local.redirect_uri == "http://localhost:8001/auth/callback"
    )
    assert not local.secure_cookies
    with pytest.raises(RuntimeError, match="SESSION_SECRET"):
        SiteSettings.from_config(
            {
                "ENVIRONMENT": "production",
                "INVOICES_PUBLIC_URL": "https://f.example",
                "PUBLIC_URL": "https://p.example",
            }
        )
    with pytest.raises(RuntimeError, match="https"):
        SiteSettings.from_config({"ENVIRONMENT": "production", "SESSION_SECRET": "s" * 40})
    production = SiteSettings.from_config(
        {
            "ENVIRONMENT": "production",
            "SESSION_SECRET": "s" * 40,
            "INVOICES_PUBLIC_URL": "https://factures.example/",
            "PUBLIC_URL": "https://portail.example",
            "OIDC_ISSUER": "https://id.example",
        }
    )
    assert production.secure_cookies and production.issuer == "https://id.example"
    assert production.post_logout_redirect_uri == "https://factures.example/"


def test_the_gateway_origins_are_its_public_url_issuer_and_internal_url():
    local = SiteSettings.from_config({})
    assert local.gateway_origins == {"http://localhost:8000"}
    cluster = SiteSettings.from_config(
        {"PUBLIC_URL": "https://portail.example/", "GATEWAY_URL": "http://gateway", "OIDC_ISSUER": ""}
    )
    assert cluster.gateway_public_url == "https://portail.example"
    assert cluster.gateway_origins == {"https://portail.example:443", "http://gateway:80"}

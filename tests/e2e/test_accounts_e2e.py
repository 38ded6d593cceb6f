"""A parent's account over HTTP: register, the email, verify, login, /me, refresh, logout, reset."""

import time

import pytest

from tests.e2e.conftest import link_token

pytestmark = pytest.mark.e2e


def test_register_verify_login_me_refresh_logout(platform):
    client = platform.client()
    address = platform.new_email()
    created = client.post("/api/v1/accounts", json={"email": address, "password": "un mot de passe solide"})
    assert created.status_code == 201
    assert created.json()["email"] == address and created.json()["id"]

    refused = client.post("/api/v1/auth/login", json={"email": address, "password": "un mot de passe solide"})
    assert refused.status_code == 403 and refused.json()["error"] == "EMAIL_NOT_VERIFIED"

    message = platform.mailbox.wait_for(address)[0]
    assert "Confirmez" in message["Subject"] or "confirm" in message["Subject"].lower()
    token = link_token(message)
    assert client.post("/api/v1/accounts/verify", json={"token": token}).status_code == 200
    again = client.post("/api/v1/accounts/verify", json={"token": token})
    assert again.status_code == 400 and again.json()["error"] == "INVALID_TOKEN"

    tokens = platform.login(client, address.upper(), "un mot de passe solide")  # email is case-insensitive
    assert tokens["token_type"] == "Bearer" and tokens["expires_in"] > 0
    me = client.get("/api/v1/me", token=tokens["access_token"])
    assert me.status_code == 200
    assert me.json()["email"] == address and me.json()["roles"] == []

    rotated = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200
    new = rotated.json()
    assert new["refresh_token"] != tokens["refresh_token"]
    assert client.get("/api/v1/me", token=new["access_token"]).status_code == 200

    # the spent refresh token comes back: it leaked, so the whole chain is revoked
    reused = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert reused.status_code == 401
    chained = client.post("/api/v1/auth/refresh", json={"refresh_token": new["refresh_token"]})
    assert chained.status_code == 401
    assert client.get("/api/v1/me", token=new["access_token"]).json()["error"] == "SESSION_REVOKED"

    session = platform.login(client, address, "un mot de passe solide")
    assert client.post("/api/v1/auth/logout", token=session["access_token"]).status_code == 204
    after = client.get("/api/v1/me", token=session["access_token"])
    assert after.status_code == 401
    assert (
        client.post("/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}).status_code
        == 401
    )


def test_duplicate_email_and_weak_passwords(platform):
    client = platform.client()
    address = platform.new_email()
    assert (
        client.post(
            "/api/v1/accounts", json={"email": address, "password": "un mot de passe solide"}
        ).status_code
        == 201
    )
    taken = client.post(
        "/api/v1/accounts", json={"email": address.upper(), "password": "un autre mot de passe"}
    )
    assert taken.status_code == 409 and taken.json()["error"] == "EMAIL_TAKEN"
    for weak in ("court", "azertyuiop", "1234567890", "a" * 129):
        response = client.post("/api/v1/accounts", json={"email": platform.new_email(), "password": weak})
        assert response.status_code == 400, weak
        assert response.json()["error"] == "WEAK_PASSWORD"


def test_english_locale_gets_english_email(platform):
    client = platform.client()
    address = platform.new_email()
    body = {"email": address, "password": "a long enough passphrase", "locale": "en"}
    assert client.post("/api/v1/accounts", json=body).status_code == 201
    message = platform.mailbox.wait_for(address)[0]
    assert "confirm" in message["Subject"].lower()
    assert "Confirmez" not in message["Subject"]


def test_password_reset_revokes_sessions(platform):
    client = platform.client()
    address, password = platform.registered_account(client)
    session = platform.login(client, address, password)

    unknown = client.post("/api/v1/password/forgot", json={"email": platform.new_email()})
    known = client.post("/api/v1/password/forgot", json={"email": address})
    assert unknown.status_code == known.status_code == 202
    assert unknown.json() == known.json()

    reset_mail = platform.mailbox.wait_for(address, count=2)[-1]
    token = link_token(reset_mail)
    weak = client.post("/api/v1/password/reset", json={"token": token, "password": "court"})
    assert weak.status_code == 400 and weak.json()["error"] == "WEAK_PASSWORD"
    done = client.post(
        "/api/v1/password/reset", json={"token": token, "password": "une toute nouvelle phrase"}
    )
    assert done.status_code == 200
    replay = client.post(
        "/api/v1/password/reset", json={"token": token, "password": "encore une autre phrase"}
    )
    assert replay.status_code == 400 and replay.json()["error"] == "INVALID_TOKEN"

    assert client.get("/api/v1/me", token=session["access_token"]).status_code == 401
    assert (
        client.post("/api/v1/auth/refresh", json={"refresh_token": session["refresh_token"]}).status_code
        == 401
    )
    old = client.post("/api/v1/auth/login", json={"email": address, "password": password})
    assert old.status_code == 401 and old.json()["error"] == "INVALID_CREDENTIALS"
    platform.login(client, address, "une toute nouvelle phrase")


def test_throttling_does_not_reveal_accounts_and_lets_owner_back_in(platform):
    owner = platform.client()
    address, password = platform.registered_account(owner)
    attacker = platform.client()
    ghost = platform.new_email()  # no such account

    def attempts(target):
        codes = []
        for _ in range(6):
            response = attacker.post(
                "/api/v1/auth/login", json={"email": target, "password": "mauvais mot de passe"}
            )
            codes.append(response.status_code)
        return codes, response

    real_codes, real_last = attempts(address)
    ghost_codes, ghost_last = attempts(ghost)
    assert real_codes == ghost_codes == [401] * 5 + [429]
    assert real_last.json()["error"] == ghost_last.json()["error"] == "TOO_MANY_ATTEMPTS"
    retry_after = int(real_last.headers["Retry-After"])
    assert 1 <= retry_after <= 5

    # even the right password waits (else the delay would tell an attacker when they guessed)
    blocked = owner.post("/api/v1/auth/login", json={"email": address, "password": password})
    assert blocked.status_code == 429
    time.sleep(retry_after + 0.5)
    platform.login(owner, address, password)


def test_bad_inputs_get_clear_json_errors(platform):
    client = platform.client()
    malformed = client.post(
        "/api/v1/accounts", data="{not json", headers={"Content-Type": "application/json"}
    )
    assert malformed.status_code == 400 and malformed.json()["error"] == "INVALID_JSON"
    not_object = client.post("/api/v1/auth/login", json=["a", "b"])
    assert not_object.status_code == 400 and not_object.json()["error"] == "INVALID_JSON"
    wrong_types = client.post("/api/v1/accounts", json={"email": 12, "password": ["x"]})
    assert wrong_types.status_code == 400
    assert wrong_types.json()["error"] == "VALIDATION_ERROR"
    assert set(wrong_types.json()["fields"]) == {"email", "password"}
    missing = client.post("/api/v1/auth/login", json={"email": "x@example.org"})
    assert missing.json()["fields"] == {"password": ["Champ obligatoire."]}
    unknown = client.get("/api/v1/nothing-here")
    assert unknown.status_code == 404 and unknown.json()["error"] == "NOT_FOUND"
    wrong_method = client.request("DELETE", "/api/v1/accounts")
    assert wrong_method.status_code == 405 and wrong_method.json()["error"] == "METHOD_NOT_ALLOWED"
    huge = client.post("/api/v1/accounts", data="x" * 100_000, headers={"Content-Type": "application/json"})
    assert huge.status_code == 413 and huge.json()["error"] == "PAYLOAD_TOO_LARGE"
    for header in ("Bearer not-a-jwt", "Basic abc", "Bearer " + "a.b.c"):
        bad = client.get("/api/v1/me", headers={"Authorization": header})
        assert bad.status_code == 401 and bad.json()["error"] in ("INVALID_TOKEN", "UNAUTHENTICATED")
    assert client.get("/api/v1/me").status_code == 401
    assert client.post("/api/v1/auth/logout").status_code == 401
    bad_token = client.post("/api/v1/accounts/verify", json={"token": "made-up"})
    assert bad_token.status_code == 400 and bad_token.json()["error"] == "INVALID_TOKEN"
    bad_refresh = client.post("/api/v1/auth/refresh", json={"refresh_token": "made-up"})
    assert bad_refresh.status_code == 401


def test_openapi_health_ready(platform):
    client = platform.client()
    document = client.get("/api/v1/openapi.json").json()
    assert document["openapi"].startswith("3.")
    for path in (
        "/api/v1/accounts",
        "/api/v1/auth/login",
        "/api/v1/auth/refresh",
        "/api/v1/auth/logout",
        "/api/v1/password/forgot",
        "/api/v1/password/reset",
        "/api/v1/me",
        "/api/v1/accounts/verify",
    ):
        assert path in document["paths"], path
    assert client.get("/health").json() == {"status": "ok"}
    ready = client.get("/ready")
    assert ready.status_code == 200
    assert ready.json()["services"] == {
        "identity": "ok",
        "notify": "ok",
        "communes": "ok",
        "booking": "ok",
        "billing": "ok",
    }


def test_emailed_links_open_pages_that_do_not_spend_tokens_on_get(platform):
    client = platform.client()
    address = platform.new_email()
    assert (
        client.post(
            "/api/v1/accounts", json={"email": address, "password": "un mot de passe solide"}
        ).status_code
        == 201
    )
    token = link_token(platform.mailbox.wait_for(address)[0])
    opened = client.get("/account/verify-email", params={"token": token})
    assert opened.status_code == 200 and "text/html" in opened.headers["Content-Type"]
    assert 'lang="fr"' in opened.text and "Confirmer mon adresse" in opened.text
    confirmed = client.post("/account/verify-email", data={"token": token})
    assert confirmed.status_code == 200 and "est confirmée" in confirmed.text
    assert client.post("/account/verify-email", data={"token": token}).status_code == 400

    assert client.post("/api/v1/password/forgot", json={"email": address}).status_code == 202
    reset_token = link_token(platform.mailbox.wait_for(address, count=2)[-1])
    form = client.get("/account/reset-password", params={"token": reset_token})
    assert 'autocomplete="new-password"' in form.text
    mismatch = client.post(
        "/account/reset-password",
        data={"token": reset_token, "password": "une phrase neuve", "confirm": "autre"},
    )
    assert mismatch.status_code == 400
    changed = client.post(
        "/account/reset-password",
        data={"token": reset_token, "password": "une phrase neuve", "confirm": "une phrase neuve"},
    )
    assert changed.status_code == 200, changed.text
    platform.login(client, address, "une phrase neuve")
    hostile = client.get("/account/verify-email", params={"token": '"><script>alert(1)</script>'})
    assert "<script>alert(1)" not in hostile.text

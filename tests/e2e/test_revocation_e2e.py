"""A revoked session's access token is refused on every route, not only `/api/v1/me`: logout at once,
refresh-token reuse and password reset within moments (identity's `session_revoked` broadcast)."""

import time

import pytest

from tests.e2e.conftest import link_token

pytestmark = pytest.mark.e2e


def refused_within(client, path, token, seconds=5.0):
    """Poll `path` until it answers 401 SESSION_REVOKED; the last response otherwise."""
    deadline = time.monotonic() + seconds
    while True:
        response = client.get(path, token=token)
        if response.status_code == 401 and response.json().get("error") == "SESSION_REVOKED":
            return response
        if time.monotonic() >= deadline:
            return response
        time.sleep(0.1)


def assert_revoked(response):
    assert response.status_code == 401, response.text
    assert response.json()["error"] == "SESSION_REVOKED"


def test_logout_refuses_the_access_token_on_every_route_at_once(platform):
    client = platform.client()
    address, password = platform.registered_account(client)
    tokens = platform.login(client, address, password)
    other = platform.login(client, address, password)  # another device: stays logged in
    access = tokens["access_token"]
    assert client.get("/api/v1/cart", token=access).status_code == 200
    assert client.get("/api/v1/communes", token=access).status_code == 200

    assert client.post("/api/v1/auth/logout", token=access).status_code == 204
    for path in ("/api/v1/cart", "/api/v1/communes", "/api/v1/me"):
        assert_revoked(client.get(path, token=access))  # no wait: the serving instance knows already
    assert_revoked(client.post("/api/v1/auth/logout", token=access))

    assert client.get("/api/v1/cart", token=other["access_token"]).status_code == 200
    assert client.get("/api/v1/communes", token=other["access_token"]).status_code == 200


def test_refresh_reuse_refuses_the_new_access_token_within_moments(platform):
    client = platform.client()
    address, password = platform.registered_account(client)
    tokens = platform.login(client, address, password)
    rotated = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert rotated.status_code == 200
    new = rotated.json()
    assert client.get("/api/v1/cart", token=new["access_token"]).status_code == 200

    reused = client.post("/api/v1/auth/refresh", json={"refresh_token": tokens["refresh_token"]})
    assert reused.status_code == 401
    # the event travels identity's outbox, then the broadcast to the gateway
    assert_revoked(refused_within(client, "/api/v1/cart", new["access_token"]))
    assert_revoked(client.get("/api/v1/communes", token=tokens["access_token"]))  # the older one too


def test_password_reset_refuses_every_session_within_moments(platform):
    client = platform.client()
    address, password = platform.registered_account(client)
    sessions = [platform.login(client, address, password) for _ in range(2)]
    for session in sessions:
        assert client.get("/api/v1/cart", token=session["access_token"]).status_code == 200

    assert client.post("/api/v1/password/forgot", json={"email": address}).status_code == 202
    token = link_token(platform.mailbox.wait_for(address, count=2)[-1])
    done = client.post(
        "/api/v1/password/reset", json={"token": token, "password": "une toute nouvelle phrase"}
    )
    assert done.status_code == 200

    for session in sessions:
        assert_revoked(refused_within(client, "/api/v1/cart", session["access_token"]))
    fresh = platform.login(client, address, "une toute nouvelle phrase")
    assert client.get("/api/v1/cart", token=fresh["access_token"]).status_code == 200

"""Processes die: emails are still sent exactly once, and a dead service gives a fast, clear error."""

import time

import pytest

pytestmark = pytest.mark.e2e


def test_notify_killed_with_events_pending_sends_each_email_once(platform):
    client = platform.client()
    platform.stack.kill("notify")  # SIGKILL: no graceful shutdown
    addresses = [platform.new_email("offline") for _ in range(3)]
    for address in addresses:
        body = {"email": address, "password": "un mot de passe solide"}
        assert client.post("/api/v1/accounts", json=body).status_code == 201
    time.sleep(1.5)  # identity's outbox has published; the events wait in notify's queue
    assert all(platform.mailbox.messages_to(a) == [] for a in addresses)

    platform.stack.start_service("notify")
    platform.stack.wait_ready()
    for address in addresses:
        platform.mailbox.wait_for(address)
    time.sleep(2)  # would a redelivery or a second sender add a duplicate?
    assert [len(platform.mailbox.messages_to(a)) for a in addresses] == [1, 1, 1]


def test_dead_service_gives_503_or_504_quickly_and_expired_requests_do_not_run_later(platform):
    client = platform.client()
    address = platform.new_email("late")
    platform.stack.kill("identity")
    try:
        started = time.monotonic()
        response = client.post(
            "/api/v1/accounts", json={"email": address, "password": "un mot de passe solide"}
        )
        elapsed = time.monotonic() - started
        assert response.status_code in (503, 504)
        assert response.json()["error"] in ("SERVICE_UNAVAILABLE", "SERVICE_TIMEOUT")
        assert elapsed < 12
        ready = client.get("/ready")
        assert ready.status_code == 503 and ready.json()["services"]["identity"] != "ok"
    finally:
        platform.stack.start_service("identity")
        platform.stack.wait_ready()
    # the request that timed out expired in the queue: it did not create the account later
    retry = client.post("/api/v1/accounts", json={"email": address, "password": "un mot de passe solide"})
    assert retry.status_code == 201

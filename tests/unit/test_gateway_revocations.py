import datetime as dt
import time
from types import SimpleNamespace

import eventlet
import pytest

from gateway import revocations as module
from gateway.revocations import EXPIRY_MARGIN_SECONDS, RevocationEvents, RevocationList
from services.common.errors import ServiceTimeout, ServiceUnavailable
from services.identity.exceptions import SessionRevoked


def revocation_list(config=None):
    provider = RevocationList()
    provider.container = SimpleNamespace(config=config or {})
    provider.setup()
    return provider


def iso(seconds_from_now):
    return (dt.datetime.now(dt.UTC) + dt.timedelta(seconds=seconds_from_now)).isoformat()


def nothing():
    return []


def test_revoked_until_expiry_then_pruned(monkeypatch):
    revoked = revocation_list()
    revoked.add("s1", iso(600))
    revoked.add("s2", time.time() + 5)  # POSIX seconds are read too
    revoked.add("s3", iso(-EXPIRY_MARGIN_SECONDS - 1))  # already past: not kept
    assert revoked.is_revoked("s1") and revoked.is_revoked("s2")
    assert not revoked.is_revoked("s3") and not revoked.is_revoked("other") and not revoked.is_revoked(None)
    now = time.time()
    # the margin (30 s of verification leeway, clock drift) keeps s2 refused a while past its `until`
    monkeypatch.setattr(module.time, "time", lambda: now + 5 + EXPIRY_MARGIN_SECONDS - 1)
    assert revoked.is_revoked("s2")
    monkeypatch.setattr(module.time, "time", lambda: now + 6 + EXPIRY_MARGIN_SECONDS)
    assert not revoked.is_revoked("s2")
    revoked.add("s4", iso(900))  # adding prunes what has expired
    assert set(revoked.entries) == {"s1", "s4"} and len(revoked._expiries) == 2
    assert revoked.is_revoked("s1")


def test_the_later_until_wins():
    revoked = revocation_list()
    revoked.add("s1", time.time() + 600)
    revoked.add("s1", time.time() + 10)  # an earlier `until` (a late event) does not shorten it
    assert revoked.entries["s1"] > time.time() + 500
    revoked.add("s1", time.time() + 1200)
    assert revoked.entries["s1"] > time.time() + 1100
    revoked.prune(time.time() + 700 + EXPIRY_MARGIN_SECONDS)  # the superseded heap entry goes quietly
    assert revoked.is_revoked("s1")


def test_garbage_is_ignored():
    revoked = revocation_list()
    for session_id, until in [(None, iso(60)), ("", iso(60)), (42, iso(60)), ("x" * 65, iso(60))]:
        revoked.add(session_id, until)
    for until in ["not a date", None, True, {"a": 1}, "9" * 100]:
        revoked.add("s1", until)
    assert revoked.entries == {}


def test_bounded_evicting_the_closest_to_expiry(monkeypatch):
    monkeypatch.setattr(module, "MAX_ENTRIES", 100)
    revoked = revocation_list()
    now = time.time()
    for i in range(150):
        revoked.add(f"s{i}", now + 1000 + i)
    assert len(revoked.entries) == 100 and len(revoked._expiries) == 100
    # the entries closest to expiry made room: the latest ones are kept
    assert not any(revoked.is_revoked(f"s{i}") for i in range(50))
    assert all(revoked.is_revoked(f"s{i}") for i in range(50, 150))


def test_revoke_now_uses_the_configured_access_lifetime():
    revoked = revocation_list({"ACCESS_TOKEN_TTL": "60"})
    revoked.revoke_now("s1")
    assert time.time() + 60 < revoked.entries["s1"] <= time.time() + 60 + EXPIRY_MARGIN_SECONDS + 1
    default = revocation_list()
    default.revoke_now("s1")
    assert default.entries["s1"] > time.time() + 600
    default.revoke_now(None)
    assert list(default.entries) == ["s1"]


def test_lazy_load_then_events_keep_it_current():
    revoked = revocation_list()
    calls = []

    def fetch():
        calls.append(1)
        return [{"session_id": "old", "until": iso(300)}, {"session_id": "gone", "until": iso(-3600)}, "junk"]

    revoked.check("fresh", fetch)  # loads, then accepts
    with pytest.raises(SessionRevoked) as refused:
        revoked.check("old", fetch)
    assert refused.value.code == "SESSION_REVOKED" and refused.value.status == 401
    revoked.check("gone", fetch)
    service = SimpleNamespace(revocations=revoked)
    RevocationEvents.on_session_revoked(service, {"session_id": "fresh", "until": iso(600), "event_id": "e"})
    RevocationEvents.on_session_revoked(service, "junk")
    with pytest.raises(SessionRevoked):
        revoked.check("fresh", fetch)
    assert calls == [1]  # loaded once per process


def test_load_failure_is_503_and_retried_on_the_next_request():
    revoked = revocation_list()
    revoked.add("evented", iso(600))  # an event heard before the first load is kept
    answers = [ServiceTimeout(), RuntimeError("broker"), [{"session_id": "old", "until": iso(300)}]]

    def fetch():
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    for _ in range(2):
        with pytest.raises(ServiceUnavailable) as unavailable:
            revoked.check("anyone", fetch)  # fail closed: not accepted unchecked
        assert unavailable.value.status == 503
        assert not revoked.loaded
    revoked.check("anyone", fetch)
    assert revoked.loaded and answers == []
    assert revoked.is_revoked("old") and revoked.is_revoked("evented")


def test_a_burst_of_first_requests_loads_once():
    revoked = revocation_list()
    calls = []

    def fetch():
        calls.append(1)
        eventlet.sleep(0.05)
        return [{"session_id": "old", "until": iso(300)}]

    results = []

    def request(session_id):
        try:
            revoked.check(session_id, fetch)
            results.append("ok")
        except SessionRevoked:
            results.append("revoked")

    pool = eventlet.GreenPool()
    for i in range(10):
        pool.spawn(request, "old" if i % 2 else f"s{i}")
    pool.waitall()
    assert calls == [1]
    assert sorted(results) == ["ok"] * 5 + ["revoked"] * 5

import time
from types import SimpleNamespace

from gateway.memberships import MembershipCache
from services.common.ttl_cache import MAX_ENTRIES


def cache(ttl):
    provider = MembershipCache()
    provider.container = SimpleNamespace(config={"MEMBERSHIP_CACHE_SECONDS": ttl})
    provider.setup()
    return provider


def test_cache_holds_until_ttl_or_drop():
    c = cache(0.2)
    assert c.get("a") is None
    c.put("a", [{"id": "x"}])
    assert c.get("a") == [{"id": "x"}]
    c.drop("a")
    assert c.get("a") is None
    c.put("a", [])
    assert c.get("a") == []  # an empty list is a cached answer, not a miss
    time.sleep(0.25)
    assert c.get("a") is None


def test_cache_off_and_bounded():
    off = cache(0)
    off.put("a", [])
    assert off.get("a") is None
    c = cache(60)
    for i in range(MAX_ENTRIES + 5):
        c.put(str(i), [])
    assert len(c.entries) <= MAX_ENTRIES

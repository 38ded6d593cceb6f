"""booking keeps communes' "allowed" answers for a while (CHILD_ACCESS_CACHE_SECONDS), never its
refusals, and never one caller's answer for another."""

from types import SimpleNamespace

import pytest

from services.booking import access
from services.common.context import Caller
from services.common.errors import NotFound
from services.common.ttl_cache import TtlCache

ALLOWED = {"allowed": True, "commune_id": "c1", "family_id": "f1", "child": {"first_name": "Léa"}}


class Communes:
    def __init__(self, answers):
        self.answers = answers
        self.calls = []

    def check_child_access(self, account_id, child_id):
        self.calls.append((account_id, child_id))
        return self.answers.get((account_id, child_id), {"allowed": False})


def cache(ttl=30):
    provider = TtlCache("CHILD_ACCESS_CACHE_SECONDS")
    provider.container = SimpleNamespace(config={"CHILD_ACCESS_CACHE_SECONDS": ttl})
    provider.setup()
    return provider


def test_allowed_answers_are_kept_refusals_are_not():
    communes = Communes({("a1", "k1"): ALLOWED})
    kept = cache()
    parent = Caller(account_id="a1")
    assert access.child(communes, parent, "k1", kept).first_name == "Léa"
    assert access.child(communes, parent, "k1", kept).family_id == "f1"
    assert communes.calls == [("a1", "k1")]  # the second answer came from the cache
    for _ in range(2):
        with pytest.raises(NotFound):
            access.child(communes, parent, "k2", kept)
    assert communes.calls.count(("a1", "k2")) == 2  # refused twice, asked twice
    communes.answers[("a1", "k2")] = ALLOWED  # linked meanwhile: works at once
    assert access.children(communes, parent, ["k2", "k1"], kept)["k2"].commune_id == "c1"


def test_one_callers_answer_never_serves_another():
    communes = Communes({("a1", "k1"): ALLOWED})
    kept = cache()
    assert access.child(communes, Caller(account_id="a1"), "k1", kept)
    with pytest.raises(NotFound):
        access.child(communes, Caller(account_id="a2"), "k1", kept)
    agent = Caller(account_id="a1", roles=("agent:c1",))
    access.child(communes, agent, "k1", kept)
    assert communes.calls == [("a1", "k1"), ("a2", "k1"), ("a1", "k1")]  # other roles: asked again


def test_off_when_the_ttl_is_zero():
    communes = Communes({("a1", "k1"): ALLOWED})
    off = cache(0)
    for _ in range(2):
        access.child(communes, Caller(account_id="a1"), "k1", off)
    assert len(communes.calls) == 2

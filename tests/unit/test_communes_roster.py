"""Communes' roster_children on SQLite: who may ask (an agent of the commune, an admin; NotFound for
anyone else), the id list's limits, other communes' children silently absent, one query, one audit
entry per call without the children's ids."""

import datetime as dt
import uuid

import pytest
from sqlalchemy import create_engine, event, select
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from services.common import clock
from services.common.context import Caller
from services.common.errors import NotFound, Unauthenticated, ValidationFailed
from services.communes import communes, families
from services.communes.models import AuditEntry, Base

ADMIN = Caller(account_id=str(uuid.uuid4()), roles=("admin",))
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def engine():
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    Base.metadata.create_all(engine)
    clock.set_now(T0)
    return engine


@pytest.fixture
def session(engine):
    with Session(engine) as s:
        yield s


def agent_of(commune_id):
    return Caller(account_id=str(uuid.uuid4()), roles=(f"agent:{commune_id}",))


@pytest.fixture
def town(session):
    """Two communes, A with two Léa (Martin, Durand), B with one Tom: (a, b, {name: child id})."""
    a = communes.create_commune(session, ADMIN.account_id, "Aville", "75056")
    b = communes.create_commune(session, ADMIN.account_id, "Bville", "69123")
    fa = families.create_family(session, ADMIN, a.id, "F-1", "Famille Martin", "m@example.org")
    fd = families.create_family(session, ADMIN, a.id, "F-2", "Famille Durand", "d@example.org")
    fb = families.create_family(session, ADMIN, b.id, "F-1", "Famille Petit", "p@example.org")
    ids = {
        "lea_martin": families.add_child(
            session, ADMIN, a.id, fa["id"], "Léa", "Martin", "2019-05-04", "École Jaurès", "CP"
        )["id"],
        "lea_durand": families.add_child(session, ADMIN, a.id, fd["id"], "Léa", "Durand", "2018-01-01")["id"],
        "tom": families.add_child(session, ADMIN, b.id, fb["id"], "Tom", "Petit", "2017-02-03")["id"],
    }
    session.commit()
    return a, b, ids


def roster_audit(session, commune_id):
    return session.scalars(
        select(AuditEntry).where(
            AuditEntry.commune_id == commune_id, AuditEntry.action == "child.roster_read"
        )
    ).all()


def test_an_agent_gets_first_and_last_names_class_and_school(session, town):
    a, _b, ids = town
    answer = families.roster_children(session, agent_of(a.id), a.id, [ids["lea_martin"], ids["lea_durand"]])
    assert answer == {
        ids["lea_martin"]: {
            "first_name": "Léa",
            "last_name": "Martin",
            "class_name": "CP",
            "school": "École Jaurès",
        },
        ids["lea_durand"]: {"first_name": "Léa", "last_name": "Durand", "class_name": None, "school": None},
    }


def test_other_communes_children_and_unknown_ids_are_silently_absent(session, town):
    a, b, ids = town
    asked = [ids["lea_martin"], ids["tom"], str(uuid.uuid4()), "x" * 65, ids["lea_martin"]]
    assert set(families.roster_children(session, agent_of(a.id), a.id, asked)) == {ids["lea_martin"]}
    assert set(families.roster_children(session, agent_of(b.id), b.id, asked)) == {ids["tom"]}


def test_an_agent_of_another_commune_a_parent_and_anonymous_are_refused(session, town):
    a, b, ids = town
    for caller in (agent_of(b.id), Caller(account_id=str(uuid.uuid4()))):
        with pytest.raises(NotFound):
            families.roster_children(session, caller, a.id, [ids["lea_martin"]])
    with pytest.raises(Unauthenticated):
        families.roster_children(session, Caller(), a.id, [ids["lea_martin"]])
    assert roster_audit(session, a.id) == []


def test_an_admin_may_read_any_communes_roster(session, town):
    a, b, ids = town
    assert set(families.roster_children(session, ADMIN, b.id, [ids["tom"], ids["lea_martin"]])) == {
        ids["tom"]
    }
    entry = roster_audit(session, b.id)[0]
    assert entry.role == "admin" and entry.account_id == ADMIN.account_id
    with pytest.raises(NotFound):
        families.roster_children(session, ADMIN, ["not", "a", "commune"], [ids["tom"]])


@pytest.mark.parametrize("child_ids", [None, "an-id", [1, 2], [None], {"a": 1}])
def test_the_ids_must_be_a_list_of_strings(session, town, child_ids):
    a, _b, _ids = town
    with pytest.raises(ValidationFailed):
        families.roster_children(session, agent_of(a.id), a.id, child_ids)


def test_at_most_a_thousand_ids(session, town):
    a, _b, ids = town
    many = [ids["lea_martin"]] + [str(uuid.uuid4()) for _ in range(families.MAX_ROSTER_IDS - 1)]
    assert set(families.roster_children(session, agent_of(a.id), a.id, many)) == {ids["lea_martin"]}
    with pytest.raises(ValidationFailed):
        families.roster_children(session, agent_of(a.id), a.id, [*many, str(uuid.uuid4())])
    assert families.roster_children(session, agent_of(a.id), a.id, []) == {}


def test_one_query_and_one_audit_entry_without_the_ids(engine, session, town):
    a, _b, ids = town
    agent = agent_of(a.id)
    statements = []

    def count(_conn, _cursor, statement, *_args):
        statements.append(statement)

    event.listen(engine, "before_cursor_execute", count)
    try:
        families.roster_children(session, agent, a.id, [ids["lea_martin"], ids["lea_durand"], ids["tom"]])
    finally:
        event.remove(engine, "before_cursor_execute", count)
    selects = [s for s in statements if s.lstrip().upper().startswith("SELECT")]
    assert len(selects) == 1 and "children" in selects[0]
    session.flush()
    entries = roster_audit(session, a.id)
    assert len(entries) == 1
    entry = entries[0]
    assert (entry.account_id, entry.role, entry.entity_type, entry.entity_id) == (
        agent.account_id,
        "agent",
        "roster",
        None,
    )

"""Communes' rules on SQLite, without a broker: validation, authorization, families and children,
audit, adhesion codes (issue, redeem, expiry, single use, throttling), access checks."""

import datetime as dt
import uuid

import pytest
from sqlalchemy import create_engine, event, select, text
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from services.common import clock
from services.common.context import Caller
from services.common.errors import Forbidden, NotFound, Unauthenticated, ValidationFailed
from services.communes import access, adhesion, codes, communes, families, throttle
from services.communes.exceptions import (
    AlreadyLinked,
    CodeAlreadyUsed,
    CodeExpired,
    InseeCodeTaken,
    InvalidCode,
    ReferenceTaken,
    TooManyAttempts,
)
from services.communes.models import AdhesionCode, AuditEntry, Base, FamilyLink, OutboxEvent
from services.communes.settings import CommunesSettings

SETTINGS = CommunesSettings(public_url="http://portal.test", adhesion_code_key=b"unit-test-key")
ADMIN = Caller(account_id=str(uuid.uuid4()), roles=("admin",))
ANONYMOUS = Caller()
T0 = dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC)


@pytest.fixture
def session():
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    Base.metadata.create_all(engine)
    clock.set_now(T0)
    with Session(engine) as s:
        yield s


def agent_of(commune_id):
    return Caller(account_id=str(uuid.uuid4()), roles=(f"agent:{commune_id}",))


def parent():
    return Caller(account_id=str(uuid.uuid4()), client_ip="198.51.100.7")


def new_commune(session, insee="75056", name="Paris", **kwargs):
    return communes.create_commune(session, ADMIN.account_id, name, insee, **kwargs)


def new_family(session, caller, commune_id, reference="F-001", **kwargs):
    values = {"name": "Famille Martin", "email": "martin@example.org", **kwargs}
    return families.create_family(session, caller, commune_id, reference, **values)


def outbox(session, event_type):
    return [e.payload for e in session.scalars(select(OutboxEvent)).all() if e.event_type == event_type]


def issued_code(session, caller, commune_id, family_id):
    return adhesion.issue_code(session, SETTINGS, caller, commune_id, family_id)["code"]


def redeem(session, who, code):
    return adhesion.redeem(session, SETTINGS, who.account_id, who.client_ip, code)


# --- validation ---------------------------------------------------------------------------------


@pytest.mark.parametrize("insee", ["75056", "01001", "2A004", "2B033", "2a004", " 97411 "])
def test_valid_insee_codes(session, insee):
    commune = new_commune(session, insee=insee)
    assert commune.insee_code == insee.strip().upper()
    assert commune.timezone == "Europe/Paris" and commune.code_ttl_days == 30


@pytest.mark.parametrize(
    "insee", ["7505", "750561", "2C004", "2A04", "2A0045", "ABCDE", "3A004", "", None, 75056]
)
def test_invalid_insee_codes(session, insee):
    with pytest.raises(ValidationFailed) as refused:
        new_commune(session, insee=insee)
    assert list(refused.value.details["fields"]) == ["insee_code"]
    assert "INSEE" in refused.value.details["fields"]["insee_code"][0]


def test_commune_validation_names_every_field_in_french(session):
    with pytest.raises(ValidationFailed) as refused:
        communes.create_commune(session, None, "", "1234", "Mars/Olympus", "pas-une-adresse", 0)
    fields = refused.value.details["fields"]
    assert set(fields) == {"name", "insee_code", "timezone", "contact_email", "code_ttl_days"}
    assert all(isinstance(m, list) and m for m in fields.values())
    assert "Fuseau horaire" in fields["timezone"][0]


def test_commune_options_and_duplicate_insee(session):
    commune = new_commune(
        session,
        insee="97411",
        name="Saint-Denis",
        timezone="Indian/Reunion",
        contact_email="mairie@example.re",
        code_ttl_days=7,
    )
    assert (commune.timezone, commune.contact_email, commune.code_ttl_days) == (
        "Indian/Reunion",
        "mairie@example.re",
        7,
    )
    with pytest.raises(InseeCodeTaken) as taken:
        new_commune(session, insee="97411", name="Autre")
    assert taken.value.code == "INSEE_CODE_TAKEN" and taken.value.status == 409
    for ttl in (366, True, "30"):
        with pytest.raises(ValidationFailed):
            new_commune(session, insee="97412", code_ttl_days=ttl)


def test_family_and_child_validation(session):
    commune = new_commune(session)
    agent = agent_of(commune.id)
    with pytest.raises(ValidationFailed) as refused:
        families.create_family(session, agent, commune.id, "", "", "x@", quotient_familial=-1)
    assert set(refused.value.details["fields"]) == {"reference", "name", "email", "quotient_familial"}
    with pytest.raises(ValidationFailed):
        new_family(session, agent, commune.id, quotient_familial=True)
    family = new_family(
        session, agent, commune.id, quotient_familial=0, address="1 rue de la Paix\n75002 Paris"
    )
    assert family["quotient_familial"] == 0 and family["address"].endswith("Paris")

    today = clock.now().date()
    for bad in (
        "2026-13-01",
        "1899-12-31",
        (today + dt.timedelta(days=1)).isoformat(),
        "02/03/2020",
        None,
        "",
    ):
        with pytest.raises(ValidationFailed) as refused:
            families.add_child(session, agent, commune.id, family["id"], "Léa", "Martin", bad)
        assert list(refused.value.details["fields"]) == ["birth_date"]
    child = families.add_child(
        session, agent, commune.id, family["id"], " Léa ", "Martin", today.isoformat(), "École Jaurès", "CP"
    )
    assert child["first_name"] == "Léa" and child["birth_date"] == today.isoformat()
    assert families.add_child(session, agent, commune.id, family["id"], "Jo", "Martin", "1900-01-01")


def test_birth_date_today_is_the_communes_local_day(session):
    commune = new_commune(session, insee="97411", timezone="Indian/Reunion")
    agent = agent_of(commune.id)
    family = new_family(session, agent, commune.id)
    clock.set_now(dt.datetime(2026, 3, 2, 21, 0, tzinfo=dt.UTC))  # already 3 March in La Réunion (UTC+4)
    assert families.add_child(session, agent, commune.id, family["id"], "Noé", "Martin", "2026-03-03")


# --- authorization -------------------------------------------------------------------------------


def test_admin_actions_need_an_admin(session):
    commune = new_commune(session)
    assert [c["id"] for c in communes.list_communes(session, ADMIN)] == [commune.id]
    with pytest.raises(Forbidden):
        communes.list_communes(session, agent_of(commune.id))
    with pytest.raises(Forbidden):
        communes.list_communes(session, parent())
    with pytest.raises(Unauthenticated):
        communes.list_communes(session, ANONYMOUS)
    with pytest.raises(Forbidden):
        access.require_admin(agent_of(commune.id))


STAFF_OPERATIONS = {
    "get_commune": lambda s, c, commune, family: communes.read_commune(s, c, commune),
    "list_agents": lambda s, c, commune, family: communes.list_agents(s, c, commune),
    "list_families": lambda s, c, commune, family: families.list_families(s, c, commune),
    "get_family": lambda s, c, commune, family: families.get_family(s, c, commune, family),
    "update_family": lambda s, c, commune, family: families.update_family(
        s, c, commune, family, {"name": "X"}
    ),
    "add_child": lambda s, c, commune, family: families.add_child(
        s, c, commune, family, "A", "B", "2020-01-01"
    ),
    "list_children": lambda s, c, commune, family: families.list_children(s, c, commune, family),
    "create_family": lambda s, c, commune, family: new_family(s, c, commune, reference=str(uuid.uuid4())[:8]),
    "issue_code": lambda s, c, commune, family: adhesion.issue_code(s, SETTINGS, c, commune, family),
    "list_audit": lambda s, c, commune, family: families.list_audit(s, c, commune),
}


@pytest.fixture
def two_communes(session):
    a = new_commune(session, insee="75056", name="Paris")
    b = new_commune(session, insee="69123", name="Lyon")
    family = new_family(session, ADMIN, a.id)
    linked = parent()
    code = issued_code(session, ADMIN, a.id, family["id"])
    assert redeem(session, linked, code)["family"]["id"] == family["id"]
    return a, b, family, linked


@pytest.mark.parametrize("operation", sorted(STAFF_OPERATIONS))
@pytest.mark.parametrize("who", ["admin", "agent_a", "agent_b", "linked_parent", "anonymous"])
def test_staff_operations_inside_a_commune(session, two_communes, operation, who):
    a, b, family, linked = two_communes
    caller = {
        "admin": ADMIN,
        "agent_a": agent_of(a.id),
        "agent_b": agent_of(b.id),
        "linked_parent": linked,
        "anonymous": ANONYMOUS,
    }[who]
    run = STAFF_OPERATIONS[operation]
    if who in ("admin", "agent_a"):
        assert run(session, caller, a.id, family["id"]) is not None
    elif who == "anonymous":
        with pytest.raises(Unauthenticated):
            run(session, caller, a.id, family["id"])
    else:  # never the data, nor a hint that it exists
        with pytest.raises(NotFound) as hidden:
            run(session, caller, a.id, family["id"])
        assert type(hidden.value) is NotFound


def test_an_agent_cannot_reach_another_communes_family_through_its_own_commune(session, two_communes):
    a, b, family, _ = two_communes
    agent_b = agent_of(b.id)
    for run in (
        lambda: families.get_family(session, agent_b, b.id, family["id"]),
        lambda: families.list_children(session, agent_b, b.id, family["id"]),
        lambda: families.update_family(session, agent_b, b.id, family["id"], {"name": "X"}),
        lambda: adhesion.issue_code(session, SETTINGS, agent_b, b.id, family["id"]),
    ):
        with pytest.raises(NotFound):
            run()
    with pytest.raises(NotFound):
        families.get_family(session, agent_b, b.id, str(uuid.uuid4()))
    with pytest.raises(NotFound):  # a commune that does not exist, even for an admin
        families.list_families(session, ADMIN, str(uuid.uuid4()))


def test_parents_see_only_their_families(session, two_communes):
    a, b, family, linked = two_communes
    families.add_child(session, ADMIN, a.id, family["id"], "Léa", "Martin", "2019-05-04")
    other = new_family(session, ADMIN, a.id, reference="F-002", name="Famille Durand")
    families.add_child(session, ADMIN, a.id, other["id"], "Tom", "Durand", "2018-01-01")
    assert adhesion.memberships(session, linked.account_id) == [
        {"id": a.id, "name": "Paris", "family": {"id": family["id"], "name": "Famille Martin"}}
    ]
    children = adhesion.my_children(session, linked.account_id, a.id)
    assert [c["first_name"] for c in children] == ["Léa"]
    assert set(children[0]) == {
        "id",
        "first_name",
        "last_name",
        "birth_date",
        "school",
        "class_name",
        "family_id",
    }
    with pytest.raises(NotFound):
        adhesion.my_children(session, linked.account_id, b.id)
    with pytest.raises(NotFound):
        adhesion.my_children(session, parent().account_id, a.id)
    assert adhesion.memberships(session, parent().account_id) == []


def test_access_checks(session, two_communes):
    a, b, family, linked = two_communes
    child = families.add_child(session, ADMIN, a.id, family["id"], "Léa", "Martin", "2019-05-04")
    assert access.child_access(session, linked.account_id, child["id"]) == {
        "allowed": True,
        "family_id": family["id"],
        "commune_id": a.id,
        "relation": "parent",
        "child": {
            "id": child["id"],
            "first_name": "Léa",
            "birth_date": "2019-05-04",
            "school": None,
            "class_name": None,
        },
    }
    stranger = parent().account_id
    assert access.child_access(session, stranger, child["id"]) == {
        "allowed": False,
        "family_id": family["id"],
        "commune_id": a.id,
        "relation": None,
    }
    assert access.child_access(session, stranger, str(uuid.uuid4()))["allowed"] is False
    assert access.child_access(session, None, child["id"])["allowed"] is False
    assert access.family_access(session, linked.account_id, family["id"]) == {
        "allowed": True,
        "commune_id": a.id,
        "relation": "parent",
    }
    assert access.family_access(session, stranger, family["id"])["allowed"] is False

    agent_id = str(uuid.uuid4())
    assert access.is_agent(session, agent_id, a.id) is False
    communes.record_agent(session, a.id, agent_id, "agent@example.org", ADMIN.account_id)
    assert access.is_agent(session, agent_id, a.id) is True
    assert access.is_agent(session, agent_id, b.id) is False
    assert access.child_access(session, agent_id, child["id"])["relation"] == "agent"
    assert access.family_access(session, agent_id, family["id"])["allowed"] is True

    # who may ask: other services (no account), the account itself, an admin
    access.require_internal_or_self(ANONYMOUS, linked.account_id)
    access.require_internal_or_self(linked, linked.account_id)
    access.require_internal_or_self(ADMIN, linked.account_id)
    with pytest.raises(Forbidden):
        access.require_internal_or_self(parent(), linked.account_id)


def test_billing_profile(session, two_communes):
    a, b, family, linked = two_communes
    families.update_family(session, ADMIN, a.id, family["id"], {"quotient_familial": 820})
    expected = {"family_id": family["id"], "commune_id": a.id, "quotient_familial": 820}
    assert families.billing_profile(session, ANONYMOUS, family["id"]) == expected
    assert families.billing_profile(session, agent_of(a.id), family["id"]) == expected
    for caller in (agent_of(b.id), linked):
        with pytest.raises(NotFound):
            families.billing_profile(session, caller, family["id"])
    with pytest.raises(NotFound):
        families.billing_profile(session, ANONYMOUS, str(uuid.uuid4()))


# --- families ---------------------------------------------------------------------------------------


def test_reference_unique_per_commune_reusable_across_communes(session):
    a = new_commune(session, insee="75056")
    b = new_commune(session, insee="69123", name="Lyon")
    first = new_family(session, agent_of(a.id), a.id, reference="2024-17")
    with pytest.raises(ReferenceTaken) as taken:
        new_family(session, agent_of(a.id), a.id, reference=" 2024-17 ", name="Autre")
    assert taken.value.code == "REFERENCE_TAKEN" and taken.value.status == 409
    assert new_family(session, agent_of(b.id), b.id, reference="2024-17")["commune_id"] == b.id
    second = new_family(session, agent_of(a.id), a.id, reference="2024-18")
    with pytest.raises(ReferenceTaken):
        families.update_family(session, ADMIN, a.id, second["id"], {"reference": "2024-17"})
    # keeping its own reference is not a conflict
    assert (
        families.update_family(session, ADMIN, a.id, first["id"], {"reference": "2024-17"})["reference"]
        == "2024-17"
    )


def test_update_family_is_a_patch(session):
    commune = new_commune(session)
    agent = agent_of(commune.id)
    family = new_family(session, agent, commune.id, quotient_familial=500, address="1 rue A")
    clock.advance(dt.timedelta(minutes=5))
    updated = families.update_family(session, agent, commune.id, family["id"], {"email": "neuf@example.org"})
    assert updated["email"] == "neuf@example.org"
    assert (updated["name"], updated["quotient_familial"], updated["address"]) == (
        "Famille Martin",
        500,
        "1 rue A",
    )
    assert updated["updated_at"] > family["updated_at"]
    cleared = families.update_family(
        session, agent, commune.id, family["id"], {"quotient_familial": None, "address": None}
    )
    assert cleared["quotient_familial"] is None and cleared["address"] is None
    for bad in ({"name": None}, {"email": "nope"}, {"colour": "blue"}, {"quotient_familial": -5}, "name=x"):
        with pytest.raises(ValidationFailed):
            families.update_family(session, agent, commune.id, family["id"], bad)


def test_get_family_includes_children_and_linked_accounts(session):
    commune = new_commune(session)
    agent = agent_of(commune.id)
    family = new_family(session, agent, commune.id)
    families.add_child(
        session, agent, commune.id, family["id"], "Léa", "Martin", "2019-05-04", class_name="CE1"
    )
    families.add_child(session, agent, commune.id, family["id"], "Tom", "Martin", "2016-09-01")
    for who in (parent(), parent()):
        assert not isinstance(
            redeem(session, who, issued_code(session, agent, commune.id, family["id"])), Exception
        )
    read = families.get_family(session, agent, commune.id, family["id"])
    assert [c["first_name"] for c in read["children"]] == ["Tom", "Léa"]
    assert read["linked_accounts"] == 2
    assert read["reference"] == "F-001" and read["email"] == "martin@example.org"


# --- audit ------------------------------------------------------------------------------------------


def test_agents_reads_and_changes_are_audited_without_personal_data(session):
    commune = new_commune(session)
    agent = agent_of(commune.id)
    family = new_family(session, agent, commune.id)
    child = families.add_child(session, agent, commune.id, family["id"], "Léa", "Martin", "2019-05-04")
    families.list_families(session, agent, commune.id)
    families.get_family(session, agent, commune.id, family["id"])
    families.update_family(session, agent, commune.id, family["id"], {"address": "2 rue B"})
    families.list_children(session, agent, commune.id, family["id"])
    issued_code(session, agent, commune.id, family["id"])
    families.get_family(session, ADMIN, commune.id, family["id"])

    entries = families.list_audit(session, agent, commune.id)
    assert [(e["action"], e["role"]) for e in entries] == [
        ("family.read", "admin"),
        ("adhesion_code.issue", "agent"),
        ("child.list", "agent"),
        ("family.update", "agent"),
        ("family.read", "agent"),
        ("family.list", "agent"),
        ("child.create", "agent"),
        ("family.create", "agent"),
    ]
    assert entries[-2]["entity_type"] == "child" and entries[-2]["entity_id"] == child["id"]
    assert all(e["commune_id"] == commune.id for e in entries)
    assert {e["account_id"] for e in entries} == {agent.account_id, ADMIN.account_id}
    dumped = repr(session.execute(text("SELECT * FROM audit_entries")).all())
    for personal in ("Martin", "Léa", "martin@example.org", "rue", "F-001"):
        assert personal not in dumped
    assert len(families.list_audit(session, agent, commune.id, limit=3)) == 3
    with pytest.raises(ValidationFailed):
        families.list_audit(session, agent, commune.id, limit=0)
    # a refused attempt leaves no entry and reveals nothing
    with pytest.raises(NotFound):
        families.get_family(session, agent_of(str(uuid.uuid4())), commune.id, family["id"])
    assert len(families.list_audit(session, agent, commune.id, limit=500)) == len(entries)


def test_audit_table_is_append_only(session):
    commune = new_commune(session)
    new_family(session, agent_of(commune.id), commune.id)
    session.commit()
    for statement in ("UPDATE audit_entries SET action = 'x'", "DELETE FROM audit_entries"):
        with pytest.raises(DatabaseError):
            session.execute(text(statement))
        session.rollback()
    assert session.scalar(select(AuditEntry.action)) == "family.create"


# --- adhesion codes ----------------------------------------------------------------------------------


@pytest.fixture
def family_setup(session):
    commune = new_commune(session, code_ttl_days=30)
    agent = agent_of(commune.id)
    family = new_family(session, agent, commune.id)
    return commune, agent, family


def test_issue_returns_the_code_once_stores_only_its_hmac_and_emails_it(session, family_setup):
    commune, agent, family = family_setup
    issued = adhesion.issue_code(session, SETTINGS, agent, commune.id, family["id"])
    shown = issued["code"]
    assert len(shown) == 14 and shown.count("-") == 2
    assert issued["expires_at"] == (T0 + dt.timedelta(days=30)).isoformat()
    row = session.scalars(select(AdhesionCode)).one()
    canonical = shown.replace("-", "")
    assert row.code_hash == codes.digest(SETTINGS.adhesion_code_key, canonical)
    stored = repr(session.execute(text("SELECT * FROM adhesion_codes")).all())
    assert canonical not in stored and shown not in stored
    [event] = outbox(session, "adhesion_code_issued")
    assert event == {
        "event_id": event["event_id"],
        "family_id": family["id"],
        "commune_id": commune.id,
        "commune_name": "Paris",
        "family_name": "Famille Martin",
        "email": "martin@example.org",
        "code": shown,
        "expires_at": issued["expires_at"],
        "locale": "fr",
    }


def test_redeem_links_the_account_and_publishes_family_linked(session, family_setup):
    commune, agent, family = family_setup
    code = issued_code(session, agent, commune.id, family["id"])
    who = parent()
    typed = code.lower().replace("-", " ").replace("0", "o").replace("1", "l")
    assert redeem(session, who, typed) == {
        "commune": {"id": commune.id, "name": "Paris"},
        "family": {"id": family["id"], "name": "Famille Martin"},
    }
    [event] = outbox(session, "family_linked")
    assert {k: event[k] for k in ("account_id", "family_id", "commune_id")} == {
        "account_id": who.account_id,
        "family_id": family["id"],
        "commune_id": commune.id,
    }
    assert families.list_audit(session, agent, commune.id)[0]["action"] == "family.link"


def test_codes_are_single_use(session, family_setup):
    commune, agent, family = family_setup
    code = issued_code(session, agent, commune.id, family["id"])
    first, second = parent(), parent()
    assert not isinstance(redeem(session, first, code), Exception)
    refused = redeem(session, second, code)
    assert isinstance(refused, CodeAlreadyUsed) and refused.status == 409
    assert isinstance(redeem(session, first, code), CodeAlreadyUsed)  # its own code again: used


def test_single_use_holds_when_a_concurrent_redemption_wins_between_read_and_update(session, family_setup):
    """Simulated race: another transaction spends the code after this one read it as unused and
    before its conditional update; the update then changes no row and nothing is linked."""
    commune, agent, family = family_setup
    code = issued_code(session, agent, commune.id, family["id"])
    session.commit()
    rival = str(uuid.uuid4())
    engine = session.get_bind()

    fired = []

    def spend_first(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE ADHESION_CODES") and not fired:
            fired.append(True)
            cursor.connection.execute(
                "UPDATE adhesion_codes SET used_at = ?, used_by = ?",
                (T0.replace(tzinfo=None).isoformat(" "), rival),
            )

    event.listen(engine, "before_cursor_execute", spend_first)
    try:
        outcome = redeem(session, parent(), code)
    finally:
        event.remove(engine, "before_cursor_execute", spend_first)
    assert fired
    assert isinstance(outcome, CodeAlreadyUsed)
    assert session.scalars(select(FamilyLink)).all() == []
    assert outbox(session, "family_linked") == []


def test_codes_expire_after_the_communes_ttl(session):
    commune = new_commune(session, code_ttl_days=2)
    agent = agent_of(commune.id)
    family = new_family(session, agent, commune.id)
    early, late = (issued_code(session, agent, commune.id, family["id"]) for _ in range(2))
    clock.advance(dt.timedelta(days=2) - dt.timedelta(seconds=1))
    assert not isinstance(redeem(session, parent(), early), Exception)
    clock.advance(dt.timedelta(seconds=1))
    expired = redeem(session, parent(), late)
    assert isinstance(expired, CodeExpired) and expired.status == 410 and expired.code == "CODE_EXPIRED"


def test_wrong_and_malformed_codes_are_invalid(session, family_setup):
    commune, agent, family = family_setup
    code = issued_code(session, agent, commune.id, family["id"])
    wrong = "0000-0000-0000" if code != "0000-0000-0000" else "1111-1111-1111"
    for typed in (wrong, "ABC", "!!!!-!!!!-!!!!", "", None):
        refused = redeem(session, parent(), typed)
        assert isinstance(refused, InvalidCode) and refused.status == 404 and refused.code == "INVALID_CODE"


def test_two_parents_each_with_their_own_code_and_no_second_link_for_the_same_account(session, family_setup):
    commune, agent, family = family_setup
    mother, father = parent(), parent()
    first, second, third = (issued_code(session, agent, commune.id, family["id"]) for _ in range(3))
    assert not isinstance(redeem(session, mother, first), Exception)
    refused = redeem(session, mother, second)
    assert isinstance(refused, AlreadyLinked) and refused.code == "ALREADY_LINKED" and refused.status == 409
    assert not isinstance(redeem(session, father, second), Exception)  # the refused code was not spent
    assert families.get_family(session, agent, commune.id, family["id"])["linked_accounts"] == 2
    # issuing another code leaves existing links alone
    assert third and len(adhesion.memberships(session, mother.account_id)) == 1


def test_one_account_in_several_communes(session):
    who = parent()
    for insee, name in (("75056", "Paris"), ("69123", "Lyon")):
        commune = new_commune(session, insee=insee, name=name)
        family = new_family(session, ADMIN, commune.id)
        assert not isinstance(
            redeem(session, who, issued_code(session, ADMIN, commune.id, family["id"])), Exception
        )
    assert [m["name"] for m in adhesion.memberships(session, who.account_id)] == ["Lyon", "Paris"]


# --- throttling --------------------------------------------------------------------------------------


def test_ten_failures_per_account_per_rolling_hour(session, family_setup):
    commune, agent, family = family_setup
    good = issued_code(session, agent, commune.id, family["id"])
    who = Caller(account_id=str(uuid.uuid4()), client_ip=None)
    for _ in range(5):
        assert isinstance(redeem(session, who, "0000-0000-000Z"), InvalidCode)
    clock.advance(dt.timedelta(minutes=30))
    for _ in range(5):
        assert isinstance(redeem(session, who, "0000-0000-000Z"), InvalidCode)
    blocked = redeem(session, who, good)  # even the right code: the limit applies to attempts
    assert isinstance(blocked, TooManyAttempts) and blocked.status == 429
    assert blocked.details == {"retry_after": 30 * 60}
    clock.advance(dt.timedelta(minutes=30) - dt.timedelta(seconds=1))
    assert redeem(session, who, good).details == {"retry_after": 1}
    clock.advance(dt.timedelta(seconds=1))  # the first five left the window
    assert not isinstance(redeem(session, who, good), Exception)


def test_the_window_rolls_one_failure_at_a_time(session):
    who = Caller(account_id=str(uuid.uuid4()))
    for _ in range(10):
        assert isinstance(redeem(session, who, "ZZZZ-ZZZZ-ZZZZ"), InvalidCode)
        clock.advance(dt.timedelta(minutes=1))
    assert isinstance(redeem(session, who, "ZZZZ-ZZZZ-ZZZZ"), TooManyAttempts)
    clock.advance(dt.timedelta(minutes=50))  # the first failure is now one hour old
    assert isinstance(redeem(session, who, "ZZZZ-ZZZZ-ZZZZ"), InvalidCode)
    assert isinstance(redeem(session, who, "ZZZZ-ZZZZ-ZZZZ"), TooManyAttempts)


def test_ten_failures_per_client_address_across_accounts(session, family_setup):
    commune, agent, family = family_setup
    good = issued_code(session, agent, commune.id, family["id"])
    address = "203.0.113.9"
    for _ in range(10):
        attacker = Caller(account_id=str(uuid.uuid4()), client_ip=address)
        assert isinstance(redeem(session, attacker, "ZZZZ-ZZZZ-ZZZZ"), InvalidCode)
    fresh_account_same_address = Caller(account_id=str(uuid.uuid4()), client_ip=address)
    assert isinstance(redeem(session, fresh_account_same_address, good), TooManyAttempts)
    elsewhere = Caller(account_id=fresh_account_same_address.account_id, client_ip="203.0.113.10")
    assert not isinstance(redeem(session, elsewhere, good), Exception)
    stored = repr(session.execute(text("SELECT key FROM redeem_throttle")).all())
    assert address not in stored  # addresses are kept as keyed hashes only


def test_only_failures_count(session, family_setup):
    commune, agent, family = family_setup
    address = "203.0.113.20"
    for _ in range(12):  # successes (and already-linked answers) use no allowance
        who = Caller(account_id=str(uuid.uuid4()), client_ip=address)
        assert not isinstance(
            redeem(session, who, issued_code(session, agent, commune.id, family["id"])), Exception
        )
        assert isinstance(
            redeem(session, who, issued_code(session, agent, commune.id, family["id"])), AlreadyLinked
        )
    used = issued_code(session, agent, commune.id, family["id"])
    redeem(session, parent(), used)
    who = Caller(account_id=str(uuid.uuid4()), client_ip=address)
    for _ in range(10):  # used codes count as failures
        assert isinstance(redeem(session, who, used), CodeAlreadyUsed)
    assert isinstance(redeem(session, who, used), TooManyAttempts)


def test_stale_throttle_keys_are_purged(session):
    who = Caller(account_id=str(uuid.uuid4()), client_ip="192.0.2.1")
    redeem(session, who, "ZZZZ-ZZZZ-ZZZZ")
    clock.advance(throttle.WINDOW - dt.timedelta(seconds=1))
    assert throttle.purge(session) == 0
    clock.advance(dt.timedelta(seconds=2))
    assert throttle.purge(session) == 2


def test_redeem_needs_an_account_through_the_service_rule():
    with pytest.raises(Unauthenticated):
        access.require_account(ANONYMOUS)

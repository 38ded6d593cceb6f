"""communes against the real PostgreSQL and RabbitMQ, next to the real identity service (same vhost):
agents granted in identity, invitations completed by identity's account_verified event, families,
children, adhesion codes with their events, throttling, access checks, races, the audit trigger."""

import itertools
import uuid
from types import SimpleNamespace

import eventlet
import pytest
from nameko.events import event_handler
from nameko.standalone.events import event_dispatcher
from nameko.standalone.rpc import ServiceRpcProxy
from nameko.testing.services import entrypoint_waiter
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DBAPIError
from sqlalchemy.orm import Session

from services.common.context import Caller
from services.common.errors import Forbidden, NotFound, Unauthenticated
from services.communes import adhesion
from services.communes.exceptions import (
    AlreadyLinked,
    CodeAlreadyUsed,
    InseeCodeTaken,
    InvalidCode,
    ReferenceTaken,
    TooManyAttempts,
)
from services.communes.models import AgentInvitation, FamilyLink
from services.communes.service import CommunesService
from services.communes.settings import CommunesSettings
from services.identity.service import IdentityService
from tests.integration.helpers import about, agent_of, call, new_parent

pytestmark = pytest.mark.integration

PASSWORD = "correct horse battery"
ADMIN = Caller(account_id=str(uuid.uuid4()), roles=("admin",)).as_context()
_insee = itertools.count(10_000 + uuid.uuid4().int % 50_000)


def next_insee():
    return f"{next(_insee):05d}"


def new_email(label="agent"):
    return f"{label}-{uuid.uuid4().hex[:10]}@example.org"


class EventsRecorder:
    """Stands for the services that react to communes' events (notify, booking...)."""

    name = "communes_test_recorder"

    @event_handler("communes", "adhesion_code_issued")
    def on_code_issued(self, payload):
        return payload

    @event_handler("communes", "family_linked")
    def on_family_linked(self, payload):
        return payload

    @event_handler("communes", "agent_invited")
    def on_agent_invited(self, payload):
        return payload

    @event_handler("identity", "email_verification_requested")
    def on_verification(self, payload):
        return payload


@pytest.fixture
def platform(container_factory, communes_config, identity_for_communes_config):
    identity = container_factory(IdentityService, identity_for_communes_config)
    identity.start()
    communes = container_factory(CommunesService, communes_config)
    communes.start()
    recorder = container_factory(EventsRecorder, communes_config)
    recorder.start()
    return SimpleNamespace(identity=identity, communes=communes, recorder=recorder, config=communes_config)


@pytest.fixture
def commune(platform):
    return call(platform.communes, "create_commune", "Nantes", next_insee(), caller=ADMIN)


def test_health_and_commune_admin(platform, commune):
    assert call(platform.communes, "health") == {"service": "communes", "database": "ok"}
    assert commune["timezone"] == "Europe/Paris" and commune["code_ttl_days"] == 30
    with pytest.raises(InseeCodeTaken):
        call(platform.communes, "create_commune", "Autre", commune["insee_code"], caller=ADMIN)
    assert commune["id"] in [c["id"] for c in call(platform.communes, "list_communes", caller=ADMIN)]
    with pytest.raises(Forbidden):
        call(platform.communes, "create_commune", "X", next_insee(), caller=agent_of(commune["id"]))
    with pytest.raises(Unauthenticated):
        call(platform.communes, "list_communes")
    assert (
        call(platform.communes, "get_commune", commune["id"], caller=agent_of(commune["id"]))["id"]
        == commune["id"]
    )
    with pytest.raises(NotFound):
        call(platform.communes, "get_commune", commune["id"], caller=agent_of(str(uuid.uuid4())))


def test_add_agent_for_an_existing_account_grants_the_role_in_identity(platform, commune):
    email = new_email()
    account = call(platform.identity, "register", email, PASSWORD, "fr")
    result = call(platform.communes, "add_agent", commune["id"], email.upper(), caller=ADMIN)
    assert result == {"status": "granted", "commune_id": commune["id"], "account_id": account["id"]}
    assert call(platform.identity, "find_account", email)["agent_communes"] == [commune["id"]]
    assert call(platform.communes, "is_agent", account["id"], commune["id"]) is True
    assert call(platform.communes, "add_agent", commune["id"], email, caller=ADMIN)["status"] == "granted"
    agents = call(platform.communes, "list_agents", commune["id"], caller=ADMIN)
    assert agents == [{"account_id": account["id"], "email": email, "status": "active"}]
    with pytest.raises(Forbidden):
        call(platform.communes, "add_agent", commune["id"], new_email(), caller=agent_of(commune["id"]))


def test_invitation_is_granted_when_identity_verifies_the_address(platform, commune):
    email = new_email("invited")
    with entrypoint_waiter(
        platform.recorder, "on_agent_invited", callback=about("commune_id", commune["id"])
    ) as sent:
        result = call(platform.communes, "add_agent", commune["id"], email, caller=ADMIN)
    assert result == {"status": "invited", "commune_id": commune["id"], "account_id": None}
    invitation = sent.get()
    assert (invitation["email"], invitation["commune_name"], invitation["locale"]) == (email, "Nantes", "fr")
    assert invitation["link"] == "http://portal.test/"

    with entrypoint_waiter(platform.recorder, "on_verification", callback=about("email", email)) as requested:
        account = call(platform.identity, "register", email, PASSWORD, "fr")
    assert call(platform.communes, "is_agent", account["id"], commune["id"]) is False
    with entrypoint_waiter(
        platform.communes, "on_account_verified", callback=about("email", email), timeout=20
    ):
        call(platform.identity, "verify_email", requested.get()["token"])
    assert call(platform.identity, "find_account", email)["agent_communes"] == [commune["id"]]
    assert call(platform.communes, "is_agent", account["id"], commune["id"]) is True
    assert call(platform.communes, "list_agents", commune["id"], caller=ADMIN) == [
        {"account_id": account["id"], "email": email, "status": "active"}
    ]


def test_account_verified_for_an_account_identity_does_not_know_is_dropped(platform, commune):
    email = new_email("ghost")
    call(platform.communes, "add_agent", commune["id"], email, caller=ADMIN)
    crafted = {"event_id": str(uuid.uuid4()), "account_id": str(uuid.uuid4()), "email": email, "locale": "fr"}
    dispatch = event_dispatcher(platform.config)
    with entrypoint_waiter(
        platform.communes, "on_account_verified", callback=about("email", email), timeout=20
    ):
        dispatch("identity", "account_verified", crafted)
    with Session(create_engine(platform.config["DB_URIS"]["communes"])) as session:
        [invitation] = session.scalars(
            select(AgentInvitation).where(AgentInvitation.email_normalized == email)
        ).all()
        assert invitation.accepted_at is None  # identity refused (unknown account): not granted, not looped


def test_families_children_codes_and_what_parents_see(platform, commune):
    communes = platform.communes
    cid = commune["id"]
    agent = agent_of(cid)
    family = call(
        communes,
        "create_family",
        cid,
        "F-1",
        "Famille Test",
        "famille@example.org",
        650,
        "1 rue A",
        caller=agent,
    )
    with pytest.raises(ReferenceTaken):
        call(communes, "create_family", cid, "F-1", "Autre", "autre@example.org", caller=agent)
    child = call(
        communes, "add_child", cid, family["id"], "Léa", "Test", "2019-05-04", None, "CP", caller=agent
    )
    assert child["birth_date"] == "2019-05-04" and child["class_name"] == "CP"
    updated = call(communes, "update_family", cid, family["id"], {"quotient_familial": 700}, caller=agent)
    assert updated["quotient_familial"] == 700 and updated["address"] == "1 rue A"
    with pytest.raises(NotFound):
        call(communes, "get_family", cid, family["id"], caller=agent_of(str(uuid.uuid4())))

    with entrypoint_waiter(
        platform.recorder, "on_code_issued", callback=about("family_id", family["id"])
    ) as emailed:
        issued = call(communes, "issue_adhesion_code", cid, family["id"], caller=agent)
    event = emailed.get()
    assert event["code"] == issued["code"] and event["email"] == "famille@example.org"
    assert event["expires_at"] == issued["expires_at"] and event["commune_name"] == "Nantes"

    mother = new_parent()
    with entrypoint_waiter(
        platform.recorder, "on_family_linked", callback=about("family_id", family["id"])
    ) as linked:
        joined = call(
            communes, "redeem_adhesion_code", issued["code"].lower().replace("-", " "), caller=mother
        )
    assert joined == {
        "commune": {"id": cid, "name": "Nantes"},
        "family": {"id": family["id"], "name": "Famille Test"},
    }
    assert linked.get()["account_id"] == mother["account_id"]
    with pytest.raises(CodeAlreadyUsed):
        call(communes, "redeem_adhesion_code", issued["code"], caller=new_parent())
    with pytest.raises(Unauthenticated):
        call(communes, "redeem_adhesion_code", issued["code"])
    second = call(communes, "issue_adhesion_code", cid, family["id"], caller=agent)
    with pytest.raises(AlreadyLinked):
        call(communes, "redeem_adhesion_code", second["code"], caller=mother)

    assert call(communes, "list_memberships", caller=mother) == [
        {"id": cid, "name": "Nantes", "family": {"id": family["id"], "name": "Famille Test"}}
    ]
    [mine] = call(communes, "list_my_children", cid, caller=mother)
    assert mine == {
        "id": child["id"],
        "first_name": "Léa",
        "last_name": "Test",
        "birth_date": "2019-05-04",
        "school": None,
        "class_name": "CP",
        "family_id": family["id"],
    }
    with pytest.raises(NotFound):
        call(communes, "list_my_children", cid, caller=new_parent())
    read = call(communes, "get_family", cid, family["id"], caller=agent)
    assert read["linked_accounts"] == 1 and [c["id"] for c in read["children"]] == [child["id"]]

    # access checks, as other services ask them (no account in context), or the account itself
    checked = call(communes, "check_child_access", mother["account_id"], child["id"])
    assert {k: v for k, v in checked.items() if k != "child"} == {
        "allowed": True,
        "family_id": family["id"],
        "commune_id": cid,
        "relation": "parent",
    }
    assert checked["child"]["id"] == child["id"] and checked["child"]["birth_date"] == child["birth_date"]
    assert call(communes, "check_child_access", str(uuid.uuid4()), child["id"])["allowed"] is False
    assert call(communes, "check_child_access", mother["account_id"], child["id"], caller=mother)["allowed"]
    with pytest.raises(Forbidden):
        call(communes, "check_child_access", mother["account_id"], child["id"], caller=new_parent())
    assert call(communes, "check_family_access", mother["account_id"], family["id"]) == {
        "allowed": True,
        "commune_id": cid,
        "relation": "parent",
    }
    assert call(communes, "get_family_billing_profile", family["id"]) == {
        "family_id": family["id"],
        "commune_id": cid,
        "quotient_familial": 700,
    }
    with pytest.raises(NotFound):
        call(communes, "get_family_billing_profile", family["id"], caller=mother)
    profiles = call(communes, "billing_profiles", cid)  # billing's month-end run, internal only
    assert profiles[family["id"]]["quotient_familial"] == 700
    assert profiles[family["id"]]["children"][child["id"]] == child["first_name"]
    assert call(communes, "billing_profiles", str(uuid.uuid4())) == {}
    for outsider in (mother, agent):
        with pytest.raises(Forbidden):
            call(communes, "billing_profiles", cid, caller=outsider)

    actions = [e["action"] for e in call(communes, "list_audit", cid, caller=agent)]
    assert actions[:3] == ["family.read", "adhesion_code.issue", "family.link"]
    assert {"family.create", "child.create", "family.update"} <= set(actions)


def test_failed_redemptions_are_throttled(platform):
    who = new_parent()
    for _ in range(10):
        with pytest.raises(InvalidCode):
            call(platform.communes, "redeem_adhesion_code", "ZZZZ-ZZZZ-ZZZZ", caller=who)
    with pytest.raises(TooManyAttempts) as blocked:
        call(platform.communes, "redeem_adhesion_code", "ZZZZ-ZZZZ-ZZZZ", caller=who)
    assert blocked.value.code == "TOO_MANY_ATTEMPTS" and 3500 < blocked.value.details["retry_after"] <= 3600


def test_concurrent_redemptions_of_one_code_link_exactly_one_account(platform, commune):
    agent = agent_of(commune["id"])
    family = call(
        platform.communes,
        "create_family",
        commune["id"],
        "RACE",
        "Famille Course",
        "c@example.org",
        caller=agent,
    )
    code = call(platform.communes, "issue_adhesion_code", commune["id"], family["id"], caller=agent)["code"]

    def attempt(who):
        # separate RPC clients (entrypoint_hook's waiters would see each other's results)
        with ServiceRpcProxy("communes", platform.config, context_data=who, timeout=30) as client:
            try:
                return client.redeem_adhesion_code(code)
            except CodeAlreadyUsed as exc:
                return exc

    pool = eventlet.GreenPool()
    outcomes = list(pool.imap(attempt, [new_parent() for _ in range(8)]))
    assert sum(not isinstance(o, Exception) for o in outcomes) == 1
    assert sum(isinstance(o, CodeAlreadyUsed) for o in outcomes) == 7
    with Session(create_engine(platform.config["DB_URIS"]["communes"])) as session:
        assert len(session.scalars(select(FamilyLink).where(FamilyLink.family_id == family["id"])).all()) == 1


def test_a_redemption_that_loses_the_race_after_reading_links_nothing(platform, commune):
    """Deterministic interleaving on PostgreSQL: B redeems and commits between A's read of the code
    (unused) and A's conditional update."""
    agent = agent_of(commune["id"])
    family = call(
        platform.communes,
        "create_family",
        commune["id"],
        "RACE-2",
        "Famille B",
        "b@example.org",
        caller=agent,
    )
    code = call(platform.communes, "issue_adhesion_code", commune["id"], family["id"], caller=agent)["code"]
    settings = CommunesSettings(adhesion_code_key=platform.config["ADHESION_CODE_KEY"].encode())
    engine = create_engine(platform.config["DB_URIS"]["communes"])
    a, b = str(uuid.uuid4()), str(uuid.uuid4())
    outcomes = {}

    def b_wins_first(conn, cursor, statement, parameters, context, executemany):
        if statement.lstrip().upper().startswith("UPDATE ADHESION_CODES") and "b" not in outcomes:
            outcomes["b"] = None
            with Session(engine) as other, other.begin():
                outcomes["b"] = adhesion.redeem(other, settings, b, "192.0.2.2", code)

    from sqlalchemy import event

    event.listen(engine, "before_cursor_execute", b_wins_first)
    try:
        with Session(engine) as mine, mine.begin():
            outcomes["a"] = adhesion.redeem(mine, settings, a, "192.0.2.1", code)
    finally:
        event.remove(engine, "before_cursor_execute", b_wins_first)
        engine.dispose()
    assert outcomes["b"]["family"]["id"] == family["id"]
    assert isinstance(outcomes["a"], CodeAlreadyUsed)
    with Session(create_engine(platform.config["DB_URIS"]["communes"])) as session:
        links = session.scalars(
            select(FamilyLink.account_id).where(FamilyLink.family_id == family["id"])
        ).all()
    assert links == [b]


def test_audit_table_refuses_update_delete_and_truncate_on_postgresql(platform, commune):
    agent = agent_of(commune["id"])
    call(
        platform.communes,
        "create_family",
        commune["id"],
        "AUD",
        "Famille Audit",
        "a@example.org",
        caller=agent,
    )
    engine = create_engine(platform.config["DB_URIS"]["communes"])
    try:
        for statement in (
            "UPDATE audit_entries SET action = 'family.nothing'",
            "DELETE FROM audit_entries",
            "TRUNCATE audit_entries",
        ):
            with pytest.raises(DBAPIError) as refused, engine.begin() as conn:
                conn.execute(text(statement))
            assert "append-only" in str(refused.value.orig)
        with engine.connect() as conn:
            count = conn.execute(
                text("SELECT count(*) FROM audit_entries WHERE commune_id = :c AND action = 'family.create'"),
                {"c": commune["id"]},
            ).scalar()
        assert count == 1
    finally:
        engine.dispose()

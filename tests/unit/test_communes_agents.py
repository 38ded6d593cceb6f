"""Agents: granting through identity, invitations, the account_verified handler, and the ops CLI,
on SQLite. identity is represented by a small in-memory stand-in with the same RPC names (the
integration tests run the real identity service)."""

import uuid

import pytest
from sqlalchemy import create_engine, select
from sqlalchemy.orm import Session, sessionmaker
from sqlalchemy.pool import StaticPool

from services.common.context import Caller
from services.common.db import WorkerDb
from services.common.errors import Forbidden, NotFound, ServiceUnavailable, ValidationFailed
from services.communes import access, agents, communes, validation
from services.communes.models import AgentInvitation, Base, CommuneAgent, OutboxEvent, ProcessedEvent
from services.communes.settings import CommunesSettings

SETTINGS = CommunesSettings(public_url="http://portal.test", adhesion_code_key=b"k")
ADMIN = Caller(account_id=str(uuid.uuid4()), roles=("admin",))


class IdentityStandIn:
    """identity's find_account / grant_role, in memory."""

    def __init__(self):
        self.accounts = {}
        self.grants = []
        self.down = False

    def add(self, email):
        account = {"id": str(uuid.uuid4()), "email": email, "roles": [], "agent_communes": []}
        self.accounts[email.lower()] = account
        return account

    def find_account(self, email):
        if self.down:
            raise ServiceUnavailable()
        return self.accounts.get(email.strip().lower())

    def grant_role(self, account_id, role, scope=""):
        if self.down:
            raise ServiceUnavailable()
        created = (account_id, role, scope) not in self.grants
        if created:
            self.grants.append((account_id, role, scope))
        return {"account_id": account_id, "role": role, "scope": scope, "created": created}


@pytest.fixture
def pristine_yaml():
    """load_config must leave yaml.SafeLoader alone (other code parses config files raw)."""
    import yaml

    before = (dict(yaml.SafeLoader.yaml_implicit_resolvers), dict(yaml.SafeLoader.yaml_constructors))
    yield
    after = (dict(yaml.SafeLoader.yaml_implicit_resolvers), dict(yaml.SafeLoader.yaml_constructors))
    assert after == before


@pytest.fixture
def engine():
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    Base.metadata.create_all(engine)
    return engine


@pytest.fixture
def db(engine):
    return WorkerDb(sessionmaker(bind=engine, expire_on_commit=False))


@pytest.fixture
def commune_id(db):
    with db.transaction() as session:
        return communes.create_commune(session, ADMIN.account_id, "Nantes", "44109").id


def rows(engine, model):
    with Session(engine) as session:
        return session.scalars(select(model)).all()


def test_existing_account_is_granted_in_identity_and_recorded(db, engine, commune_id):
    identity = IdentityStandIn()
    account = identity.add("Agent@Example.org")
    result = agents.add_agent(db, identity, SETTINGS, ADMIN, commune_id, " agent@example.org ")
    assert result == {"status": "granted", "commune_id": commune_id, "account_id": account["id"]}
    assert identity.grants == [(account["id"], "agent", commune_id)]
    again = agents.add_agent(db, identity, SETTINGS, ADMIN, commune_id, "agent@example.org")
    assert again["status"] == "granted" and len(rows(engine, CommuneAgent)) == 1
    with Session(engine) as session:
        assert access.is_agent(session, account["id"], commune_id)
        listed = communes.list_agents(
            session, Caller(account_id=account["id"], roles=(f"agent:{commune_id}",)), commune_id
        )
    assert listed == [{"account_id": account["id"], "email": "Agent@Example.org", "status": "active"}]


def test_unknown_address_is_invited_once_then_granted_when_verified(db, engine, commune_id):
    identity = IdentityStandIn()
    result = agents.add_agent(db, identity, SETTINGS, ADMIN, commune_id, "New.Agent@Example.org")
    assert result == {"status": "invited", "commune_id": commune_id, "account_id": None}
    agents.add_agent(db, identity, SETTINGS, ADMIN, commune_id, "new.agent@example.org")  # idempotent
    invitations = rows(engine, AgentInvitation)
    assert [(i.email_normalized, i.accepted_at) for i in invitations] == [("new.agent@example.org", None)]
    [event] = [e.payload for e in rows(engine, OutboxEvent) if e.event_type == "agent_invited"]
    assert event == {
        "event_id": event["event_id"],
        "commune_id": commune_id,
        "commune_name": "Nantes",
        "email": "New.Agent@Example.org",
        "locale": "fr",
        "link": "http://portal.test/",
    }
    with Session(engine) as session:
        assert communes.list_agents(session, ADMIN, commune_id) == [
            {"account_id": None, "email": "new.agent@example.org", "status": "invited"}
        ]

    account = identity.add("new.agent@example.org")
    verified = {
        "event_id": str(uuid.uuid4()),
        "account_id": account["id"],
        "email": "New.Agent@example.org",
        "locale": "fr",
    }
    assert agents.on_account_verified(db, identity, verified) == 1
    assert identity.grants == [(account["id"], "agent", commune_id)]
    assert agents.on_account_verified(db, identity, verified) == 0  # redelivery changes nothing
    assert len(identity.grants) == 1 and len(rows(engine, CommuneAgent)) == 1
    [invitation] = rows(engine, AgentInvitation)
    assert invitation.accepted_at is not None and invitation.account_id == account["id"]
    with Session(engine) as session:
        assert communes.list_agents(session, ADMIN, commune_id)[0]["status"] == "active"


def test_verified_address_without_invitation_changes_nothing(db, engine, commune_id):
    identity = IdentityStandIn()
    event = {"event_id": str(uuid.uuid4()), "account_id": str(uuid.uuid4()), "email": "someone@example.org"}
    assert agents.on_account_verified(db, identity, event) == 0
    assert identity.grants == [] and len(rows(engine, ProcessedEvent)) == 1


def test_handler_raises_for_a_retry_when_identity_is_down_and_drops_malformed_events(
    db, engine, commune_id, monkeypatch
):
    monkeypatch.setattr(agents, "REQUEUE_DELAY_SECONDS", 0)
    identity = IdentityStandIn()
    agents.add_agent(db, identity, SETTINGS, ADMIN, commune_id, "later@example.org")
    account = identity.add("later@example.org")
    identity.down = True
    event = {"event_id": str(uuid.uuid4()), "account_id": account["id"], "email": "later@example.org"}
    with pytest.raises(ServiceUnavailable):
        agents.on_account_verified(db, identity, event)
    assert rows(engine, ProcessedEvent) == []  # not recorded: the redelivery will do the work
    identity.down = False
    assert agents.on_account_verified(db, identity, event) == 1
    assert agents.on_account_verified(db, identity, {"email": "x@example.org"}) == 0
    assert agents.on_account_verified(db, identity, "not a dict") == 0


def test_add_agent_rules(db, commune_id):
    identity = IdentityStandIn()
    with pytest.raises(Forbidden):
        agents.add_agent(
            db,
            identity,
            SETTINGS,
            Caller(account_id="x", roles=(f"agent:{commune_id}",)),
            commune_id,
            "a@example.org",
        )
    with pytest.raises(ValidationFailed) as refused:
        agents.add_agent(db, identity, SETTINGS, ADMIN, commune_id, "not an email")
    assert list(refused.value.details["fields"]) == ["email"]
    with pytest.raises(NotFound):
        agents.add_agent(db, identity, SETTINGS, ADMIN, str(uuid.uuid4()), "a@example.org")
    assert identity.grants == []


def test_cli_creates_the_commune_and_grants_or_invites(tmp_path, monkeypatch, pristine_yaml):
    from services.communes import cli
    from services.identity import accounts
    from services.identity.models import Base as IdentityBase

    communes_uri = f"sqlite:///{tmp_path / 'communes.db'}"
    identity_uri = f"sqlite:///{tmp_path / 'identity.db'}"
    Base.metadata.create_all(create_engine(communes_uri))
    identity_engine = create_engine(identity_uri)
    IdentityBase.metadata.create_all(identity_engine)
    with Session(identity_engine) as session, session.begin():
        existing, _ = accounts.create_admin(session, "maire@example.org", "une phrase de passe solide")
        existing_id = existing.id

    report = cli.create_commune(
        "Rennes", "35238", agent_email="Maire@example.org", uri=communes_uri, identity_uri=identity_uri
    )
    assert report["created"] and report["agent"] == "granted" and report["account_id"] == existing_id
    with Session(identity_engine) as session:
        assert f"agent:{report['commune_id']}" in accounts.role_claims(session, existing_id)
    with Session(create_engine(communes_uri)) as session:
        assert access.is_agent(session, existing_id, report["commune_id"])

    again = cli.create_commune("Rennes", "35238", agent_email="nouvel.agent@example.org", uri=communes_uri)
    assert (
        not again["created"] and again["commune_id"] == report["commune_id"] and again["agent"] == "invited"
    )
    with Session(create_engine(communes_uri)) as session:
        pending = communes.pending_invitations(session, "nouvel.agent@example.org")
        assert [p.commune_id for p in pending] == [report["commune_id"]]
        assert [e.event_type for e in session.scalars(select(OutboxEvent))] == ["agent_invited"]

    monkeypatch.setenv("COMMUNES_DB_URI", communes_uri)
    assert cli.main(["create-commune", "--name", "Brest", "--insee", "2C001"]) == 2
    assert (
        cli.main(["create-commune", "--name", "Brest", "--insee", "29019", "--timezone", "Europe/Paris"]) == 0
    )


def test_email_normalization_matches_identitys():
    from services.identity.accounts import normalize_email

    for address in (" Agent@Example.ORG ", "a.b@c.fr"):
        assert validation.normalize_email(address) == normalize_email(address)

"""identity's `contact`: an account's address and language for notify, internal callers only."""

import contextlib
import uuid

import pytest
from nameko.testing.services import worker_factory
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from services.common.context import Caller
from services.common.errors import Forbidden
from services.identity import accounts
from services.identity.models import Account, Base
from services.identity.service import IdentityService
from services.identity.settings import IdentitySettings

SETTINGS = IdentitySettings(public_url="http://portal.test", issuer="http://portal.test")


@pytest.fixture
def session():
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    Base.metadata.create_all(engine)
    with Session(engine) as s:
        yield s


def test_contact_gives_the_address_as_registered_and_the_locale(session):
    english = accounts.register(session, SETTINGS, " Parent@Example.org ", "une phrase de passe", "en")
    french = accounts.register(session, SETTINGS, "autre@example.org", "une phrase de passe", None)
    assert accounts.contact(session, english.id) == {"email": "Parent@Example.org", "locale": "en"}
    assert accounts.contact(session, french.id) == {"email": "autre@example.org", "locale": "fr"}


def test_contact_falls_back_to_french_for_an_unknown_stored_locale(session):
    account = accounts.register(session, SETTINGS, "p@example.org", "une phrase de passe", "fr")
    session.get(Account, account.id).locale = "de"
    assert accounts.contact(session, account.id)["locale"] == "fr"


@pytest.mark.parametrize("account_id", [str(uuid.uuid4()), "", None, 12, "x" * 65])
def test_contact_of_no_account_is_none(session, account_id):
    assert accounts.contact(session, account_id) is None


class FakeDb:
    def __init__(self, session):
        self.session = session

    @contextlib.contextmanager
    def transaction(self):
        yield self.session


def test_the_rpc_answers_internal_callers_only(session):
    account = accounts.register(session, SETTINGS, "p@example.org", "une phrase de passe", "en")
    internal = worker_factory(IdentityService, db=FakeDb(session), caller=Caller())
    assert internal.contact(account.id) == {"email": "p@example.org", "locale": "en"}
    assert internal.contact(str(uuid.uuid4())) is None
    for caller in (
        Caller(account_id=account.id),  # not even about itself
        Caller(account_id=str(uuid.uuid4()), roles=("admin",)),
        Caller(account_id=str(uuid.uuid4()), roles=("agent:c1",)),
    ):
        service = worker_factory(IdentityService, db=FakeDb(session), caller=caller)
        with pytest.raises(Forbidden):
            service.contact(account.id)

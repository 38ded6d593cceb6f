"""communes' `family_contact`: a family's contact address and name for notify, internal callers only."""

import contextlib
import datetime as dt
import uuid

import pytest
from nameko.testing.services import worker_factory
from sqlalchemy import create_engine
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from services.common import clock
from services.common.context import Caller
from services.common.errors import Forbidden
from services.communes import communes, families
from services.communes.models import Base
from services.communes.service import CommunesService

ADMIN = Caller(account_id=str(uuid.uuid4()), roles=("admin",))


@pytest.fixture
def session():
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    Base.metadata.create_all(engine)
    clock.set_now(dt.datetime(2026, 3, 2, 9, 0, tzinfo=dt.UTC))
    with Session(engine) as s:
        yield s


@pytest.fixture
def family(session):
    commune = communes.create_commune(session, ADMIN.account_id, "Nantes", "44109")
    return families.create_family(
        session, ADMIN, commune.id, "F-001", name="Famille Martin", email="Martin@Example.org"
    )


def test_family_contact_gives_the_address_and_name(session, family):
    assert families.family_contact(session, family["id"]) == {
        "email": "Martin@Example.org",
        "name": "Famille Martin",
    }


@pytest.mark.parametrize("family_id", [str(uuid.uuid4()), "", None, 7, "x" * 65])
def test_family_contact_of_no_family_is_none(session, family_id):
    assert families.family_contact(session, family_id) is None


class FakeDb:
    def __init__(self, session):
        self.session = session

    @contextlib.contextmanager
    def transaction(self):
        yield self.session


def test_the_rpc_answers_internal_callers_only(session, family):
    internal = worker_factory(CommunesService, db=FakeDb(session), caller=Caller())
    assert internal.family_contact(family["id"])["email"] == "Martin@Example.org"
    assert internal.family_contact(str(uuid.uuid4())) is None
    for caller in (ADMIN, Caller(account_id=str(uuid.uuid4()), roles=(f"agent:{family['commune_id']}",))):
        service = worker_factory(CommunesService, db=FakeDb(session), caller=caller)
        with pytest.raises(Forbidden):
            service.family_contact(family["id"])

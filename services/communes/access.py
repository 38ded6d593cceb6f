"""Who may do what, and the access checks other services ask on every request.

Rules (authorization is decided here, from the caller the gateway put in the context):
- platform admin (`admin` role): creates communes and agents; may also act as an agent of any
  commune (platform support); every such read or change of families' data is audited like an
  agent's.
- agent of commune X (`agent:<X>` in the access token's roles): acts only inside X.
- anyone else asking about X (another commune's agent, a parent, an unknown commune) gets NotFound,
  never a hint that the data exists; a non-admin asking for an admin action gets Forbidden.
- a parent sees only the families its account is linked to (through adhesion codes).
Gateway calls trust the token's roles (no lookup); `is_agent` and the access checks read the local
`commune_agents` rows, which mirror identity's grants."""

from __future__ import annotations

from typing import Any

from sqlalchemy import Connection, bindparam, literal, select
from sqlalchemy.orm import Session

from services.common.context import (  # noqa: F401 - the shared rules, re-exported for callers
    ADMIN,
    AGENT,
    Caller,
    require_account,
    require_internal,
    staff_role,
)
from services.common.errors import Forbidden
from services.communes.models import Child, CommuneAgent, Family, FamilyLink

PARENT = "parent"
_MAX_ID = 64


def require_admin(caller: Caller) -> str:
    account_id = require_account(caller)
    if not caller.is_admin:
        raise Forbidden()
    return account_id


def require_internal_or_self(caller: Caller, account_id: str) -> None:
    """Access checks: other services call them without an account in context; an account may ask
    about itself; an admin about anyone."""
    if caller.account_id != account_id:
        require_internal(caller, admin_too=True)


def may_read_billing_profile(caller: Caller, commune_id: str) -> bool:
    """Internal callers (billing), admins and the commune's agents."""
    return caller.account_id is None or caller.is_admin or caller.is_agent_of(commune_id)


def _plausible_id(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= _MAX_ID


# Built once (compiled once, cached by SQLAlchemy): these run on every request of other services.
_LINK_OF_ACCOUNT = FamilyLink.account_id == bindparam("account_id")
_AGENT_ACCOUNT = CommuneAgent.account_id == bindparam("account_id")
CHILD_ACCESS = (
    select(
        Child.family_id,
        Child.commune_id,
        Child.first_name,
        Child.birth_date,
        Child.school,
        Child.class_name,
        FamilyLink.id.label("link_id"),
        CommuneAgent.id.label("agent_id"),
    )
    .outerjoin(FamilyLink, (FamilyLink.family_id == Child.family_id) & _LINK_OF_ACCOUNT)
    .outerjoin(CommuneAgent, (CommuneAgent.commune_id == Child.commune_id) & _AGENT_ACCOUNT)
    .where(Child.id == bindparam("entity_id"))
)
FAMILY_ACCESS = (
    select(Family.commune_id, FamilyLink.id.label("link_id"), CommuneAgent.id.label("agent_id"))
    .outerjoin(FamilyLink, (FamilyLink.family_id == Family.id) & _LINK_OF_ACCOUNT)
    .outerjoin(CommuneAgent, (CommuneAgent.commune_id == Family.commune_id) & _AGENT_ACCOUNT)
    .where(Family.id == bindparam("entity_id"))
)
IS_AGENT = select(literal(1)).where(CommuneAgent.commune_id == bindparam("commune_id"), _AGENT_ACCOUNT)


def _relation(row: Any) -> str | None:
    return PARENT if row.link_id is not None else AGENT if row.agent_id is not None else None


def child_access(db: Connection | Session, account_id: Any, child_id: Any) -> dict[str, Any]:
    """May `account_id` act on this child: as a parent linked to its family, or as an agent of its
    commune; when allowed, with the child's first name, birth date, school and class. One indexed
    query (the child by primary key, left-joined to the unique (account, family) link and
    (commune, account) agent keys). `db`: a Connection (the service: no ORM
    session on this hot path) or a Session."""
    denied = {"allowed": False, "family_id": None, "commune_id": None, "relation": None}
    if not _plausible_id(account_id) or not _plausible_id(child_id):
        return denied
    row = db.execute(CHILD_ACCESS, {"account_id": account_id, "entity_id": child_id}).first()
    if row is None:
        return denied
    relation = _relation(row)
    answer = {
        "allowed": relation is not None,
        "family_id": row.family_id,
        "commune_id": row.commune_id,
        "relation": relation,
    }
    if relation is not None:  # what booking needs (eligibility, labels), from the same query
        answer["child"] = {
            "id": child_id,
            "first_name": row.first_name,
            "birth_date": row.birth_date.isoformat(),
            "school": row.school,
            "class_name": row.class_name,
        }
    return answer


def family_access(db: Connection | Session, account_id: Any, family_id: Any) -> dict[str, Any]:
    """Same as child_access, for a family."""
    denied = {"allowed": False, "commune_id": None, "relation": None}
    if not _plausible_id(account_id) or not _plausible_id(family_id):
        return denied
    row = db.execute(FAMILY_ACCESS, {"account_id": account_id, "entity_id": family_id}).first()
    if row is None:
        return denied
    relation = _relation(row)
    return {"allowed": relation is not None, "commune_id": row.commune_id, "relation": relation}


def is_agent(db: Connection | Session, account_id: Any, commune_id: Any) -> bool:
    if not _plausible_id(account_id) or not _plausible_id(commune_id):
        return False
    return db.execute(IS_AGENT, {"account_id": account_id, "commune_id": commune_id}).first() is not None

"""What staff (a commune's agents, or a platform admin) do with families and children: each function
checks the caller may act inside the commune (NotFound otherwise), does the work and writes the
audit entry in the same transaction. Plain functions over a session, unit-tested on SQLite."""

from __future__ import annotations

import datetime as dt
import zoneinfo
from typing import Any

from sqlalchemy import Connection, func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.common import clock
from services.common.context import Caller
from services.common.errors import NotFound, ValidationFailed
from services.communes import access, audit, validation, views
from services.communes.communes import get_commune
from services.communes.exceptions import ReferenceTaken
from services.communes.models import Child, Commune, Family, FamilyLink


def _staff(session: Session, caller: Caller, commune_id: str) -> tuple[str, Commune]:
    role = access.staff_role(caller, commune_id)
    return role, get_commune(session, commune_id)


def family_in(session: Session, commune_id: str, family_id: Any) -> Family:
    """The family, if it belongs to this commune (else NotFound, whether it exists or not)."""
    family = session.get(Family, family_id) if isinstance(family_id, str) else None
    if family is None or family.commune_id != commune_id:
        raise NotFound()
    return family


def _reference_taken(session: Session, commune_id: str, reference: str, other_than: str | None) -> bool:
    query = select(Family.id).where(Family.commune_id == commune_id, Family.reference == reference)
    if other_than is not None:
        query = query.where(Family.id != other_than)
    return session.execute(query).first() is not None


def _flush_reference(session: Session) -> None:
    try:
        with session.begin_nested():
            session.flush()
    except IntegrityError as exc:  # the same reference recorded concurrently
        raise ReferenceTaken() from exc


def create_family(
    session: Session,
    caller: Caller,
    commune_id: str,
    reference: Any,
    name: Any,
    email: Any,
    quotient_familial: Any = None,
    address: Any = None,
) -> dict[str, Any]:
    role, commune = _staff(session, caller, commune_id)
    values = validation.family_fields(
        {
            "reference": reference,
            "name": name,
            "email": email,
            "quotient_familial": quotient_familial,
            "address": address,
        },
        partial=False,
    )
    if _reference_taken(session, commune.id, values["reference"], None):
        raise ReferenceTaken()
    now = clock.now()
    family = Family(commune_id=commune.id, created_at=now, updated_at=now, **values)
    session.add(family)
    _flush_reference(session)
    audit.record(session, caller.account_id, role, "family.create", audit.FAMILY, family.id, commune.id)
    return views.family(family)


def list_families(session: Session, caller: Caller, commune_id: str) -> list[dict[str, Any]]:
    role, commune = _staff(session, caller, commune_id)
    rows = session.scalars(
        select(Family).where(Family.commune_id == commune.id).order_by(Family.name, Family.reference)
    ).all()
    audit.record(session, caller.account_id, role, "family.list", audit.FAMILY, None, commune.id)
    return [views.family(row) for row in rows]


def _children(session: Session, family_id: str) -> list[Child]:
    return list(
        session.scalars(
            select(Child).where(Child.family_id == family_id).order_by(Child.birth_date, Child.first_name)
        ).all()
    )


def get_family(session: Session, caller: Caller, commune_id: str, family_id: str) -> dict[str, Any]:
    role, commune = _staff(session, caller, commune_id)
    family = family_in(session, commune.id, family_id)
    linked = session.scalar(
        select(func.count()).select_from(FamilyLink).where(FamilyLink.family_id == family.id)
    )
    audit.record(session, caller.account_id, role, "family.read", audit.FAMILY, family.id, commune.id)
    return {
        **views.family(family),
        "children": [views.child(c) for c in _children(session, family.id)],
        "linked_accounts": int(linked or 0),
    }


def update_family(
    session: Session, caller: Caller, commune_id: str, family_id: str, changes: Any
) -> dict[str, Any]:
    """PATCH: only the given fields change (address and quotient_familial may be set to None)."""
    role, commune = _staff(session, caller, commune_id)
    family = family_in(session, commune.id, family_id)
    values = validation.family_fields(changes, partial=True)
    if "reference" in values and _reference_taken(session, commune.id, values["reference"], family.id):
        raise ReferenceTaken()
    for key, value in values.items():
        setattr(family, key, value)
    family.updated_at = clock.now()
    _flush_reference(session)
    audit.record(session, caller.account_id, role, "family.update", audit.FAMILY, family.id, commune.id)
    return views.family(family)


def local_today(commune: Commune) -> dt.date:
    return clock.now().astimezone(zoneinfo.ZoneInfo(commune.timezone)).date()


def add_child(
    session: Session,
    caller: Caller,
    commune_id: str,
    family_id: str,
    first_name: Any,
    last_name: Any,
    birth_date: Any,
    school: Any = None,
    class_name: Any = None,
) -> dict[str, Any]:
    role, commune = _staff(session, caller, commune_id)
    family = family_in(session, commune.id, family_id)
    values = validation.child_fields(
        first_name, last_name, birth_date, school, class_name, local_today(commune)
    )
    child = Child(family_id=family.id, commune_id=commune.id, created_at=clock.now(), **values)
    session.add(child)
    session.flush()
    audit.record(session, caller.account_id, role, "child.create", audit.CHILD, child.id, commune.id)
    return views.child(child)


def list_children(session: Session, caller: Caller, commune_id: str, family_id: str) -> list[dict[str, Any]]:
    role, commune = _staff(session, caller, commune_id)
    family = family_in(session, commune.id, family_id)
    audit.record(session, caller.account_id, role, "child.list", audit.FAMILY, family.id, commune.id)
    return [views.child(c) for c in _children(session, family.id)]


def list_audit(session: Session, caller: Caller, commune_id: str, limit: Any = 100) -> list[dict[str, Any]]:
    _role, commune = _staff(session, caller, commune_id)
    return audit.entries(session, commune.id, validation.audit_limit(limit))


def billing_profile(session: Session, caller: Caller, family_id: Any) -> dict[str, Any]:
    """What billing needs to price a family (its quotient familial), for internal callers, admins
    and the family's commune's agents (NotFound for anyone else)."""
    family = session.get(Family, family_id) if isinstance(family_id, str) else None
    if family is None or not access.may_read_billing_profile(caller, family.commune_id):
        raise NotFound()
    if caller.account_id is not None:
        role = access.ADMIN if caller.is_admin else access.AGENT
        audit.record(
            session,
            caller.account_id,
            role,
            "family.billing_read",
            audit.FAMILY,
            family.id,
            family.commune_id,
        )
    return {
        "family_id": family.id,
        "commune_id": family.commune_id,
        "quotient_familial": family.quotient_familial,
    }


def family_contact(session: Session, family_id: Any) -> dict[str, str] | None:
    """Where to write to a family (for notify, internal callers only): its contact address and name,
    None if there is no such family."""
    if not isinstance(family_id, str) or not 0 < len(family_id) <= 64:
        return None
    family = session.get(Family, family_id)
    return None if family is None else {"email": family.email, "name": family.name}


def billing_profiles(session: Session | Connection, commune_id: Any) -> dict[str, dict[str, Any]]:
    """What billing's month-end run needs of every family of a commune, in two queries (internal
    callers only): {family_id: {quotient_familial, name, email, children: {child_id: first_name}}}.
    An unknown commune gives {}."""
    if not isinstance(commune_id, str) or not 0 < len(commune_id) <= 64:
        return {}
    profiles: dict[str, dict[str, Any]] = {
        row.id: {
            "quotient_familial": row.quotient_familial,
            "name": row.name,
            "email": row.email,
            "children": {},
        }
        for row in session.execute(
            select(Family.id, Family.quotient_familial, Family.name, Family.email).where(
                Family.commune_id == commune_id
            )
        )
    }
    for child_id, family_id, first_name in session.execute(
        select(Child.id, Child.family_id, Child.first_name).where(Child.commune_id == commune_id)
    ):
        if family_id in profiles:
            profiles[family_id]["children"][child_id] = first_name
    return profiles


MAX_ROSTER_IDS = 1000


def roster_children(
    session: Session, caller: Caller, commune_id: str, child_ids: Any
) -> dict[str, dict[str, str | None]]:
    """The names, class and school of these children of the commune, for its agents (or an admin):
    `{child_id: {first_name, last_name, class_name, school}}`. One query; ids of other communes'
    children (or of no child) are silently absent. At most MAX_ROSTER_IDS ids (ValidationFailed
    beyond, or when the ids are not a list of strings). Audited once per call, without the ids."""
    role = access.staff_role(caller, commune_id)
    if not isinstance(commune_id, str) or not 0 < len(commune_id) <= 64:  # an admin's malformed id
        raise NotFound()
    if not isinstance(child_ids, list | tuple) or not all(isinstance(i, str) for i in child_ids):
        raise ValidationFailed(
            "Une liste d'identifiants est attendue.", {"fields": {"child_ids": ["Une liste est attendue."]}}
        )
    if len(child_ids) > MAX_ROSTER_IDS:
        message = f"Au plus {MAX_ROSTER_IDS} enfants par liste."
        raise ValidationFailed(message, {"fields": {"child_ids": [message]}})
    wanted = sorted({i for i in child_ids if 0 < len(i) <= 64})
    rows = (
        session.execute(
            select(Child.id, Child.first_name, Child.last_name, Child.class_name, Child.school).where(
                Child.commune_id == commune_id, Child.id.in_(wanted)
            )
        ).all()
        if wanted
        else []
    )
    audit.record(session, caller.account_id, role, "child.roster_read", audit.ROSTER, None, commune_id)
    return {
        row.id: {
            "first_name": row.first_name,
            "last_name": row.last_name,
            "class_name": row.class_name,
            "school": row.school,
        }
        for row in rows
    }

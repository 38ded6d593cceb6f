"""Adhesion codes and what a parent's account sees: an agent issues a code for a family (shown once,
emailed to the family's contact address); a parent redeems it and their account is linked to the
family. Plain functions over a session, unit-tested on SQLite.

Redemption refusals that must be remembered (the failure counts for throttling) are returned, not
raised, so that the caller commits before raising them."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.common import clock
from services.common.context import Caller
from services.common.errors import NotFound, ServiceError
from services.common.messaging import record_event
from services.communes import access, audit, codes, events, throttle, views
from services.communes.communes import get_commune
from services.communes.exceptions import (
    AlreadyLinked,
    CodeAlreadyUsed,
    CodeExpired,
    InvalidCode,
    TooManyAttempts,
)
from services.communes.families import family_in
from services.communes.models import AdhesionCode, Child, Commune, Family, FamilyLink, OutboxEvent
from services.communes.settings import CommunesSettings

_MAX_TRIES = 3


def issue_code(
    session: Session, settings: CommunesSettings, caller: Caller, commune_id: str, family_id: str
) -> dict[str, Any]:
    """A new single-use code for the family (earlier codes and links are left alone)."""
    role = access.staff_role(caller, commune_id)
    commune = get_commune(session, commune_id)
    family = family_in(session, commune.id, family_id)
    now = clock.now()
    expires_at = now + dt.timedelta(days=commune.code_ttl_days)
    for attempt in range(_MAX_TRIES):
        code = codes.new_code()
        try:
            with session.begin_nested():
                session.add(
                    AdhesionCode(
                        family_id=family.id,
                        commune_id=commune.id,
                        code_hash=codes.digest(settings.adhesion_code_key, code),
                        issued_by=caller.account_id,
                        created_at=now,
                        expires_at=expires_at,
                    )
                )
            break
        except IntegrityError:  # a 2^-60 collision with a stored code: draw again
            if attempt == _MAX_TRIES - 1:
                raise
    shown = codes.display(code)
    record_event(
        session,
        OutboxEvent,
        events.ADHESION_CODE_ISSUED,
        {
            "family_id": family.id,
            "commune_id": commune.id,
            "commune_name": commune.name,
            "family_name": family.name,
            "email": family.email,
            "code": shown,
            "expires_at": expires_at.isoformat(),
            "locale": "fr",
        },
    )
    audit.record(session, caller.account_id, role, "adhesion_code.issue", audit.FAMILY, family.id, commune.id)
    return {"code": shown, "expires_at": expires_at.isoformat()}


class _Spent(Exception):
    """The conditional update found the code already used (a concurrent redemption won)."""


def redeem(
    session: Session, settings: CommunesSettings, account_id: str, client_ip: str | None, typed: Any
) -> dict[str, Any] | ServiceError:
    """Link the account to the code's family, or return the refusal (raise it after commit).

    Refusals INVALID_CODE (unknown or malformed), CODE_ALREADY_USED and CODE_EXPIRED count as
    failures for throttling; ALREADY_LINKED does not (the code was right) and spends nothing."""
    rows = throttle.lock(session, throttle.throttle_keys(account_id, client_ip, settings.adhesion_code_key))
    wait = throttle.retry_after(rows)
    if wait:
        return TooManyAttempts(details={"retry_after": wait})

    def failure(refusal: ServiceError) -> ServiceError:
        throttle.record_failure(rows)
        return refusal

    canonical = codes.normalize(typed)
    code = None
    if canonical is not None:
        digest = codes.digest(settings.adhesion_code_key, canonical)
        code = session.scalars(select(AdhesionCode).where(AdhesionCode.code_hash == digest)).first()
    if code is None:
        return failure(InvalidCode())
    now = clock.now()
    if code.used_at is not None:
        return failure(CodeAlreadyUsed())  # even for the account that used it
    if code.expires_at <= now:
        return failure(CodeExpired())
    already = session.scalars(
        select(FamilyLink.id).where(
            FamilyLink.account_id == account_id, FamilyLink.family_id == code.family_id
        )
    ).first()
    if already is not None:
        return AlreadyLinked()
    try:
        with session.begin_nested():
            spent = session.execute(
                update(AdhesionCode)
                .where(
                    AdhesionCode.id == code.id, AdhesionCode.used_at.is_(None), AdhesionCode.expires_at > now
                )
                .values(used_at=now, used_by=account_id)
                .execution_options(synchronize_session=False)
            ).rowcount
            if spent != 1:
                raise _Spent()
            session.add(
                FamilyLink(
                    account_id=account_id,
                    family_id=code.family_id,
                    commune_id=code.commune_id,
                    code_id=code.id,
                    linked_at=now,
                )
            )
    except _Spent:
        return failure(CodeAlreadyUsed())
    except IntegrityError:  # linked concurrently through another code of the same family
        return AlreadyLinked()
    family = session.get(Family, code.family_id)
    commune = session.get(Commune, code.commune_id)
    record_event(
        session,
        OutboxEvent,
        events.FAMILY_LINKED,
        {"account_id": account_id, "family_id": family.id, "commune_id": commune.id},
    )
    audit.record(session, account_id, access.PARENT, "family.link", audit.FAMILY, family.id, commune.id)
    return {
        "commune": {"id": commune.id, "name": commune.name},
        "family": {"id": family.id, "name": family.name},
    }


def memberships(session: Session | Connection, account_id: str) -> list[dict[str, Any]]:
    """One entry per family the account is linked to: the commune and that family."""
    rows = session.execute(
        select(Commune.id, Commune.name, Family.id.label("family_id"), Family.name.label("family_name"))
        .join(Family, Family.commune_id == Commune.id)
        .join(FamilyLink, FamilyLink.family_id == Family.id)
        .where(FamilyLink.account_id == account_id)
        .order_by(Commune.name, Family.name)
    ).all()
    return [{"id": r.id, "name": r.name, "family": {"id": r.family_id, "name": r.family_name}} for r in rows]


def my_children(session: Session, account_id: str, commune_id: Any) -> list[dict[str, Any]]:
    """The children of the account's families in this commune (NotFound if it has none there)."""
    if not isinstance(commune_id, str):
        raise NotFound()
    family_ids = session.scalars(
        select(FamilyLink.family_id).where(
            FamilyLink.account_id == account_id, FamilyLink.commune_id == commune_id
        )
    ).all()
    if not family_ids:
        raise NotFound()
    children = session.scalars(
        select(Child)
        .where(Child.family_id.in_(family_ids))
        .order_by(Child.birth_date, Child.first_name, Child.id)
    ).all()
    return [views.my_child(c) for c in children]

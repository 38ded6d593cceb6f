"""Communes and their agents: plain functions over a SQLAlchemy session (no broker), unit-tested on
SQLite. Granting the role in identity is agents.py's part (it needs RPC)."""

from __future__ import annotations

from typing import Any

from sqlalchemy import select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.common import clock
from services.common.context import Caller
from services.common.errors import NotFound
from services.common.messaging import record_event
from services.communes import access, events, validation, views
from services.communes.exceptions import InseeCodeTaken
from services.communes.models import AgentInvitation, Commune, CommuneAgent, OutboxEvent
from services.communes.settings import DEFAULT_CODE_TTL_DAYS, CommunesSettings

INVITED = "invited"
ACTIVE = "active"


def create_commune(
    session: Session,
    created_by: str | None,
    name: Any,
    insee_code: Any,
    timezone: Any = None,
    contact_email: Any = None,
    code_ttl_days: Any = None,
) -> Commune:
    values = validation.commune_fields(
        name, insee_code, timezone, contact_email, code_ttl_days, DEFAULT_CODE_TTL_DAYS
    )
    if commune_by_insee(session, values["insee_code"]) is not None:
        raise InseeCodeTaken()
    commune = Commune(created_at=clock.now(), created_by=created_by, **values)
    try:
        with session.begin_nested():
            session.add(commune)
    except IntegrityError as exc:  # created concurrently
        raise InseeCodeTaken() from exc
    return commune


def commune_by_insee(session: Session, insee_code: str) -> Commune | None:
    return session.scalars(select(Commune).where(Commune.insee_code == insee_code)).first()


def get_commune(session: Session, commune_id: Any) -> Commune:
    commune = session.get(Commune, commune_id) if isinstance(commune_id, str) else None
    if commune is None:
        raise NotFound()
    return commune


def settings_of(session: Session, commune_id: Any) -> dict[str, str] | None:
    """What other services need of a commune to work in its name and time: None if unknown."""
    if not isinstance(commune_id, str) or not 0 < len(commune_id) <= 64:
        return None
    commune = session.get(Commune, commune_id)
    return None if commune is None else {"name": commune.name, "timezone": commune.timezone}


def list_communes(session: Session, caller: Caller) -> list[dict[str, Any]]:
    access.require_admin(caller)
    return [views.commune(c) for c in session.scalars(select(Commune).order_by(Commune.name)).all()]


def read_commune(session: Session, caller: Caller, commune_id: str) -> dict[str, Any]:
    access.staff_role(caller, commune_id)
    return views.commune(get_commune(session, commune_id))


def record_agent(
    session: Session, commune_id: str, account_id: str, email: str | None, granted_by: str | None
) -> bool:
    """Note that identity granted `agent:<commune>` to this account (idempotent: True if new). A
    pending invitation of the same address is accepted at the same time."""
    now = clock.now()
    if email:
        session.execute(
            AgentInvitation.__table__.update()
            .where(
                AgentInvitation.commune_id == commune_id,
                AgentInvitation.email_normalized == validation.normalize_email(email),
                AgentInvitation.accepted_at.is_(None),
            )
            .values(accepted_at=now, account_id=account_id)
        )
    exists = session.scalars(
        select(CommuneAgent).where(
            CommuneAgent.commune_id == commune_id, CommuneAgent.account_id == account_id
        )
    ).first()
    if exists is not None:
        return False
    try:
        with session.begin_nested():
            session.add(
                CommuneAgent(
                    commune_id=commune_id,
                    account_id=account_id,
                    email=email,
                    granted_at=now,
                    granted_by=granted_by,
                )
            )
    except IntegrityError:  # recorded concurrently
        return False
    return True


def invite_agent(
    session: Session, settings: CommunesSettings, commune: Commune, email: str, invited_by: str | None
) -> bool:
    """A pending invitation for an address without an account; the email goes out (through the
    outbox) the first time only. True if new."""
    normalized = validation.normalize_email(email)
    exists = session.scalars(
        select(AgentInvitation).where(
            AgentInvitation.commune_id == commune.id, AgentInvitation.email_normalized == normalized
        )
    ).first()
    if exists is not None:
        return False
    try:
        with session.begin_nested():
            session.add(
                AgentInvitation(
                    commune_id=commune.id,
                    email_normalized=normalized,
                    invited_by=invited_by,
                    created_at=clock.now(),
                )
            )
    except IntegrityError:  # invited concurrently
        return False
    record_event(
        session,
        OutboxEvent,
        events.AGENT_INVITED,
        {
            "commune_id": commune.id,
            "commune_name": commune.name,
            "email": email.strip(),
            "locale": "fr",
            "link": settings.public_url + "/",
        },
    )
    return True


def pending_invitations(session: Session, email: str) -> list[AgentInvitation]:
    return list(
        session.scalars(
            select(AgentInvitation)
            .where(
                AgentInvitation.email_normalized == validation.normalize_email(email),
                AgentInvitation.accepted_at.is_(None),
            )
            .order_by(AgentInvitation.created_at)
        ).all()
    )


def list_agents(session: Session, caller: Caller, commune_id: str) -> list[dict[str, Any]]:
    """Agents (`active`) and invitations still waiting for an account (`invited`)."""
    access.staff_role(caller, commune_id)
    get_commune(session, commune_id)
    agents = session.scalars(
        select(CommuneAgent).where(CommuneAgent.commune_id == commune_id).order_by(CommuneAgent.granted_at)
    ).all()
    invitations = session.scalars(
        select(AgentInvitation)
        .where(AgentInvitation.commune_id == commune_id, AgentInvitation.accepted_at.is_(None))
        .order_by(AgentInvitation.created_at)
    ).all()
    return [
        *({"account_id": a.account_id, "email": a.email, "status": ACTIVE} for a in agents),
        *({"account_id": None, "email": i.email_normalized, "status": INVITED} for i in invitations),
    ]

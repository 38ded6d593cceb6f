"""Making someone an agent of a commune: identity owns the role (`agent:<commune_id>` in access
tokens), communes keeps a copy (`commune_agents`, for is_agent and access checks) and the
invitations of addresses that have no account yet. These steps call identity over RPC, so they run
outside any database transaction; every step is idempotent (RPCs and events may run twice)."""

from __future__ import annotations

import logging
from typing import Any

import eventlet

import services.identity.exceptions  # noqa: F401 - registers identity's errors: they come back typed
from services.common.context import Caller
from services.common.db import WorkerDb
from services.common.errors import ServiceError, ServiceTimeout, ServiceUnavailable
from services.common.messaging import first_delivery
from services.communes import access, communes, validation
from services.communes.models import AgentInvitation, ProcessedEvent
from services.communes.settings import CommunesSettings

log = logging.getLogger(__name__)

CONSUMER = "communes.account_verified"
GRANTED = "granted"
INVITED = "invited"
AGENT_ROLE = "agent"
REQUEUE_DELAY_SECONDS = 1.0


def add_agent(
    db: WorkerDb, identity: Any, settings: CommunesSettings, caller: Caller, commune_id: str, email: Any
) -> dict[str, Any]:
    """Grant the agent role of the commune to the account with this address, or invite the
    address (an email goes out) if there is no such account yet."""
    admin_id = access.require_admin(caller)
    check = validation.Checker()
    address = check.email("email", email)
    check.done()
    with db.transaction() as session:
        commune = communes.get_commune(session, commune_id)
    account = identity.find_account(address)
    if account is not None:
        identity.grant_role(account["id"], AGENT_ROLE, commune.id)
        with db.transaction() as session:
            communes.record_agent(session, commune.id, account["id"], account.get("email"), admin_id)
        log.info("agent role of commune %s granted to account %s", commune.id, account["id"])
        return {"status": GRANTED, "commune_id": commune.id, "account_id": account["id"]}
    with db.transaction() as session:
        created = communes.invite_agent(session, settings, commune, address, admin_id)
    log.info("agent invitation for commune %s %s", commune.id, "recorded" if created else "already pending")
    return {"status": INVITED, "commune_id": commune.id, "account_id": None}


def on_account_verified(db: WorkerDb, identity: Any, payload: Any) -> int:
    """identity proved an address: grant the invitations waiting for it. Returns how many were
    accepted. A malformed event is dropped (logged); a failure (identity or database down) is
    raised after a short pause, so that nameko requeues the event."""
    event_id = payload.get("event_id") if isinstance(payload, dict) else None
    account_id = payload.get("account_id") if isinstance(payload, dict) else None
    email = payload.get("email") if isinstance(payload, dict) else None
    if not all(isinstance(v, str) and 0 < len(v) <= 254 for v in (event_id, account_id, email)):
        log.error("dropped account_verified event %s: missing fields", str(event_id)[:64])
        return 0
    try:
        with db.transaction() as session:
            if session.get(ProcessedEvent, (CONSUMER, event_id)) is not None:
                return 0
            pending = [(i.id, i.commune_id) for i in communes.pending_invitations(session, email)]
        for _invitation_id, commune_id in pending:
            identity.grant_role(account_id, AGENT_ROLE, commune_id)
        with db.transaction() as session:
            if not first_delivery(session, ProcessedEvent, CONSUMER, event_id):
                return 0
            for invitation_id, commune_id in pending:
                invitation = session.get(AgentInvitation, invitation_id)
                communes.record_agent(session, commune_id, account_id, email.strip(), invitation.invited_by)
        for _invitation_id, commune_id in pending:
            log.info("invitation to commune %s accepted by account %s", commune_id, account_id)
        return len(pending)
    except ServiceError as exc:
        if not isinstance(exc, ServiceTimeout | ServiceUnavailable):  # refused for good: retrying won't help
            log.error("account_verified %s dropped: identity refused (%s)", event_id, exc.code)
            return 0
        log.error("account_verified %s not applied (%s); requeued", event_id, exc.code)
        eventlet.sleep(REQUEUE_DELAY_SECONDS)
        raise
    except Exception as exc:
        log.error("account_verified %s not applied (%s); requeued", event_id, type(exc).__name__)
        eventlet.sleep(REQUEUE_DELAY_SECONDS)
        raise

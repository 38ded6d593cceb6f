"""The communes nameko service: entrypoints only. Rules live in communes.py and agents.py
(communes, agents), families.py (families, children, audit), adhesion.py (codes, links, what
parents see), access.py (who may do what, access checks)."""

from __future__ import annotations

from typing import Any

from nameko.events import event_handler
from nameko.timer import timer

from services.common import errors
from services.common.context import Caller, CallerProvider, require_internal
from services.common.db import Database
from services.common.health import readiness
from services.common.messaging import OutboxRelay
from services.common.rpc import ServiceRpc, rpc
from services.communes import access, adhesion, agents, communes, events, families, throttle, views
from services.communes.models import Base, OutboxEvent
from services.communes.settings import CommunesSettings, Settings

EXPECTED = (errors.ServiceError,)


class CommunesService:
    name = "communes"

    db = Database(Base)
    outbox = OutboxRelay(OutboxEvent)
    caller: Caller = CallerProvider()
    identity = ServiceRpc("identity")

    settings: CommunesSettings = Settings()

    @rpc
    def health(self) -> dict[str, Any]:
        return readiness(self.name, self.db)

    # --- communes and agents (platform admin) ---------------------------------------------

    @rpc(expected_exceptions=EXPECTED)
    def create_commune(
        self,
        name: str,
        insee_code: str,
        timezone: str | None = None,
        contact_email: str | None = None,
        code_ttl_days: int | None = None,
    ) -> dict[str, Any]:
        admin_id = access.require_admin(self.caller)
        with self.db.transaction() as session:
            commune = communes.create_commune(
                session, admin_id, name, insee_code, timezone, contact_email, code_ttl_days
            )
            return views.commune(commune)

    @rpc(expected_exceptions=EXPECTED)
    def list_communes(self) -> list[dict[str, Any]]:
        with self.db.transaction() as session:
            return communes.list_communes(session, self.caller)

    @rpc(expected_exceptions=EXPECTED)
    def get_commune(self, commune_id: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            return communes.read_commune(session, self.caller, commune_id)

    @rpc(expected_exceptions=EXPECTED)
    def add_agent(self, commune_id: str, email: str) -> dict[str, Any]:
        return agents.add_agent(self.db, self.identity, self.settings, self.caller, commune_id, email)

    @rpc(expected_exceptions=EXPECTED)
    def list_agents(self, commune_id: str) -> list[dict[str, Any]]:
        with self.db.transaction() as session:
            return communes.list_agents(session, self.caller, commune_id)

    @event_handler(events.IDENTITY, events.ACCOUNT_VERIFIED, requeue_on_error=True)
    def on_account_verified(self, payload: dict[str, Any]) -> None:
        agents.on_account_verified(self.db, self.identity, payload)

    # --- families and children (agents of the commune, or admins) -------------------------

    @rpc(expected_exceptions=EXPECTED)
    def create_family(
        self,
        commune_id: str,
        reference: str,
        name: str,
        email: str,
        quotient_familial: int | None = None,
        address: str | None = None,
    ) -> dict[str, Any]:
        with self.db.transaction() as session:
            return families.create_family(
                session, self.caller, commune_id, reference, name, email, quotient_familial, address
            )

    @rpc(expected_exceptions=EXPECTED)
    def list_families(self, commune_id: str) -> list[dict[str, Any]]:
        with self.db.transaction() as session:
            return families.list_families(session, self.caller, commune_id)

    @rpc(expected_exceptions=EXPECTED)
    def get_family(self, commune_id: str, family_id: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            return families.get_family(session, self.caller, commune_id, family_id)

    @rpc(expected_exceptions=EXPECTED)
    def update_family(self, commune_id: str, family_id: str, changes: dict[str, Any]) -> dict[str, Any]:
        with self.db.transaction() as session:
            return families.update_family(session, self.caller, commune_id, family_id, changes)

    @rpc(expected_exceptions=EXPECTED)
    def add_child(
        self,
        commune_id: str,
        family_id: str,
        first_name: str,
        last_name: str,
        birth_date: str,
        school: str | None = None,
        class_name: str | None = None,
    ) -> dict[str, Any]:
        with self.db.transaction() as session:
            return families.add_child(
                session,
                self.caller,
                commune_id,
                family_id,
                first_name,
                last_name,
                birth_date,
                school,
                class_name,
            )

    @rpc(expected_exceptions=EXPECTED)
    def list_children(self, commune_id: str, family_id: str) -> list[dict[str, Any]]:
        with self.db.transaction() as session:
            return families.list_children(session, self.caller, commune_id, family_id)

    @rpc(expected_exceptions=EXPECTED)
    def roster_children(self, commune_id: str, child_ids: list[str]) -> dict[str, dict[str, Any]]:
        """Names, class and school of these children of the commune (for a roster), in one query;
        for its agents or an admin (the caller in context). Audited once per call."""
        with self.db.transaction() as session:
            return families.roster_children(session, self.caller, commune_id, child_ids)

    @rpc(expected_exceptions=EXPECTED)
    def issue_adhesion_code(self, commune_id: str, family_id: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            return adhesion.issue_code(session, self.settings, self.caller, commune_id, family_id)

    @rpc(expected_exceptions=EXPECTED)
    def list_audit(self, commune_id: str, limit: int = 100) -> list[dict[str, Any]]:
        with self.db.transaction() as session:
            return families.list_audit(session, self.caller, commune_id, limit)

    # --- parents -----------------------------------------------------------------------------

    @rpc(expected_exceptions=EXPECTED)
    def redeem_adhesion_code(self, code: str) -> dict[str, Any]:
        account_id = access.require_account(self.caller)
        with self.db.transaction() as session:
            outcome = adhesion.redeem(session, self.settings, account_id, self.caller.client_ip, code)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    @rpc(expected_exceptions=EXPECTED)
    def list_memberships(self) -> list[dict[str, Any]]:
        account_id = access.require_account(self.caller)
        with self.db.read() as conn:  # on every /me
            return adhesion.memberships(conn, account_id)

    @rpc(expected_exceptions=EXPECTED)
    def list_my_children(self, commune_id: str) -> list[dict[str, Any]]:
        account_id = access.require_account(self.caller)
        with self.db.transaction() as session:
            return adhesion.my_children(session, account_id, commune_id)

    # --- access checks for other services (internal callers, or an account about itself) ----
    # On every request of other services: one query in autocommit (db.read()), no ORM session.

    @rpc(expected_exceptions=EXPECTED)
    def check_child_access(self, account_id: str, child_id: str) -> dict[str, Any]:
        access.require_internal_or_self(self.caller, account_id)
        with self.db.read() as conn:
            return access.child_access(conn, account_id, child_id)

    @rpc(expected_exceptions=EXPECTED)
    def check_family_access(self, account_id: str, family_id: str) -> dict[str, Any]:
        access.require_internal_or_self(self.caller, account_id)
        with self.db.read() as conn:
            return access.family_access(conn, account_id, family_id)

    @rpc(expected_exceptions=EXPECTED)
    def is_agent(self, account_id: str, commune_id: str) -> bool:
        access.require_internal_or_self(self.caller, account_id)
        with self.db.read() as conn:
            return access.is_agent(conn, account_id, commune_id)

    @rpc(expected_exceptions=EXPECTED)
    def get_family_billing_profile(self, family_id: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            return families.billing_profile(session, self.caller, family_id)

    @rpc(expected_exceptions=EXPECTED)
    def commune_settings(self, commune_id: str) -> dict[str, str] | None:
        """{"name", "timezone"} of a commune, None if unknown; for internal callers only (billing
        dates invoices and cuts its exports' months in the commune's time zone)."""
        require_internal(self.caller)
        with self.db.transaction() as session:
            return communes.settings_of(session, commune_id)

    @rpc(expected_exceptions=EXPECTED)
    def billing_profiles(self, commune_id: str) -> dict[str, dict[str, Any]]:
        """Every family of the commune as billing's month-end run needs it (quotients, names,
        children's first names), for internal callers only."""
        require_internal(self.caller)
        with self.db.engine.connect() as conn:  # one read of the whole commune: no unit of work
            return families.billing_profiles(conn, commune_id)

    @rpc(expected_exceptions=EXPECTED)
    def family_contact(self, family_id: str) -> dict[str, str] | None:
        """A family's contact address and name, for internal callers only (notify); None if unknown."""
        require_internal(self.caller)
        with self.db.transaction() as session:
            return families.family_contact(session, family_id)

    @timer(interval=600)
    def purge_throttle(self) -> None:
        """Forget redemption throttle keys that had no failure within the window."""
        with self.db.transaction() as session:
            throttle.purge(session)

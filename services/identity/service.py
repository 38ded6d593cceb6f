"""The identity nameko service: entrypoints only; the rules live in accounts.py, keys.py, oidc.py."""

from __future__ import annotations

from typing import Any

from nameko.dependency_providers import Config

from services.common import errors
from services.common.context import Caller, CallerProvider, require_internal
from services.common.db import Database
from services.common.health import readiness
from services.common.messaging import OutboxRelay
from services.common.rpc import rpc
from services.identity import accounts, keys, oidc
from services.identity.models import Base, OutboxEvent
from services.identity.settings import IdentitySettings

EXPECTED = (errors.ServiceError,)


class IdentityService:
    name = "identity"

    db = Database(Base)
    outbox = OutboxRelay(OutboxEvent)
    caller: Caller = CallerProvider()

    config = Config()

    @property
    def settings(self) -> IdentitySettings:
        return IdentitySettings.from_config(self.config)

    @rpc
    def health(self) -> dict[str, Any]:
        return readiness(self.name, self.db)

    @rpc
    def echo(self, value: str) -> str:
        """The benchmark's floor: an RPC that does nothing."""
        return value

    @rpc(expected_exceptions=EXPECTED)
    def register(self, email: str, password: str, locale: str | None = None) -> dict[str, Any]:
        with self.db.transaction() as session:
            account = accounts.register(session, self.settings, email, password, locale)
            return {"id": account.id, "email": account.email, "locale": account.locale}

    @rpc(expected_exceptions=EXPECTED)
    def resend_verification(self, email: str) -> None:
        with self.db.transaction() as session:
            accounts.resend_verification(session, self.settings, email)

    @rpc(expected_exceptions=EXPECTED)
    def verify_email(self, token: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            account = accounts.verify_email(session, token)
            return {"id": account.id, "email": account.email, "email_verified": True}

    @rpc(expected_exceptions=EXPECTED)
    def login(self, email: str, password: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            outcome = accounts.login(session, self.settings, email, password, self.caller.client_ip)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome.as_response()

    @rpc(expected_exceptions=EXPECTED)
    def refresh(self, refresh_token: str) -> dict[str, Any]:
        with self.db.transaction() as session:
            outcome = accounts.refresh(session, self.settings, refresh_token)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome.as_response()

    @rpc(expected_exceptions=EXPECTED)
    def logout(self) -> None:
        self._require_account()
        with self.db.transaction() as session:
            accounts.revoke_session(session, self.settings, self.caller.session_id, "logout")

    @rpc(expected_exceptions=EXPECTED)
    def request_password_reset(self, email: str) -> None:
        with self.db.transaction() as session:
            accounts.request_password_reset(session, self.settings, email)

    @rpc(expected_exceptions=EXPECTED)
    def reset_password(self, token: str, password: str) -> None:
        with self.db.transaction() as session:
            accounts.reset_password(session, self.settings, token, password)

    @rpc(expected_exceptions=EXPECTED)
    def whoami(self) -> dict[str, Any]:
        """The calling account, if its session is still active (logout takes effect at once)."""
        account_id = self._require_account()
        with self.db.read() as conn:
            return accounts.whoami(conn, self.caller.session_id, account_id)

    @rpc(expected_exceptions=EXPECTED)
    def recent_revocations(self) -> list[dict[str, str]]:
        """Sessions revoked within the last access-token lifetime, `[{session_id, until}]`: a gateway
        that starts loads them once, then follows the `session_revoked` events. Internal callers only."""
        require_internal(self.caller)
        with self.db.read() as conn:
            return accounts.recent_revocations(conn, self.settings)

    @rpc
    def jwks(self) -> dict[str, Any]:
        with self.db.transaction() as session:
            keys.ensure_signing_key(session)
            return keys.public_jwks(session, self.settings.refresh_ttl)

    @rpc(expected_exceptions=EXPECTED)
    def grant_role(self, account_id: str, role: str, scope: str = "") -> dict[str, Any]:
        """Admins grant roles. Internal callers (other services, no account in context) may too:
        the gateway never exposes this RPC to anonymous requests."""
        require_internal(self.caller, admin_too=True)
        try:
            with self.db.transaction() as session:
                created = accounts.grant_role(session, account_id, role, scope, self.caller.account_id)
        except ValueError as exc:
            raise errors.ValidationFailed(str(exc)) from exc
        return {"account_id": account_id, "role": role, "scope": scope, "created": created}

    @rpc(expected_exceptions=EXPECTED)
    def find_account(self, email: str) -> dict[str, Any] | None:
        """For internal callers (communes: grant an agent by email)."""
        require_internal(self.caller, admin_too=True)
        with self.db.transaction() as session:
            account = accounts.account_by_email(session, email)
            return None if account is None else accounts.describe(session, account)

    @rpc(expected_exceptions=EXPECTED)
    def contact(self, account_id: str) -> dict[str, str] | None:
        """An account's address and locale, for internal callers only (notify); None if unknown."""
        require_internal(self.caller)
        with self.db.transaction() as session:
            return accounts.contact(session, account_id)

    @rpc(expected_exceptions=EXPECTED)
    def oidc_http(self, request: dict[str, Any]) -> dict[str, Any]:
        """The OpenID provider's HTTP endpoints, forwarded as plain data by the gateway (oidc_http.py)."""
        with self.db.transaction() as session:
            return oidc.handle_http(session, self.settings, self.config, request)

    def _require_account(self) -> str:
        if not self.caller.account_id:
            raise errors.Unauthenticated()
        return self.caller.account_id

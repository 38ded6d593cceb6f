"""The identity provider's own browser session (single sign-on): a `LoginSession` of kind `sso`,
found from the random value of the `pf_sso` cookie, which is stored only as a digest."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.common import clock
from services.identity import accounts
from services.identity.models import Account, LoginSession
from services.identity.secrets_util import new_token, token_digest
from services.identity.settings import IdentitySettings

SSO_COOKIE = "pf_sso"
KIND = "sso"
MAX_COOKIE_CHARS = 200


@dataclass(frozen=True)
class SsoUser:
    """The signed-in end user, as Authlib's grants see it."""

    account: Account
    login: LoginSession

    def get_user_id(self) -> str:
        return self.account.id

    @property
    def auth_time(self) -> int:
        return int(self.login.created_at.timestamp())

    def age_seconds(self) -> int:
        return int((clock.now() - self.login.created_at).total_seconds())


def find_user(session: Session, cookie_value: str | None) -> SsoUser | None:
    """The live SSO session named by the cookie (not revoked, not expired), or None."""
    if not cookie_value or len(cookie_value) > MAX_COOKIE_CHARS:
        return None
    login = session.scalars(
        select(LoginSession).where(
            LoginSession.cookie_hash == token_digest(cookie_value), LoginSession.kind == KIND
        )
    ).first()
    if login is None or login.revoked_at is not None or login.expires_at <= clock.now():
        return None
    account = session.get(Account, login.account_id)
    if account is None or account.email_verified_at is None:
        return None
    return SsoUser(account, login)


def open_session(session: Session, settings: IdentitySettings, account: Account) -> tuple[SsoUser, str]:
    """Start an SSO session; returns it and the cookie value (shown once, stored as a digest)."""
    cookie_value = new_token()
    login = accounts.start_session(session, settings, account, kind=KIND)
    login.cookie_hash = token_digest(cookie_value)
    session.flush()
    return SsoUser(account, login), cookie_value


def cookie_max_age(settings: IdentitySettings) -> int:
    return int(settings.sso_session_ttl.total_seconds())

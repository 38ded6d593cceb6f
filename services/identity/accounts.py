"""Account rules: registration, email verification, login with throttling, refresh-token rotation,
logout, password reset, roles. Plain functions over a SQLAlchemy session (no broker), so they are
unit-tested on SQLite. Functions that must persist something *and* refuse (a failed login is
counted, a reused refresh token revokes its chain) return the refusal instead of raising it, so the
caller commits first and raises after."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlencode

from sqlalchemy import Connection, select, update
from sqlalchemy.exc import IntegrityError
from sqlalchemy.orm import Session

from services.common import clock
from services.common.messaging import record_event
from services.identity import events, keys, passwords, throttle
from services.identity.exceptions import (
    AccountNotFound,
    EmailNotVerified,
    EmailTaken,
    InvalidCredentials,
    InvalidRefreshToken,
    InvalidToken,
    SessionRevoked,
    TooManyAttempts,
)
from services.identity.models import (
    Account,
    EmailToken,
    LoginSession,
    OutboxEvent,
    RefreshToken,
    RoleGrant,
)
from services.identity.secrets_util import new_token, token_digest
from services.identity.settings import IdentitySettings

LOCALES = ("fr", "en")
ROLES = ("admin", "agent")
MAX_PENDING_RESETS = 3


def normalize_email(email: str) -> str:
    return email.strip().lower()


def normalize_locale(locale: str | None) -> str:
    return locale if locale in LOCALES else "fr"


def account_by_email(session: Session, email: str) -> Account | None:
    return session.scalars(select(Account).where(Account.email_normalized == normalize_email(email))).first()


# --- registration and verification -----------------------------------------------------------


def register(
    session: Session, settings: IdentitySettings, email: str, password: str, locale: str | None
) -> Account:
    email = email.strip()
    password = passwords.check_policy(password, email)
    if account_by_email(session, email) is not None:
        raise EmailTaken()
    now = clock.now()
    account = Account(
        id=str(uuid.uuid4()),
        email=email,
        email_normalized=normalize_email(email),
        password_hash=passwords.hash_password(password),
        locale=normalize_locale(locale),
        created_at=now,
        password_changed_at=now,
    )
    session.add(account)
    try:
        session.flush()
    except IntegrityError as exc:  # registered concurrently
        raise EmailTaken() from exc
    record_event(
        session,
        OutboxEvent,
        events.ACCOUNT_REGISTERED,
        {"account_id": account.id, "locale": account.locale},
    )
    _send_email_token(session, settings, account, "verify")
    return account


def resend_verification(session: Session, settings: IdentitySettings, email: str) -> None:
    """Answers the same whether or not the account exists (or is already verified)."""
    account = account_by_email(session, email)
    if account is None or account.email_verified_at is not None:
        return
    if _pending_tokens(session, account, "verify") < MAX_PENDING_RESETS:
        _send_email_token(session, settings, account, "verify")


def _pending_tokens(session: Session, account: Account, purpose: str) -> int:
    return len(
        session.scalars(
            select(EmailToken.id).where(
                EmailToken.account_id == account.id,
                EmailToken.purpose == purpose,
                EmailToken.used_at.is_(None),
                EmailToken.expires_at > clock.now(),
            )
        ).all()
    )


def _send_email_token(session: Session, settings: IdentitySettings, account: Account, purpose: str) -> None:
    token = new_token()
    now = clock.now()
    ttl = settings.verify_ttl if purpose == "verify" else settings.reset_ttl
    expires_at = now + ttl
    session.add(
        EmailToken(
            account_id=account.id,
            purpose=purpose,
            token_hash=token_digest(token),
            expires_at=expires_at,
            created_at=now,
        )
    )
    path, event_type = {
        "verify": ("/account/verify-email", events.EMAIL_VERIFICATION_REQUESTED),
        "reset": ("/account/reset-password", events.PASSWORD_RESET_REQUESTED),
    }[purpose]
    record_event(
        session,
        OutboxEvent,
        event_type,
        {
            "account_id": account.id,
            "email": account.email,
            "locale": account.locale,
            "token": token,
            "expires_at": expires_at.isoformat(),
            "link": f"{settings.public_url}{path}?{urlencode({'token': token})}",
        },
    )


def _consume_email_token(session: Session, token: str, purpose: str) -> EmailToken:
    if not isinstance(token, str) or not token or len(token) > 200:
        raise InvalidToken()
    row = session.scalars(select(EmailToken).where(EmailToken.token_hash == token_digest(token))).first()
    now = clock.now()
    if row is None or row.purpose != purpose or row.used_at is not None or row.expires_at <= now:
        raise InvalidToken()
    # single use, even when two requests race: only one conditional update wins
    claimed = session.execute(
        update(EmailToken).where(EmailToken.id == row.id, EmailToken.used_at.is_(None)).values(used_at=now)
    ).rowcount
    if claimed != 1:
        raise InvalidToken()
    return row


def verify_email(session: Session, token: str) -> Account:
    row = _consume_email_token(session, token, "verify")
    account = session.get(Account, row.account_id)
    _mark_verified(session, account)
    return account


def _mark_verified(session: Session, account: Account) -> None:
    if account.email_verified_at is not None:
        return
    account.email_verified_at = clock.now()
    record_event(
        session,
        OutboxEvent,
        events.ACCOUNT_VERIFIED,
        {"account_id": account.id, "email": account.email, "locale": account.locale},
    )


# --- login, tokens, sessions -----------------------------------------------------------------


@dataclass(frozen=True)
class TokenPair:
    access_token: str
    refresh_token: str
    expires_in: int
    session_id: str

    def as_response(self) -> dict[str, Any]:
        return {
            "access_token": self.access_token,
            "refresh_token": self.refresh_token,
            "token_type": "Bearer",
            "expires_in": self.expires_in,
        }


def role_claims(session: Session, account_id: str) -> list[str]:
    """Roles as strings: `admin`, `agent:<commune_id>`."""
    grants = session.scalars(select(RoleGrant).where(RoleGrant.account_id == account_id)).all()
    return sorted(g.role if not g.scope else f"{g.role}:{g.scope}" for g in grants)


def access_token(session: Session, settings: IdentitySettings, account: Account, session_id: str) -> str:
    now = clock.now()
    claims = {
        "iss": settings.issuer,
        "aud": settings.audience,
        "sub": account.id,
        "sid": session_id,
        "roles": role_claims(session, account.id),
        "iat": int(now.timestamp()),
        "exp": int((now + settings.access_ttl).timestamp()),
        "jti": str(uuid.uuid4()),
    }
    return keys.sign(keys.ensure_signing_key(session), claims, typ="at+jwt")


def _issue_refresh(
    session: Session, settings: IdentitySettings, login: LoginSession, parent_id: str | None
) -> str:
    token = new_token()
    now = clock.now()
    session.add(
        RefreshToken(
            session_id=login.id,
            token_hash=token_digest(token),
            parent_id=parent_id,
            created_at=now,
            expires_at=min(login.expires_at, now + settings.refresh_ttl),
        )
    )
    return token


def start_session(
    session: Session, settings: IdentitySettings, account: Account, kind: str = "api"
) -> LoginSession:
    now = clock.now()
    ttl = settings.refresh_ttl if kind == "api" else settings.sso_session_ttl
    login = LoginSession(
        id=str(uuid.uuid4()),
        account_id=account.id,
        kind=kind,
        created_at=now,
        expires_at=now + ttl,
    )
    session.add(login)
    session.flush()
    return login


def check_credentials(
    session: Session, email: str, password: str, client_ip: str | None
) -> Account | Exception:
    """The account if the password is right and the email verified; else the refusal to raise
    after commit (failures are counted, per account and per address, existing or not)."""
    email_normalized = normalize_email(email)
    limits = throttle.throttle_keys(email_normalized, client_ip)
    wait = throttle.retry_after(session, limits)
    if wait:
        return TooManyAttempts(details={"retry_after": wait})
    account = account_by_email(session, email_normalized)
    if account is None:
        passwords.burn_verification_time(password)
        throttle.record_failure(session, limits)
        return InvalidCredentials()
    if not passwords.verify_password(account.password_hash, password):
        throttle.record_failure(session, limits)
        return InvalidCredentials()
    throttle.record_success(session, email_normalized)
    if account.email_verified_at is None:
        return EmailNotVerified()
    return account


def login(
    session: Session, settings: IdentitySettings, email: str, password: str, client_ip: str | None
) -> TokenPair | Exception:
    outcome = check_credentials(session, email, password, client_ip)
    if isinstance(outcome, Exception):
        return outcome
    login_session = start_session(session, settings, outcome)
    refresh = _issue_refresh(session, settings, login_session, None)
    return TokenPair(
        access_token=access_token(session, settings, outcome, login_session.id),
        refresh_token=refresh,
        expires_in=int(settings.access_ttl.total_seconds()),
        session_id=login_session.id,
    )


def refresh(session: Session, settings: IdentitySettings, token: str) -> TokenPair | Exception:
    """Rotate: the presented token is spent and a new one issued. Presenting a spent token again
    means it leaked: the whole session (every token of the chain) is revoked."""
    if not isinstance(token, str) or not token or len(token) > 200:
        return InvalidRefreshToken()
    row = session.scalars(select(RefreshToken).where(RefreshToken.token_hash == token_digest(token))).first()
    if row is None:
        return InvalidRefreshToken()
    login_session = session.get(LoginSession, row.session_id)
    now = clock.now()
    if login_session.revoked_at is not None:
        return InvalidRefreshToken()
    if row.used_at is not None:
        revoke_session(session, settings, login_session.id, "refresh_reuse")
        return InvalidRefreshToken()
    if row.expires_at <= now or login_session.expires_at <= now:
        return InvalidRefreshToken()
    spent = session.execute(
        update(RefreshToken)
        .where(RefreshToken.id == row.id, RefreshToken.used_at.is_(None))
        .values(used_at=now)
    ).rowcount
    if spent != 1:  # a concurrent refresh with the same token: treat as reuse
        revoke_session(session, settings, login_session.id, "refresh_reuse")
        return InvalidRefreshToken()
    account = session.get(Account, login_session.account_id)
    new_refresh = _issue_refresh(session, settings, login_session, row.id)
    return TokenPair(
        access_token=access_token(session, settings, account, login_session.id),
        refresh_token=new_refresh,
        expires_in=int(settings.access_ttl.total_seconds()),
        session_id=login_session.id,
    )


def revoke_session(session: Session, settings: IdentitySettings, session_id: str, reason: str) -> None:
    """Revoke one login session (if still active) and tell the gateways (`session_revoked`)."""
    now = clock.now()
    account_id = session.scalars(
        update(LoginSession)
        .where(LoginSession.id == session_id, LoginSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
        .returning(LoginSession.account_id)
    ).first()
    if account_id is not None:  # not already revoked (by a concurrent request, say)
        _session_revoked(session, settings, session_id, account_id, now)


def revoke_all_sessions(session: Session, settings: IdentitySettings, account_id: str, reason: str) -> None:
    """Revoke every active session of an account, one `session_revoked` event each."""
    now = clock.now()
    active = session.scalars(
        select(LoginSession.id).where(
            LoginSession.account_id == account_id, LoginSession.revoked_at.is_(None)
        )
    ).all()
    if not active:
        return
    revoked = session.scalars(
        update(LoginSession)
        .where(LoginSession.id.in_(active), LoginSession.revoked_at.is_(None))
        .values(revoked_at=now, revoked_reason=reason)
        .returning(LoginSession.id)
    ).all()
    for session_id in revoked:
        _session_revoked(session, settings, session_id, account_id, now)


def _session_revoked(
    session: Session, settings: IdentitySettings, session_id: str, account_id: str, now: dt.datetime
) -> None:
    """The one place a revocation is announced: after `until`, no access token of it is valid anyway."""
    record_event(
        session,
        OutboxEvent,
        events.SESSION_REVOKED,
        {
            "session_id": session_id,
            "account_id": account_id,
            "until": (now + settings.access_ttl).isoformat(),
        },
    )


def recent_revocations(conn: Connection | Session, settings: IdentitySettings) -> list[dict[str, str]]:
    """Sessions revoked within the last access-token lifetime (a starting gateway's catch-up)."""
    cutoff = clock.now() - settings.access_ttl
    rows = conn.execute(
        select(LoginSession.id, LoginSession.revoked_at).where(LoginSession.revoked_at > cutoff)
    ).all()
    return [
        {"session_id": row.id, "until": (row.revoked_at + settings.access_ttl).isoformat()} for row in rows
    ]


def active_session(session: Session, session_id: str | None, account_id: str) -> LoginSession:
    login_session = session.get(LoginSession, session_id) if session_id else None
    if (
        login_session is None
        or login_session.account_id != account_id
        or login_session.revoked_at is not None
        or login_session.expires_at <= clock.now()
    ):
        raise SessionRevoked()
    return login_session


def whoami(conn: Connection | Session, session_id: str | None, account_id: str) -> dict[str, Any]:
    """The account behind an access token, if its session is still active. On every `/me`: plain
    Core queries (a pooled connection is enough, no ORM unit of work)."""
    row = None
    if session_id:
        row = conn.execute(
            select(
                Account.id,
                Account.email,
                Account.locale,
                Account.email_verified_at,
                LoginSession.revoked_at,
                LoginSession.expires_at,
            )
            .join(LoginSession, LoginSession.account_id == Account.id)
            .where(LoginSession.id == session_id, Account.id == account_id)
        ).first()
    if row is None or row.revoked_at is not None or row.expires_at <= clock.now():
        raise SessionRevoked()
    grants = conn.execute(
        select(RoleGrant.role, RoleGrant.scope).where(RoleGrant.account_id == account_id)
    ).all()
    return _description(row, grants)


def _description(account: Any, grants: Any) -> dict[str, Any]:
    return {
        "id": account.id,
        "email": account.email,
        "locale": account.locale,
        "email_verified": account.email_verified_at is not None,
        "roles": sorted({g.role for g in grants}),
        "agent_communes": sorted(g.scope for g in grants if g.role == "agent"),
    }


# --- password reset --------------------------------------------------------------------------


def request_password_reset(session: Session, settings: IdentitySettings, email: str) -> None:
    """Answers the same whether or not the account exists; at most a few live tokens each."""
    account = account_by_email(session, email) if isinstance(email, str) else None
    if account is None:
        return
    if _pending_tokens(session, account, "reset") >= MAX_PENDING_RESETS:
        return
    _send_email_token(session, settings, account, "reset")


def reset_password(session: Session, settings: IdentitySettings, token: str, password: str) -> Account:
    """Spend the token, set the password, revoke every session of the account."""
    if not isinstance(token, str):
        raise InvalidToken()
    row = session.scalars(select(EmailToken).where(EmailToken.token_hash == token_digest(token))).first()
    account = session.get(Account, row.account_id) if row is not None else None
    # check the password before spending the token, so a refused password can be retried
    password = passwords.check_policy(password, account.email if account else None)
    row = _consume_email_token(session, token, "reset")
    account = session.get(Account, row.account_id)
    now = clock.now()
    account.password_hash = passwords.hash_password(password)
    account.password_changed_at = now
    _mark_verified(session, account)  # they proved they read this mailbox
    revoke_all_sessions(session, settings, account.id, "password_reset")
    throttle.record_success(session, account.email_normalized)
    record_event(
        session,
        OutboxEvent,
        events.PASSWORD_CHANGED,
        {"account_id": account.id, "email": account.email, "locale": account.locale},
    )
    return account


# --- reading accounts and roles --------------------------------------------------------------


def describe(session: Session, account: Account) -> dict[str, Any]:
    grants = session.execute(
        select(RoleGrant.role, RoleGrant.scope).where(RoleGrant.account_id == account.id)
    ).all()
    return _description(account, grants)


def contact(session: Session, account_id: Any) -> dict[str, str] | None:
    """Where to write to an account (for notify): its address and language, None if there is no such
    account."""
    if not isinstance(account_id, str) or not 0 < len(account_id) <= 64:
        return None
    account = session.get(Account, account_id)
    return None if account is None else {"email": account.email, "locale": normalize_locale(account.locale)}


def grant_role(session: Session, account_id: str, role: str, scope: str, granted_by: str | None) -> bool:
    """Idempotent: True if the grant is new."""
    if role not in ROLES:
        raise ValueError(f"unknown role {role!r}")
    if (role == "agent") != bool(scope):
        raise ValueError("an agent role needs a commune; admin has none")
    if session.get(Account, account_id) is None:
        raise AccountNotFound()
    exists = session.scalars(
        select(RoleGrant).where(
            RoleGrant.account_id == account_id, RoleGrant.role == role, RoleGrant.scope == scope
        )
    ).first()
    if exists is not None:
        return False
    session.add(
        RoleGrant(
            account_id=account_id,
            role=role,
            scope=scope,
            granted_by=granted_by,
            granted_at=clock.now(),
        )
    )
    return True


def create_admin(session: Session, email: str, password: str) -> tuple[Account, bool]:
    """Create a verified admin, or promote (and verify) an existing account. Returns
    (account, created). An existing account keeps its password."""
    account = account_by_email(session, email)
    created = account is None
    if account is None:
        password = passwords.check_policy(password, email)
        now = clock.now()
        account = Account(
            id=str(uuid.uuid4()),
            email=email.strip(),
            email_normalized=normalize_email(email),
            password_hash=passwords.hash_password(password),
            locale="fr",
            created_at=now,
            password_changed_at=now,
        )
        session.add(account)
        session.flush()
    _mark_verified(session, account)
    grant_role(session, account.id, "admin", "", None)
    return account, created

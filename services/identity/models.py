"""Identity's tables: accounts, roles, email tokens, sessions, refresh tokens, throttling, keys,
OIDC authorization codes. Secrets (passwords, tokens) are stored only as hashes."""

from __future__ import annotations

import datetime as dt

from sqlalchemy import ForeignKey, Index, Integer, String, Text, UniqueConstraint
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.db import UtcDateTime, new_id
from services.common.messaging import messaging_tables


class Base(DeclarativeBase):
    pass


OutboxEvent, ProcessedEvent = messaging_tables(Base)


class Account(Base):
    __tablename__ = "accounts"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    email: Mapped[str] = mapped_column(String(254))
    email_normalized: Mapped[str] = mapped_column(String(254), unique=True)
    password_hash: Mapped[str] = mapped_column(String(255))
    locale: Mapped[str] = mapped_column(String(5), default="fr")
    email_verified_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    password_changed_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class RoleGrant(Base):
    """`admin` (scope '') or `agent` (scope = commune id)."""

    __tablename__ = "role_grants"
    __table_args__ = (UniqueConstraint("account_id", "role", "scope"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    role: Mapped[str] = mapped_column(String(20))
    scope: Mapped[str] = mapped_column(String(36), default="")
    granted_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    granted_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class EmailToken(Base):
    """Single-use tokens sent by email: `verify` (48 h) and `reset` (short-lived)."""

    __tablename__ = "email_tokens"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    purpose: Mapped[str] = mapped_column(String(10))
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class LoginSession(Base):
    """One login: API sessions hold a chain of refresh tokens; `sso` sessions back the IdP cookie."""

    __tablename__ = "login_sessions"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"), index=True)
    kind: Mapped[str] = mapped_column(String(10), default="api")
    cookie_hash: Mapped[str | None] = mapped_column(String(64), unique=True, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    # indexed: a starting gateway asks for the sessions revoked within the last token lifetime
    revoked_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True, index=True)
    revoked_reason: Mapped[str | None] = mapped_column(String(30), nullable=True)


class RefreshToken(Base):
    __tablename__ = "refresh_tokens"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    session_id: Mapped[str] = mapped_column(ForeignKey("login_sessions.id", ondelete="CASCADE"), index=True)
    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    parent_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class LoginThrottle(Base):
    """Failed logins per key (`account:<email>` or `ip:<address>`), whether the account exists or
    not, so that throttling reveals nothing."""

    __tablename__ = "login_throttle"
    key: Mapped[str] = mapped_column(String(300), primary_key=True)
    failures: Mapped[int] = mapped_column(Integer, default=0)
    last_failure_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    locked_until: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class SigningKey(Base):
    __tablename__ = "signing_keys"
    kid: Mapped[str] = mapped_column(String(64), primary_key=True)
    private_pem: Mapped[str] = mapped_column(Text)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    retired_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)


class AuthorizationCode(Base):
    __tablename__ = "authorization_codes"
    __table_args__ = (Index("ix_authorization_codes_expires", "expires_at"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    client_id: Mapped[str] = mapped_column(String(100))
    account_id: Mapped[str] = mapped_column(ForeignKey("accounts.id", ondelete="CASCADE"))
    session_id: Mapped[str] = mapped_column(String(36))
    redirect_uri: Mapped[str] = mapped_column(Text)
    scope: Mapped[str] = mapped_column(Text)
    nonce: Mapped[str | None] = mapped_column(Text, nullable=True)
    code_challenge: Mapped[str] = mapped_column(String(128))
    code_challenge_method: Mapped[str] = mapped_column(String(10))
    auth_time: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)

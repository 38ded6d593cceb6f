"""Communes' tables: communes, their agents and pending agent invitations, families, children,
adhesion codes (stored only as a keyed hash), account-family links, redemption throttling, and the
append-only audit trail of staff reads and changes."""

from __future__ import annotations

import datetime as dt
from typing import Any

from sqlalchemy import (
    JSON,
    BigInteger,
    CheckConstraint,
    Date,
    ForeignKey,
    Index,
    Integer,
    String,
    UniqueConstraint,
)
from sqlalchemy.orm import DeclarativeBase, Mapped, mapped_column

from services.common.audit import make_append_only
from services.common.db import UtcDateTime, new_id
from services.common.messaging import messaging_tables


class Base(DeclarativeBase):
    pass


OutboxEvent, ProcessedEvent = messaging_tables(Base)


class Commune(Base):
    __tablename__ = "communes"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    name: Mapped[str] = mapped_column(String(200))
    insee_code: Mapped[str] = mapped_column(String(5), unique=True)
    timezone: Mapped[str] = mapped_column(String(64), default="Europe/Paris")
    contact_email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    code_ttl_days: Mapped[int] = mapped_column(Integer, default=30)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    created_by: Mapped[str | None] = mapped_column(String(36), nullable=True)


class CommuneAgent(Base):
    """An account that is agent of a commune (mirrors identity's `agent:<commune>` grant)."""

    __tablename__ = "commune_agents"
    __table_args__ = (UniqueConstraint("commune_id", "account_id", name="uq_commune_agents_account"),)
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    commune_id: Mapped[str] = mapped_column(ForeignKey("communes.id"))
    account_id: Mapped[str] = mapped_column(String(36))
    email: Mapped[str | None] = mapped_column(String(254), nullable=True)
    granted_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    granted_by: Mapped[str | None] = mapped_column(String(36), nullable=True)


class AgentInvitation(Base):
    """An address invited to be agent of a commune before it had an account. Accepted (the role
    granted) when identity reports that address verified."""

    __tablename__ = "agent_invitations"
    __table_args__ = (
        UniqueConstraint("commune_id", "email_normalized", name="uq_agent_invitations_email"),
        Index("ix_agent_invitations_email", "email_normalized"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    commune_id: Mapped[str] = mapped_column(ForeignKey("communes.id"))
    email_normalized: Mapped[str] = mapped_column(String(254))
    invited_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    accepted_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    account_id: Mapped[str | None] = mapped_column(String(36), nullable=True)


class Family(Base):
    __tablename__ = "families"
    __table_args__ = (
        UniqueConstraint("commune_id", "reference", name="uq_families_reference"),
        CheckConstraint("quotient_familial >= 0", name="ck_families_quotient_familial"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    commune_id: Mapped[str] = mapped_column(ForeignKey("communes.id"))
    reference: Mapped[str] = mapped_column(String(50))
    name: Mapped[str] = mapped_column(String(200))
    email: Mapped[str] = mapped_column(String(254))
    address: Mapped[str | None] = mapped_column(String(500), nullable=True)
    quotient_familial: Mapped[int | None] = mapped_column(Integer, nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class Child(Base):
    """A child of one family of one commune (`commune_id` copied from the family, so that access
    checks are one indexed query)."""

    __tablename__ = "children"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    family_id: Mapped[str] = mapped_column(ForeignKey("families.id"), index=True)
    commune_id: Mapped[str] = mapped_column(ForeignKey("communes.id"))
    first_name: Mapped[str] = mapped_column(String(100))
    last_name: Mapped[str] = mapped_column(String(100))
    birth_date: Mapped[dt.date] = mapped_column(Date)
    school: Mapped[str | None] = mapped_column(String(200), nullable=True)
    class_name: Mapped[str | None] = mapped_column(String(50), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class AdhesionCode(Base):
    """A single-use code that links one account to a family. Only its HMAC is stored."""

    __tablename__ = "adhesion_codes"
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    family_id: Mapped[str] = mapped_column(ForeignKey("families.id"), index=True)
    commune_id: Mapped[str] = mapped_column(ForeignKey("communes.id"))
    code_hash: Mapped[str] = mapped_column(String(64), unique=True)
    issued_by: Mapped[str | None] = mapped_column(String(36), nullable=True)
    created_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    expires_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    used_at: Mapped[dt.datetime | None] = mapped_column(UtcDateTime(), nullable=True)
    used_by: Mapped[str | None] = mapped_column(String(36), nullable=True)


class FamilyLink(Base):
    """An account (a parent) linked to a family; a family may have several (two parents)."""

    __tablename__ = "family_links"
    __table_args__ = (
        UniqueConstraint("account_id", "family_id", name="uq_family_links_account"),
        Index("ix_family_links_family", "family_id"),
    )
    id: Mapped[str] = mapped_column(String(36), primary_key=True, default=new_id)
    account_id: Mapped[str] = mapped_column(String(36))
    family_id: Mapped[str] = mapped_column(ForeignKey("families.id"))
    commune_id: Mapped[str] = mapped_column(ForeignKey("communes.id"))
    code_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    linked_at: Mapped[dt.datetime] = mapped_column(UtcDateTime())


class RedeemThrottle(Base):
    """Recent failed redemptions per key (`account:<id>` or `ip:<keyed hash>`): the times (Unix
    seconds) of at most the last MAX_FAILURES failures, so a rolling window is exact."""

    __tablename__ = "redeem_throttle"
    key: Mapped[str] = mapped_column(String(100), primary_key=True)
    failures: Mapped[list[Any]] = mapped_column(JSON, default=list)
    updated_at: Mapped[dt.datetime] = mapped_column(UtcDateTime(), index=True)


class AuditEntry(Base):
    """Who (account id) read or changed which family/child record of which commune, and when. No
    personal data. Append-only: triggers refuse UPDATE and DELETE (see the migration)."""

    __tablename__ = "audit_entries"
    __table_args__ = (Index("ix_audit_entries_commune", "commune_id", "id"),)
    id: Mapped[int] = mapped_column(
        BigInteger().with_variant(Integer, "sqlite"), primary_key=True, autoincrement=True
    )
    at: Mapped[dt.datetime] = mapped_column(UtcDateTime())
    account_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    role: Mapped[str] = mapped_column(String(10))
    action: Mapped[str] = mapped_column(String(40))
    entity_type: Mapped[str] = mapped_column(String(20))
    entity_id: Mapped[str | None] = mapped_column(String(36), nullable=True)
    commune_id: Mapped[str] = mapped_column(String(36))


make_append_only(AuditEntry.__table__)  # migration 0001 runs the same statements

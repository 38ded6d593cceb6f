"""Payments: created for the holds of a validated cart (or for an invoice: invoices.py), one per
(account, idempotency key, commune, family), stored with their days and prices BEFORE any provider
call; the provider call happens after commit (checkout.py) with the payment's stored provider
idempotency key. A payment fully covered by the family's credit succeeds at once (provider
"credit")."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.billing import events, ledger, pricing
from services.billing.models import (
    CHARGE,
    CREDIT_PROVIDER,
    PAYMENT,
    PENDING,
    SUCCEEDED,
    Payment,
    PaymentDay,
)
from services.billing.payment_settings import choice
from services.billing.settings import BillingSettings
from services.billing.tariffs import rules
from services.common.db import new_id
from services.common.errors import ValidationFailed

MAX_HOLDS = 500
MAX_KEY_LENGTH = 200
DEFAULT_HOLD_MINUTES = 20
MESSAGES = {
    "idempotency_key": f"La clé d'idempotence est une chaîne de 1 à {MAX_KEY_LENGTH} caractères.",
    "holds": f"Les réservations à payer sont une liste d'au plus {MAX_HOLDS} éléments "
    "{booking_id, child_id, activity_id, date, hold_expires_at}.",
}


@dataclass(frozen=True)
class Hold:
    booking_id: str
    child_id: str
    activity_id: str
    date: dt.date
    expires_at: dt.datetime | None


@dataclass(frozen=True)
class Group:
    """The holds one payment pays for: one commune, one family."""

    commune_id: str
    family_id: str
    quotient: int | None
    holds: tuple[Hold, ...]


def idempotency_key(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= MAX_KEY_LENGTH:
        raise ValidationFailed(details={"fields": {"idempotency_key": [MESSAGES["idempotency_key"]]}})
    return value


def _id(value: Any) -> bool:
    return isinstance(value, str) and 0 < len(value) <= 64


def parse_holds(value: Any) -> list[Hold]:
    """The holds as the gateway passes them from validate_cart's pending_payment results."""
    if not isinstance(value, list) or len(value) > MAX_HOLDS:
        raise ValidationFailed(details={"fields": {"holds": [MESSAGES["holds"]]}})
    holds: dict[str, Hold] = {}
    for item in value:
        try:
            if not isinstance(item, Mapping) or not all(
                _id(item.get(k)) for k in ("booking_id", "child_id", "activity_id")
            ):
                raise ValueError
            expiry = item.get("hold_expires_at")
            expires_at = dt.datetime.fromisoformat(expiry) if isinstance(expiry, str) else None
            if expires_at is not None and expires_at.tzinfo is None:
                expires_at = expires_at.replace(tzinfo=dt.UTC)
            hold = Hold(
                booking_id=item["booking_id"],
                child_id=item["child_id"],
                activity_id=item["activity_id"],
                date=dt.date.fromisoformat(str(item.get("date"))),
                expires_at=expires_at,
            )
        except (ValueError, TypeError):
            raise ValidationFailed(details={"fields": {"holds": [MESSAGES["holds"]]}}) from None
        holds.setdefault(hold.booking_id, hold)
    return list(holds.values())


def group_holds(
    holds: list[Hold], children: Mapping[str, tuple[str, str]], quotients: Mapping[str, int | None]
) -> list[Group]:
    """Holds grouped by (commune, family) of their child (children: child_id -> (commune, family));
    holds of children the caller may not act for are left out."""
    grouped: dict[tuple[str, str], list[Hold]] = {}
    for hold in holds:
        if hold.child_id in children:
            grouped.setdefault(children[hold.child_id], []).append(hold)
    return [
        Group(
            commune_id,
            family_id,
            quotients.get(family_id),
            tuple(sorted(items, key=lambda h: (h.date, h.booking_id))),
        )
        for (commune_id, family_id), items in sorted(grouped.items())
    ]


def stored(session: Session, account_id: str, key: str) -> list[Payment]:
    return list(
        session.scalars(
            select(Payment)
            .where(Payment.account_id == account_id, Payment.idempotency_key == key)
            .order_by(Payment.commune_id, Payment.family_id)
        ).all()
    )


def made_by_key(
    session: Session, account_id: str, key: str, commune_id: str, family_id: str
) -> Payment | None:
    """The payment this account's idempotency key already made for this family, if any (a replay)."""
    return session.scalar(
        select(Payment).where(
            Payment.account_id == account_id,
            Payment.idempotency_key == key,
            Payment.commune_id == commune_id,
            Payment.family_id == family_id,
        )
    )


def create(
    session: Session,
    settings: BillingSettings,
    account_id: str,
    key: str,
    group: Group,
    now: dt.datetime,
) -> Payment:
    """The group's payment: the stored one if this key already made it, else a new one. Runs under
    the family account's lock, so credit is never promised twice and a concurrent replay of the same
    key waits for the first and finds its payment."""
    ledger.lock_family(session, group.commune_id, group.family_id, now)
    existing = made_by_key(session, account_id, key, group.commune_id, group.family_id)
    if existing is not None:
        return existing
    tariffs = rules(session, [hold.activity_id for hold in group.holds])
    prices = {}
    for hold in group.holds:
        commune_and_rule = tariffs.get(hold.activity_id)
        rule = commune_and_rule[1] if commune_and_rule and commune_and_rule[0] == group.commune_id else None
        prices[hold.booking_id] = pricing.unit_price(rule, group.quotient)
    total_cents = pricing.total(prices.values())
    credit = ledger.available_credit(session, group.commune_id, group.family_id, now)
    amount_cents, credit_used = pricing.credit_split(total_cents, credit)
    provider = CREDIT_PROVIDER if amount_cents == 0 else choice(session, settings, group.commune_id).name
    expiries = [hold.expires_at for hold in group.holds if hold.expires_at is not None]
    payment_id = new_id()
    payment = Payment(
        id=payment_id,
        account_id=account_id,
        idempotency_key=key,
        commune_id=group.commune_id,
        family_id=group.family_id,
        provider=provider,
        status=PENDING,
        amount_cents=amount_cents,
        total_cents=total_cents,
        credit_used_cents=credit_used,
        refunded_cents=0,
        expires_at=min(expiries) if expiries else now + dt.timedelta(minutes=DEFAULT_HOLD_MINUTES),
        provider_idempotency_key=f"payment-{payment_id}",
        created_at=now,
        updated_at=now,
    )
    session.add(payment)
    session.flush()
    for hold in group.holds:
        session.add(
            PaymentDay(
                payment_id=payment.id,
                booking_id=hold.booking_id,
                child_id=hold.child_id,
                activity_id=hold.activity_id,
                date=hold.date,
                unit_price_cents=prices[hold.booking_id],
            )
        )
    session.flush()
    if amount_cents == 0:
        succeed(session, payment, now)
    return payment


def days(session: Session, payment_id: str) -> list[PaymentDay]:
    return list(
        session.scalars(
            select(PaymentDay)
            .where(PaymentDay.payment_id == payment_id)
            .order_by(PaymentDay.date, PaymentDay.booking_id)
        ).all()
    )


def succeed(session: Session, payment: Payment, now: dt.datetime) -> None:
    """The money came in (or credit covered it): the ledger's charge and payment, and the event
    booking confirms the days on. Call with the payment row locked (or just created)."""
    payment.status = SUCCEEDED
    payment.provider_error = None
    payment.settled_at = now
    payment.updated_at = now
    if payment.invoice_id is not None:  # the invoice already charged the ledger
        from services.billing import invoices  # here: invoices imports this module

        invoices.apply_payment(session, payment, now)
        return
    booked = days(session, payment.id)
    label = f"{len(booked)} jour(s) réservé(s)"
    ledger.append(
        session,
        payment.commune_id,
        payment.family_id,
        CHARGE,
        -payment.total_cents,
        f"Réservation : {label}",
        now,
        payment_id=payment.id,
    )
    if payment.amount_cents > 0:
        ledger.append(
            session,
            payment.commune_id,
            payment.family_id,
            PAYMENT,
            payment.amount_cents,
            "Paiement en ligne",
            now,
            payment_id=payment.id,
        )
    events.payment_succeeded(session, payment, [day.booking_id for day in booked])


def lock(session: Session, payment_id: str) -> Payment | None:
    """The payment, locked (FOR UPDATE) and read again (a copy loaded earlier in this session may be
    stale: another worker may have changed it while we waited for the lock)."""
    return session.scalar(
        select(Payment)
        .where(Payment.id == payment_id)
        .with_for_update()
        .execution_options(populate_existing=True)
    )


def view(payment: Payment, payment_days: list[PaymentDay]) -> dict[str, Any]:
    return {
        "id": payment.id,
        "commune_id": payment.commune_id,
        "invoice_id": payment.invoice_id,
        "provider": payment.provider,
        "amount_cents": payment.amount_cents,
        "total_cents": payment.total_cents,
        "credit_used_cents": payment.credit_used_cents,
        "status": payment.status,
        "expires_at": payment.expires_at.isoformat(),
        "checkout_url": payment.checkout_url,
        "client_secret": payment.client_secret,
        "provider_error": payment.provider_error,
        "refunded_cents": payment.refunded_cents,
        "days": [
            {
                "booking_id": day.booking_id,
                "child_id": day.child_id,
                "activity_id": day.activity_id,
                "date": day.date.isoformat(),
                "unit_price_cents": day.unit_price_cents,
            }
            for day in payment_days
        ],
        "created_at": payment.created_at.isoformat(),
    }


def full_view(session: Session, payment: Payment) -> dict[str, Any]:
    return view(payment, days(session, payment.id))

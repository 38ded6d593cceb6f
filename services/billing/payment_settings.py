"""Each commune's payment provider (demo or stripe) and its keys, and which provider a commune's
payments use: its own settings, else the platform default (PAYMENT_PROVIDER). The demo provider is
refused in production mode."""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

from sqlalchemy.orm import Session

from services.billing import secret_box
from services.billing.exceptions import DemoProviderDisabled, PaymentNotConfigured
from services.billing.models import PaymentSettings
from services.billing.settings import BillingSettings
from services.common.errors import NotFound, ValidationFailed

MESSAGES = {
    "provider": "Le prestataire est demo ou stripe.",
    "secret_key": "La clé secrète Stripe commence par sk_ (ou rk_ pour une clé restreinte).",
    "webhook_secret": "Le secret de webhook Stripe commence par whsec_.",
    "publishable_key": "La clé publique Stripe commence par pk_.",
    "unknown": "Champ inconnu.",
}
MAX_KEY_LENGTH = 255


@dataclass(frozen=True)
class ProviderChoice:
    """What a commune's payments go through; `settings` holds the provider's decrypted keys."""

    name: str
    settings: dict[str, Any]


def _key(value: Any, prefixes: tuple[str, ...]) -> bool:
    return isinstance(value, str) and value.startswith(prefixes) and 8 <= len(value) <= MAX_KEY_LENGTH


def parse(data: Any, production: bool) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise ValidationFailed(details={"fields": {"provider": [MESSAGES["provider"]]}})
    errors: dict[str, list[str]] = {}
    provider = data.get("provider")
    allowed = (
        {"provider"}
        if provider == "demo"
        else {"provider", "secret_key", "webhook_secret", "publishable_key"}
    )
    for key in data:
        if key not in allowed:
            errors[str(key)[:50]] = [MESSAGES["unknown"]]
    if provider not in ("demo", "stripe"):
        errors["provider"] = [MESSAGES["provider"]]
    elif provider == "stripe":
        if not _key(data.get("secret_key"), ("sk_", "rk_")):
            errors["secret_key"] = [MESSAGES["secret_key"]]
        if not _key(data.get("webhook_secret"), ("whsec_",)):
            errors["webhook_secret"] = [MESSAGES["webhook_secret"]]
        if data.get("publishable_key") is not None and not _key(data.get("publishable_key"), ("pk_",)):
            errors["publishable_key"] = [MESSAGES["publishable_key"]]
    if errors:
        raise ValidationFailed(details={"fields": errors})
    if provider == "demo" and production:
        raise DemoProviderDisabled()
    return dict(data)


def view(commune_id: str, row: PaymentSettings | None, settings: BillingSettings) -> dict[str, Any]:
    if row is None:
        return {
            "commune_id": commune_id,
            "provider": settings.default_provider,
            "publishable_key": None,
            "secret_key_set": False,
            "webhook_secret_set": False,
            "updated_at": None,
        }
    return {
        "commune_id": commune_id,
        "provider": row.provider,
        "publishable_key": row.publishable_key,
        "secret_key_set": bool(row.secret_key_enc),
        "webhook_secret_set": bool(row.webhook_secret_enc),
        "updated_at": row.updated_at.isoformat(),
    }


def set_settings(
    session: Session,
    settings: BillingSettings,
    commune_id: str,
    data: Any,
    account_id: str | None,
    now: dt.datetime,
) -> dict[str, Any]:
    values = parse(data, settings.production)
    row = session.get(PaymentSettings, commune_id, with_for_update=True)
    if row is None:
        row = PaymentSettings(commune_id=commune_id)
        session.add(row)
    row.provider = values["provider"]
    stripe = values["provider"] == "stripe"
    row.publishable_key = values.get("publishable_key") if stripe else None
    row.secret_key_enc = secret_box.encrypt(settings.secrets_key, values["secret_key"]) if stripe else None
    row.webhook_secret_enc = (
        secret_box.encrypt(settings.secrets_key, values["webhook_secret"]) if stripe else None
    )
    row.updated_at = now
    row.updated_by = account_id
    session.flush()
    return view(commune_id, row, settings)


def get_settings(session: Session, settings: BillingSettings, commune_id: str) -> dict[str, Any]:
    return view(commune_id, session.get(PaymentSettings, commune_id), settings)


def choice(session: Session, settings: BillingSettings, commune_id: str) -> ProviderChoice:
    """The provider of the commune's payments, with its keys; PaymentNotConfigured when none can be
    used (demo in production, stripe without its keys)."""
    row = session.get(PaymentSettings, commune_id)
    config = settings.provider_config
    if row is None:
        name = settings.default_provider
        keys = {
            "secret_key": config.get("STRIPE_SECRET_KEY") or None,
            "webhook_secret": config.get("STRIPE_WEBHOOK_SECRET") or None,
        }
    else:
        name = row.provider
        keys = {
            "secret_key": secret_box.decrypt(settings.secrets_key, row.secret_key_enc),
            "webhook_secret": secret_box.decrypt(settings.secrets_key, row.webhook_secret_enc),
        }
    if name == "demo":
        if settings.production:
            raise PaymentNotConfigured()
        return ProviderChoice("demo", {})
    if not keys["secret_key"]:
        raise PaymentNotConfigured()
    return ProviderChoice(name, keys)


def webhook_choice(
    session: Session, settings: BillingSettings, commune_id: str | None
) -> ProviderChoice | None:
    """The keys that verify a Stripe event: the commune's (the payment is known), else the platform's
    STRIPE_WEBHOOK_SECRET; None when there is nothing to verify with."""
    if commune_id is not None:
        try:
            found = choice(session, settings, commune_id)
        except PaymentNotConfigured:
            found = None
        if found is not None and found.name == "stripe" and found.settings.get("webhook_secret"):
            return found
    secret = settings.provider_config.get("STRIPE_WEBHOOK_SECRET")
    if not secret:
        return None
    return ProviderChoice(
        "stripe",
        {"secret_key": settings.provider_config.get("STRIPE_SECRET_KEY") or None, "webhook_secret": secret},
    )


def require_commune_id(value: Any) -> str:
    if not isinstance(value, str) or not 0 < len(value) <= 64:
        raise NotFound()
    return value

"""billing's settings, read once from the service config (`${VAR:default}` in config.yml)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nameko.extensions import DependencyProvider

from services.common.config import is_production, required_secret

LOCAL_SECRETS_KEY = "local-dev-payment-secrets-key"
PROVIDERS = ("demo", "stripe")


@dataclass(frozen=True)
class BillingSettings:
    production: bool = False
    public_url: str = "http://localhost:8000"
    default_provider: str = "demo"
    secrets_key: str = LOCAL_SECRETS_KEY
    refund_retry_seconds: float = 60.0
    invoice_due_days: int = 30
    invoicing_day: int = 1
    invoicing_hour: int = 6
    invoicing_check_seconds: float = 600.0
    config: dict[str, Any] | None = None  # the whole config, for the providers (Stripe keys, timeouts)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> BillingSettings:
        provider = str(config.get("PAYMENT_PROVIDER") or "demo").strip().lower()
        if provider not in PROVIDERS:
            raise RuntimeError("PAYMENT_PROVIDER must be demo or stripe")
        retry = float(config.get("REFUND_RETRY_SECONDS") or 60)
        if retry <= 0:
            raise RuntimeError("REFUND_RETRY_SECONDS must be positive")
        due_days = int(config.get("INVOICE_DUE_DAYS") or 30)
        day = int(config.get("INVOICING_DAY") or 1)
        hour = int(config.get("INVOICING_HOUR") if config.get("INVOICING_HOUR") not in (None, "") else 6)
        check = float(config.get("INVOICING_CHECK_SECONDS") or 600)
        if not 0 < due_days <= 365 or not 1 <= day <= 28 or not 0 <= hour <= 23 or check <= 0:
            raise RuntimeError(
                "INVOICE_DUE_DAYS must be 1-365, INVOICING_DAY 1-28, INVOICING_HOUR 0-23, "
                "INVOICING_CHECK_SECONDS positive"
            )
        return cls(
            production=is_production(config),
            invoice_due_days=due_days,
            invoicing_day=day,
            invoicing_hour=hour,
            invoicing_check_seconds=check,
            public_url=str(config.get("PUBLIC_URL") or "http://localhost:8000").rstrip("/"),
            default_provider=provider,
            secrets_key=required_secret(config, "PAYMENT_SECRETS_KEY", LOCAL_SECRETS_KEY),
            refund_retry_seconds=retry,
            config=dict(config),
        )

    @property
    def provider_config(self) -> dict[str, Any]:
        return self.config or {}


class Settings(DependencyProvider):
    """Injects the settings, read once when the service starts (a bad value stops the start)."""

    def setup(self) -> None:
        self.settings = BillingSettings.from_config(self.container.config)

    def get_dependency(self, worker_ctx: Any) -> BillingSettings:
        return self.settings

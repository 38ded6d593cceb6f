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
    config: dict[str, Any] | None = None  # the whole config, for the providers (Stripe keys, timeouts)

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> BillingSettings:
        provider = str(config.get("PAYMENT_PROVIDER") or "demo").strip().lower()
        if provider not in PROVIDERS:
            raise RuntimeError("PAYMENT_PROVIDER must be demo or stripe")
        retry = float(config.get("REFUND_RETRY_SECONDS") or 60)
        if retry <= 0:
            raise RuntimeError("REFUND_RETRY_SECONDS must be positive")
        return cls(
            production=is_production(config),
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

"""The payment providers billing can use, by name: `provider_for("demo" | "stripe", settings,
config)`. `settings` holds the commune's keys (secret_key, webhook_secret), `config` the service's
config (PUBLIC_URL, STRIPE_API_BASE, PAYMENT_PROVIDER_TIMEOUT_SECONDS). Stripe's SDK is imported only
when a commune uses it."""

from __future__ import annotations

from typing import Any

from services.billing.providers.base import Provider

DEFAULT_TIMEOUT_SECONDS = 4.0


def provider_for(name: str, settings: dict[str, Any], config: dict[str, Any]) -> Provider:
    if name == "demo":
        from services.billing.providers.demo import DemoProvider

        return DemoProvider(public_url=str(config.get("PUBLIC_URL") or "http://localhost:8000"))
    if name == "stripe":
        from services.billing.providers.stripe import StripeProvider

        return StripeProvider(
            secret_key=settings.get("secret_key"),
            webhook_secret=settings.get("webhook_secret"),
            api_base=config.get("STRIPE_API_BASE") or None,
            timeout=float(config.get("PAYMENT_PROVIDER_TIMEOUT_SECONDS") or DEFAULT_TIMEOUT_SECONDS),
        )
    raise ValueError(f"unknown payment provider {name!r}")

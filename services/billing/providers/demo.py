"""The demo provider (local default, refused in production): no money moves. A payment's checkout
URL is the gateway's test page, whose buttons call billing's `demo_outcome`; that builds the event
here and applies it like a verified webhook. Refunds succeed at once."""

from __future__ import annotations

from typing import Any

from services.billing.providers.base import (
    FAILED,
    PAYMENT_FAILED,
    PAYMENT_SUCCEEDED,
    PENDING,
    SUCCEEDED,
    InvalidSignature,
    PaymentRequest,
    ProviderEvent,
    ProviderPayment,
    ProviderRefund,
)

OUTCOMES = {SUCCEEDED: PAYMENT_SUCCEEDED, FAILED: PAYMENT_FAILED}


class DemoProvider:
    name = "demo"

    def __init__(self, public_url: str = "http://localhost:8000") -> None:
        self.public_url = public_url.rstrip("/")

    def create_payment(self, request: PaymentRequest) -> ProviderPayment:
        return ProviderPayment(
            provider_ref=request.payment_id,
            status=PENDING,
            checkout_url=f"{self.public_url}/payments/demo/{request.payment_id}",
        )

    def retrieve_payment(self, provider_ref: str) -> ProviderPayment:
        return ProviderPayment(
            provider_ref=provider_ref,
            status=PENDING,
            checkout_url=f"{self.public_url}/payments/demo/{provider_ref}",
        )

    def cancel_payment(self, provider_ref: str, idempotency_key: str) -> None:
        return None

    def refund(self, provider_ref: str, amount_cents: int, idempotency_key: str) -> ProviderRefund:
        return ProviderRefund(provider_ref=f"demo-refund-{idempotency_key}"[:255], status=SUCCEEDED)

    def parse_event(self, body: bytes, signature: str | None) -> ProviderEvent:
        raise InvalidSignature("the demo provider takes no webhooks")


def demo_event(payment_id: str, outcome: Any, amount_cents: int | None = None) -> ProviderEvent | None:
    """The event the demo page stands for; None for an unknown outcome."""
    kind = OUTCOMES.get(outcome) if isinstance(outcome, str) else None
    if kind is None:
        return None
    return ProviderEvent(
        event_id=f"demo-{payment_id}-{outcome}", kind=kind, provider_ref=payment_id, amount_cents=amount_cents
    )

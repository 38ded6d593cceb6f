"""What billing asks of a payment provider (stripe, demo), whatever its protocol. A provider never
writes to the database: billing stores the payment and its idempotency key first, then calls the
provider with that key, and applies what comes back (or what a webhook says) in its own transaction.

Errors: ProviderUnavailable (timeout, connection error, 5xx, rate limit: safe to retry with the same
idempotency key), ProviderRejected (the provider refused the request: card declined, bad amount...),
InvalidSignature (a webhook that is forged, tampered with or stale: nothing may be written)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

# ProviderPayment.status / ProviderRefund.status
PENDING = "pending"
SUCCEEDED = "succeeded"
FAILED = "failed"
CANCELLED = "cancelled"

# ProviderEvent.kind
PAYMENT_SUCCEEDED = "payment_succeeded"
PAYMENT_FAILED = "payment_failed"
REFUND_SUCCEEDED = "refund_succeeded"
REFUND_FAILED = "refund_failed"
IGNORED = "ignored"  # a genuine event billing does not act on (still acknowledged with 200)


class ProviderError(Exception):
    """Base of the provider errors (never carries card data or secrets in its message)."""


class ProviderUnavailable(ProviderError):
    """The provider did not answer usefully; retry later with the same idempotency key."""


class ProviderRejected(ProviderError):
    """The provider refused the request; `code` is its short reason (e.g. card_declined)."""

    def __init__(self, code: str = "rejected") -> None:
        super().__init__(code)
        self.code = code


class InvalidSignature(ProviderError):
    """A webhook whose signature is missing, wrong, or too old."""


@dataclass(frozen=True)
class PaymentRequest:
    payment_id: str  # billing's id, also sent to the provider as metadata
    amount_cents: int  # > 0, EUR
    description: str
    idempotency_key: str  # stored by billing before the call; the same on every retry
    metadata: dict[str, str] = field(default_factory=dict)
    currency: str = "eur"


@dataclass(frozen=True)
class ProviderPayment:
    provider_ref: str  # the provider's id (Stripe: the PaymentIntent id; demo: billing's payment id)
    status: str  # PENDING, SUCCEEDED, FAILED, CANCELLED
    client_secret: str | None = None  # Stripe: for the parent's browser (stripe.js)
    checkout_url: str | None = None  # demo: the test payment page


@dataclass(frozen=True)
class ProviderRefund:
    provider_ref: str
    status: str  # PENDING, SUCCEEDED, FAILED


@dataclass(frozen=True)
class ProviderEvent:
    event_id: str  # the provider's event id: billing de-duplicates on it
    kind: str  # PAYMENT_SUCCEEDED, PAYMENT_FAILED, REFUND_SUCCEEDED, REFUND_FAILED, IGNORED
    provider_ref: str | None  # the payment (PaymentIntent) it is about
    amount_cents: int | None = None  # what the provider says was received (or refunded)
    refund_ref: str | None = None  # the provider's refund id (refund events)
    created: int = 0  # the provider's timestamp (seconds): events may arrive out of order


class Provider(Protocol):
    name: str

    def create_payment(self, request: PaymentRequest) -> ProviderPayment: ...

    def retrieve_payment(self, provider_ref: str) -> ProviderPayment: ...

    def cancel_payment(self, provider_ref: str, idempotency_key: str) -> None: ...

    def refund(self, provider_ref: str, amount_cents: int, idempotency_key: str) -> ProviderRefund: ...

    def parse_event(self, body: bytes, signature: str | None) -> ProviderEvent: ...

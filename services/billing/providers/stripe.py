"""Stripe as a payment provider: one PaymentIntent per billing payment, refunds on that PaymentIntent,
signed webhooks turned into ProviderEvents.

Each commune has its own Stripe account, so each StripeProvider has its own `stripe.StripeClient`
(its key, API base and timeout); the SDK's global `stripe.api_key` is never set, so two communes'
keys can never mix. Every write sends billing's stored idempotency key: the SDK's automatic key is
random per call, which would turn a retry after a lost response into a second PaymentIntent.

Nothing from Stripe's error messages is copied into our errors or logs: they can quote a (masked)
API key. Only the error class, the HTTP status, Stripe's short code and its request id are kept."""

from __future__ import annotations

import logging
import re
from collections.abc import Callable, Mapping
from typing import Any, TypeVar

import stripe

from services.billing.providers.base import (
    CANCELLED,
    FAILED,
    IGNORED,
    PAYMENT_FAILED,
    PAYMENT_SUCCEEDED,
    PENDING,
    REFUND_FAILED,
    REFUND_SUCCEEDED,
    SUCCEEDED,
    InvalidSignature,
    PaymentRequest,
    ProviderError,
    ProviderEvent,
    ProviderPayment,
    ProviderRefund,
    ProviderRejected,
    ProviderUnavailable,
)

log = logging.getLogger(__name__)

# The SDK logs request parameters and Stripe's error messages at INFO/DEBUG on the "stripe" logger;
# keep them out of the service logs whatever the root level is.
logging.getLogger("stripe").setLevel(logging.WARNING)

# A code we pass on must look like Stripe's short codes (card_declined, resource_missing...).
_CODE = re.compile(r"[a-z0-9_]{1,64}")

T = TypeVar("T")


class StripeProvider:
    """The Provider of base.py on Stripe's API (or on a stand-in at `api_base`, for tests)."""

    name = "stripe"

    def __init__(
        self,
        secret_key: str,
        webhook_secret: str,
        api_base: str | None = None,
        timeout: float = 10,
        max_network_retries: int = 0,
    ) -> None:
        # max_network_retries: billing retries itself with the same stored key (and has an RPC
        # deadline to respect), so the SDK does not retry by default.
        self._webhook_secret = webhook_secret
        self._client = stripe.StripeClient(
            secret_key or "",  # missing keys fail at the call (authentication_error / InvalidSignature)
            base_addresses={"api": api_base} if api_base else None,
            http_client=stripe.RequestsClient(timeout=timeout),
            max_network_retries=max_network_retries,
        )

    def __repr__(self) -> str:  # never the keys
        return "<StripeProvider>"

    # ------------------------------------------------------------------ payments

    def create_payment(self, request: PaymentRequest) -> ProviderPayment:
        if request.amount_cents <= 0:
            raise ProviderRejected("invalid_amount")
        params = {
            "amount": request.amount_cents,
            "currency": request.currency,
            "description": request.description,
            "metadata": {**request.metadata, "payment_id": request.payment_id},
            # cards: every Stripe account takes them, and localstripe (the tests' Stripe) refuses
            # automatic_payment_methods
            "payment_method_types": ["card"],
        }
        intent = _call(
            "create_payment",
            lambda: self._client.v1.payment_intents.create(
                params, {"idempotency_key": request.idempotency_key}
            ),
        )
        return _payment(intent)

    def retrieve_payment(self, provider_ref: str) -> ProviderPayment:
        intent = _call("retrieve_payment", lambda: self._client.v1.payment_intents.retrieve(provider_ref))
        return _payment(intent)

    def cancel_payment(self, provider_ref: str, idempotency_key: str) -> None:
        """Cancels a PaymentIntent; one that is already cancelled counts as done."""
        try:
            _call(
                "cancel_payment",
                lambda: self._client.v1.payment_intents.cancel(
                    provider_ref, None, {"idempotency_key": idempotency_key}
                ),
            )
        except ProviderRejected:
            if self.retrieve_payment(provider_ref).status != CANCELLED:
                raise

    def refund(self, provider_ref: str, amount_cents: int, idempotency_key: str) -> ProviderRefund:
        if amount_cents <= 0:
            raise ProviderRejected("invalid_amount")
        refund = _call(
            "refund",
            lambda: self._client.v1.refunds.create(
                {"payment_intent": provider_ref, "amount": amount_cents},
                {"idempotency_key": idempotency_key},
            ),
        )
        data = refund.to_dict(recursive=False)  # a StripeObject is not a dict
        return ProviderRefund(provider_ref=data["id"], status=refund_status(data.get("status")))

    # ------------------------------------------------------------------ webhooks

    def parse_event(self, body: bytes | str, signature: str | None) -> ProviderEvent:
        """Verifies the Stripe-Signature header (HMAC with this account's webhook secret, at most
        300 s old) and maps the event. Anything wrong with the body or the header is InvalidSignature."""
        try:
            event = self._client.construct_event(body, signature, self._webhook_secret)
            data = event.to_dict()
        except (stripe.SignatureVerificationError, ValueError, TypeError, AttributeError, KeyError):
            # ValueError covers bad JSON and a body that is not UTF-8
            raise InvalidSignature("invalid stripe webhook") from None
        try:
            return event_from_dict(data)
        except (TypeError, ValueError, KeyError, AttributeError):
            raise InvalidSignature("malformed stripe event") from None


# ---------------------------------------------------------------------- plain rules


def payment_status(intent_status: str | None, last_payment_error: object = None) -> str:
    """A PaymentIntent's status as billing sees it. After a declined card Stripe puts the intent back
    to requires_payment_method with a last_payment_error: that attempt failed (the parent may try
    again with another card, and a later success still wins in billing)."""
    if intent_status == "succeeded":
        return SUCCEEDED
    if intent_status == "canceled":
        return CANCELLED
    if intent_status == "requires_payment_method" and last_payment_error:
        return FAILED
    return PENDING  # requires_payment_method/confirmation/action/capture, processing


def refund_status(status: str | None) -> str:
    if status == "succeeded":
        return SUCCEEDED
    if status in ("failed", "canceled"):
        return FAILED
    return PENDING  # pending, requires_action


def _payment_ref(kind: str | None, obj: Mapping[str, Any]) -> str | None:
    """The PaymentIntent an event object is about."""
    if kind == "payment_intent":
        ref = obj.get("id")
    else:  # charge, refund
        ref = obj.get("payment_intent")
        if isinstance(ref, Mapping):  # expanded
            ref = ref.get("id")
    return ref if isinstance(ref, str) else None


def _int(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def event_from_dict(data: Mapping[str, Any]) -> ProviderEvent:
    """Maps a (verified) Stripe event. Amounts: payment_intent.succeeded → amount_received;
    charge.refunded → the charge's amount_refunded (cumulative); refund.* → that refund's amount."""
    event_id = data["id"]
    if not isinstance(event_id, str) or not event_id:
        raise ValueError("event without id")
    event_type = data.get("type")
    obj = (data.get("data") or {}).get("object") or {}
    created = _int(data.get("created")) or 0
    ref = _payment_ref(obj.get("object"), obj)

    def event(kind: str, amount: object = None) -> ProviderEvent:
        return ProviderEvent(
            event_id=event_id, kind=kind, provider_ref=ref, amount_cents=_int(amount), created=created
        )

    if event_type == "payment_intent.succeeded":
        # amount_received is always there on Stripe; a stand-in that lacks it received the amount
        return event(PAYMENT_SUCCEEDED, obj.get("amount_received", obj.get("amount")))
    if event_type == "payment_intent.payment_failed":
        return event(PAYMENT_FAILED)
    if event_type == "charge.refunded":
        return event(REFUND_SUCCEEDED, obj.get("amount_refunded"))
    if event_type in ("refund.created", "refund.updated", "refund.failed"):
        status = refund_status(obj.get("status"))
        if status == SUCCEEDED:
            return event(REFUND_SUCCEEDED, obj.get("amount"))
        if status == FAILED:
            return event(REFUND_FAILED, obj.get("amount"))
    return event(IGNORED)


def provider_error(exc: stripe.StripeError) -> ProviderError:
    """Stripe's error → ours. Unavailable (retry with the same key): network, timeout, rate limit,
    5xx, 409 (a concurrent request with the same key) or a garbled answer. Rejected: the rest."""
    code = exc.code if isinstance(exc.code, str) and _CODE.fullmatch(exc.code) else None
    if isinstance(exc, stripe.APIConnectionError | stripe.RateLimitError | stripe.APIError):
        status = exc.http_status
        return ProviderUnavailable(f"stripe unavailable ({type(exc).__name__}, http {status})")
    if isinstance(exc, stripe.CardError):
        return ProviderRejected(code or "card_declined")
    if isinstance(exc, stripe.IdempotencyError):
        return ProviderRejected("idempotency_error")
    if isinstance(exc, stripe.AuthenticationError):
        return ProviderRejected("authentication_error")
    if isinstance(exc, stripe.PermissionError):
        return ProviderRejected("permission_error")
    if isinstance(exc, stripe.InvalidRequestError):
        return ProviderRejected(code or "invalid_request")
    if exc.http_status is None or exc.http_status >= 500:
        return ProviderUnavailable(f"stripe unavailable ({type(exc).__name__}, http {exc.http_status})")
    return ProviderRejected(code or "rejected")


def _call(operation: str, fn: Callable[[], T]) -> T:
    try:
        return fn()
    except stripe.StripeError as exc:
        error = provider_error(exc)
        log.warning(
            "stripe %s: %s (http %s, code %s, request %s)",
            operation,
            type(exc).__name__,
            exc.http_status,
            getattr(error, "code", None),
            exc.request_id,
        )
        raise error from None  # Stripe's message (and its chained cause) stays out of tracebacks


def _payment(intent: stripe.PaymentIntent) -> ProviderPayment:
    data = intent.to_dict(recursive=False)  # a StripeObject is not a dict
    return ProviderPayment(
        provider_ref=data["id"],
        status=payment_status(data.get("status"), data.get("last_payment_error")),
        client_secret=data.get("client_secret"),
    )

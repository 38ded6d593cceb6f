"""How the cart routes combine booking's answers with billing's: prices on the cart, a payment after a
validation. Pure functions (the routes make the calls), so the composition is tested without a broker.

Billing failing never fails the cart: the cart is shown without prices, and a validation (whose places
are already held by booking) is returned with `payment_error` so that the client replays it with the
same Idempotency-Key to get the payment."""

from __future__ import annotations

from typing import Any

PENDING_PAYMENT = "pending_payment"
BILLING_UNAVAILABLE = "BILLING_UNAVAILABLE"
HOLD_FIELDS = ("booking_id", "child_id", "activity_id", "date", "hold_expires_at")


def priced_cart(cart: dict[str, Any], quote: dict[str, Any]) -> dict[str, Any]:
    """The cart with each item's unit_price_cents and amount_cents, and the total, from billing.quote.
    An item the quote does not mention (it should not happen) shows no price rather than a wrong one."""
    prices = {line["id"]: line for line in quote.get("items") or []}
    items = []
    for item in cart.get("items") or []:
        line = prices.get(item.get("id"), {})
        price = {"unit_price_cents": line.get("unit_price_cents"), "amount_cents": line.get("amount_cents")}
        items.append({**item, **price})
    return {**cart, "items": items, "total_cents": quote.get("total_cents"), "prices_unavailable": False}


def unpriced_cart(cart: dict[str, Any]) -> dict[str, Any]:
    """The cart when billing did not answer: the same shape, prices null."""
    items = [{**item, "unit_price_cents": None, "amount_cents": None} for item in cart.get("items") or []]
    return {**cart, "items": items, "total_cents": None, "prices_unavailable": True}


def empty_cart_prices(cart: dict[str, Any]) -> dict[str, Any]:
    """An empty cart costs nothing: no need to ask billing."""
    return {**cart, "items": [], "total_cents": 0, "prices_unavailable": False}


def holds(results: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """The places booking held for payment (outcome pending_payment), as billing.create_payment takes
    them."""
    return [
        {name: result.get(name) for name in HOLD_FIELDS}
        for result in results
        if result.get("outcome") == PENDING_PAYMENT
    ]


def with_payments(validation: dict[str, Any], payments: list[dict[str, Any]]) -> dict[str, Any]:
    """The validation with billing's payments: `payment` is the first (the usual single commune),
    `payments` all of them (one per commune)."""
    return {
        **validation,
        "payment": payments[0] if payments else None,
        "payments": payments,
        "payment_error": None,
    }


def with_payment_error(validation: dict[str, Any], code: str = BILLING_UNAVAILABLE) -> dict[str, Any]:
    """The validation when billing could not create the payment: the places stay held until they
    expire; replaying the same Idempotency-Key asks billing again."""
    return {**validation, "payment": None, "payments": [], "payment_error": code}

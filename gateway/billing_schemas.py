"""Request bodies of the billing routes (marshmallow), built with gateway/schemas.py's helpers (French
messages, 400 naming the fields). The billing service checks the rules again (bands increasing, one
null qf_max at the end...); these catch shapes and bounds before any RPC."""

from __future__ import annotations

from typing import Any

from marshmallow import ValidationError, fields, validates_schema

from gateway.schemas import _Body, length, one_of, value_range

MAX_PRICE_CENTS = 1_000_000
MAX_REFUND_CENTS = 100_000_000
REFUND_RULES = ["refund", "credit", "none"]
INVOICE_BASES = ["booked", "attended"]  # what a postpaid day counts as on the month's invoice
PROVIDERS = ["demo", "stripe"]
OUTCOMES = ["succeeded", "failed"]


class BandBody(_Body):
    qf_max = fields.Integer(required=True, allow_none=True, strict=True, validate=value_range(0, 1_000_000))
    unit_price_cents = fields.Integer(required=True, strict=True, validate=value_range(0, MAX_PRICE_CENTS))


class TariffBody(_Body):
    unit_price_cents = fields.Integer(
        load_default=None, allow_none=True, strict=True, validate=value_range(0, MAX_PRICE_CENTS)
    )
    bands = fields.List(
        fields.Nested(BandBody),
        load_default=None,
        allow_none=True,
        validate=length(min=1, max=20),
    )
    cancellation_refund = fields.String(load_default="refund", validate=one_of(REFUND_RULES))
    # left out when absent (billing applies its default, "booked"), like the unused price
    invoice_basis = fields.String(load_default=None, allow_none=True, validate=one_of(INVOICE_BASES))

    @validates_schema
    def _one_price(self, data: dict[str, Any], **_: Any) -> None:
        if (data.get("unit_price_cents") is None) == (data.get("bands") is None):
            message = "Indiquez soit « unit_price_cents », soit « bands »."
            raise ValidationError({"unit_price_cents": [message], "bands": [message]})


class PaymentSettingsBody(_Body):
    provider = fields.String(required=True, validate=one_of(PROVIDERS))
    secret_key = fields.String(load_default=None, allow_none=True, validate=length(min=1, max=500))
    webhook_secret = fields.String(load_default=None, allow_none=True, validate=length(min=1, max=500))
    publishable_key = fields.String(load_default=None, allow_none=True, validate=length(min=1, max=500))

    @validates_schema
    def _stripe_keys(self, data: dict[str, Any], **_: Any) -> None:
        if data.get("provider") != "stripe":
            return
        missing = {name: ["Champ obligatoire avec Stripe."] for name in ("secret_key", "webhook_secret")}
        missing = {name: problem for name, problem in missing.items() if not data.get(name)}
        if missing:
            raise ValidationError(missing)


class RefundBody(_Body):
    amount_cents = fields.Integer(required=True, strict=True, validate=value_range(1, MAX_REFUND_CENTS))


class DemoOutcomeBody(_Body):
    outcome = fields.String(required=True, validate=one_of(OUTCOMES))


def given(body: dict[str, Any]) -> dict[str, Any]:
    """Only the keys that carry a value: a tariff has either a unit price or bands, the demo provider
    takes no secrets; billing refuses both of a pair, so the unused one is left out, not sent null."""
    return {name: value for name, value in body.items() if value is not None}

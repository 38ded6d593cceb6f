"""Billing over HTTP (contract of the billing issue): agents set tariffs and the commune's payment
provider and refund payments; parents follow a payment and their family account. The billing service
decides who may see what (NotFound for anything else); the gateway authenticates and shapes HTTP."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request, Response

from gateway.billing_schemas import PaymentSettingsBody, RefundBody, TariffBody, given
from gateway.errors import json_response
from gateway.openapi import route
from gateway.routes.communes import AGENT, AGENT_ERRORS, checked_id
from gateway.schemas import load_body, plain
from services.common.errors import ValidationFailed

TARIFF = AGENT + "/activities/<activity_id>/tariff"
SETTINGS = AGENT + "/payment-settings"
MAX_IDEMPOTENCY_KEY = 200
PARENT_ERRORS = {401: "UNAUTHENTICATED", 404: "NOT_FOUND (not the caller's, or no such record)"}


def required_idempotency_key(request: Request) -> str:
    """The `Idempotency-Key` header a refund must carry (1-200 characters): a retried refund must
    never send money back twice, so there is no generated default as for a cart validation."""
    key = (request.headers.get("Idempotency-Key") or "").strip()
    if not key:
        raise ValidationFailed(
            "En-tête Idempotency-Key obligatoire.", {"fields": {"Idempotency-Key": ["Champ obligatoire."]}}
        )
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise ValidationFailed(
            "En-tête Idempotency-Key trop long.", {"fields": {"Idempotency-Key": ["Au plus 200 caractères."]}}
        )
    return key


def refund_response(refund: dict[str, Any]) -> Response:
    """201 for a new refund, 200 when billing answered a replay of the key with the first one (its
    `replayed` flag says which; the flag itself is not part of the refund shown)."""
    shown = {name: value for name, value in refund.items() if name != "replayed"}
    return json_response(200 if refund.get("replayed") else 201, shown)


class BillingRoutes:
    # --- agents: tariffs, payment settings, refunds -----------------------------------------

    @route(
        "PUT",
        TARIFF,
        summary="Set the activity's tariff: one unit price, or bands by family quotient",
        tag="agent",
        auth=True,
        body=TariffBody,
        responses={200: "Tariff", 400: "VALIDATION_ERROR", **AGENT_ERRORS},
    )
    def set_tariff(self, request: Request, commune_id: str, activity_id: str) -> Response:
        tariff = given(plain(load_body(request, TariffBody)))
        self.authenticate(request)
        saved = self.billing.set_tariff(checked_id(commune_id), checked_id(activity_id), tariff)
        return json_response(200, saved)

    @route(
        "GET",
        TARIFF,
        summary="The activity's tariff",
        tag="agent",
        auth=True,
        responses={200: "Tariff", **AGENT_ERRORS},
    )
    def get_tariff(self, request: Request, commune_id: str, activity_id: str) -> Response:
        self.authenticate(request)
        return json_response(200, self.billing.get_tariff(checked_id(commune_id), checked_id(activity_id)))

    @route(
        "PUT",
        SETTINGS,
        summary="Choose the commune's payment provider (stripe keys are stored encrypted, never returned)",
        tag="agent",
        auth=True,
        body=PaymentSettingsBody,
        responses={200: "Settings", 400: "VALIDATION_ERROR, DEMO_PROVIDER_DISABLED", **AGENT_ERRORS},
    )
    def set_payment_settings(self, request: Request, commune_id: str) -> Response:
        settings = given(load_body(request, PaymentSettingsBody))
        self.authenticate(request)
        return json_response(200, self.billing.set_payment_settings(checked_id(commune_id), settings))

    @route(
        "GET",
        SETTINGS,
        summary="The commune's payment provider (whether keys are set, never the keys)",
        tag="agent",
        auth=True,
        responses={200: "Settings", **AGENT_ERRORS},
    )
    def get_payment_settings(self, request: Request, commune_id: str) -> Response:
        self.authenticate(request)
        return json_response(200, self.billing.get_payment_settings(checked_id(commune_id)))

    @route(
        "POST",
        AGENT + "/payments/<payment_id>/refunds",
        summary="Refund part or all of a payment to the card (Idempotency-Key header required: a "
        "replay returns the first refund)",
        tag="agent",
        auth=True,
        body=RefundBody,
        responses={
            201: "Refund",
            200: "The first refund (a replay of the key)",
            400: "VALIDATION_ERROR",
            409: "REFUND_EXCEEDS_PAID",
            **AGENT_ERRORS,
        },
    )
    def refund_payment(self, request: Request, commune_id: str, payment_id: str) -> Response:
        key = required_idempotency_key(request)
        body = load_body(request, RefundBody)
        self.authenticate(request)
        refund = self.billing.refund_payment(
            checked_id(commune_id), checked_id(payment_id), body["amount_cents"], key
        )
        return refund_response(refund)

    # --- parents: payments and the family account -------------------------------------------

    @route(
        "GET",
        "/api/v1/payments/<payment_id>",
        summary="A payment: status, amount, days paid for (its creator, or staff of its commune)",
        tag="payments",
        auth=True,
        responses={200: "Payment", **PARENT_ERRORS},
    )
    def get_payment(self, request: Request, payment_id: str) -> Response:
        self.authenticate(request)
        return json_response(200, self.billing.get_payment(checked_id(payment_id)))

    @route(
        "GET",
        "/api/v1/communes/<commune_id>/account",
        summary="The family's account in this commune: balance (positive: credit) and entries, newest first",
        tag="payments",
        auth=True,
        responses={200: "Account", **PARENT_ERRORS},
    )
    def family_account(self, request: Request, commune_id: str) -> Response:
        self.authenticate(request)
        return json_response(200, self.billing.family_account(checked_id(commune_id)))

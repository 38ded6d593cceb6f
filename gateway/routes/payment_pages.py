"""The routes a payment provider or a parent's browser reaches without an access token: Stripe's
webhook (its signature is the authentication; billing verifies it) and the demo provider's test
payment page (the payment id, a random UUID, is the only credential; never in production).

The demo page is a plain HTML form (no JavaScript, so the strict Content-Security-Policy of the other
pages holds); POST /payments/demo/{id} also takes JSON {"outcome"} and then answers JSON. Billing's
demo_payment / demo_outcome answer anyone for a demo payment and refuse in production
(DEMO_PROVIDER_DISABLED), which the gateway shows as 404, as it does an unknown id: in production the
page does not exist (the gateway also checks ENVIRONMENT itself, before any RPC).

`?return_to=<url>` (carried by the form in a hidden field) adds a link back to where the parent came
from (the invoices site's invoice page), like a real provider's return URL, only when the URL's origin
is one of PAYMENT_RETURN_ORIGINS (or the gateway's own PUBLIC_URL origin); anything else is dropped and
never echoed (no open redirect)."""

from __future__ import annotations

from functools import lru_cache
from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from werkzeug.wrappers import Request, Response

from gateway.billing_schemas import OUTCOMES, DemoOutcomeBody
from gateway.demo_page import page_context
from gateway.errors import PayloadTooLarge, json_response
from gateway.openapi import route
from gateway.routes.communes import checked_id
from gateway.routes.pages import PAGE_HEADERS
from gateway.schemas import MAX_BODY_BYTES, load_body
from services.common import urls
from services.common.config import is_production
from services.common.errors import NotFound, ServiceError
from services.common.urls import Origin

MAX_SIGNATURE_HEADER = 2048
DEMO_PROVIDER = "demo"
DEMO_DISABLED = "DEMO_PROVIDER_DISABLED"
TITLE = "Paiement de test"
MAX_RETURN_URL = 2000
LOCAL_RETURN_ORIGIN = "http://localhost:8001"  # the invoices site on its local default
URL_CHARACTERS = frozenset(chr(code) for code in range(0x21, 0x7F)) - {"\\", '"', "<", ">", "`"}

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parents[1] / "templates"),
    autoescape=select_autoescape(["html"]),
)


def origin_of(url: object) -> Origin | None:
    """(scheme, host, port) of an absolute http(s) URL without userinfo, or None for anything else
    (relative or scheme-relative URLs, other schemes, user:password@, bad ports, stray characters)."""
    if not isinstance(url, str) or not url or len(url) > MAX_RETURN_URL:
        return None
    if not set(url) <= URL_CHARACTERS:  # whitespace, controls, backslashes, quotes, non-ASCII
        return None
    return urls.origin(url)


@lru_cache(maxsize=8)
def parse_origins(setting: str, public_url: str) -> frozenset[Origin]:
    """The allowlist: each comma-separated origin of the setting, plus the gateway's own."""
    origins = {origin_of(item.strip()) for item in setting.split(",")} | {origin_of(public_url)}
    origins.discard(None)
    return frozenset(origins)  # type: ignore[arg-type]


def return_origins(config: dict[str, Any]) -> frozenset[Origin]:
    setting = config.get("PAYMENT_RETURN_ORIGINS")
    setting = LOCAL_RETURN_ORIGIN if setting is None else str(setting)
    return parse_origins(setting, str(config.get("PUBLIC_URL") or "http://localhost:8000"))


def allowed_return(value: object, origins: frozenset[Origin]) -> str | None:
    """`value` if it is an http(s) URL on one of `origins` (scheme, host and port all equal), else
    None: the page then shows no link and never repeats the value."""
    origin = origin_of(value)
    return value if origin is not None and origin in origins else None  # type: ignore[return-value]


class InvalidWebhookSignature(ServiceError):
    """The gateway's own refusal of a webhook it cannot even hand to billing (same code as billing's)."""

    code = "INVALID_SIGNATURE"
    status = 400
    default_message = "Signature du webhook absente ou invalide."


def webhook_body(request: Request) -> str:
    """The raw body as text, exactly as signed (no JSON parsing here: the signature covers the bytes)."""
    if request.content_length and request.content_length > MAX_BODY_BYTES:
        raise PayloadTooLarge()
    request.max_content_length = MAX_BODY_BYTES + 1  # a chunked body is cut there, then refused below
    raw = request.get_data(cache=False)
    if len(raw) > MAX_BODY_BYTES:
        raise PayloadTooLarge()
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidWebhookSignature() from None


def webhook_signature(request: Request) -> str | None:
    signature = request.headers.get("Stripe-Signature")
    if signature is not None and len(signature) > MAX_SIGNATURE_HEADER:
        raise InvalidWebhookSignature()
    return signature


def demo_page(status: int = 200, **context: Any) -> Response:
    html = _templates.get_template("demo_payment.html").render(title=TITLE, **context)
    response = Response(html, status=status, mimetype="text/html")
    response.headers.update(PAGE_HEADERS)
    return response


def not_found_page(return_to: str | None = None) -> Response:
    return demo_page(404, error=True, message="Ce paiement de test est introuvable.", return_to=return_to)


def is_form(request: Request) -> bool:
    return request.mimetype in ("application/x-www-form-urlencoded", "multipart/form-data")


def hidden_from_demo(exc: ServiceError) -> bool:
    """Not a demo payment, or the demo provider is off (production): both read as "no such page"."""
    return isinstance(exc, NotFound) or exc.code == DEMO_DISABLED


RESULT_TEXT = {
    "succeeded": "Paiement de test accepté. Vos réservations vont être confirmées.",
    "failed": "Paiement de test refusé. Les places restent réservées jusqu'à l'expiration du délai.",
}
INVOICE_RESULT_TEXT = {  # a payment of an invoice (issue 6) holds no places
    "succeeded": "Paiement de test accepté. Votre facture est réglée.",
    "failed": "Paiement de test refusé. Votre facture reste à payer.",
}


class PaymentPageRoutes:
    @route(
        "POST",
        "/webhooks/stripe",
        summary="Stripe's webhook (raw body, Stripe-Signature header; no token: the signature is "
        "verified by billing)",
        tag="payments",
        responses={200: "Received", 400: "INVALID_SIGNATURE", 413: "PAYLOAD_TOO_LARGE"},
    )
    def stripe_webhook(self, request: Request) -> Response:
        body = webhook_body(request)
        signature = webhook_signature(request)
        self.anonymous(request)  # billing takes an internal caller for provider events
        self.billing.handle_provider_event("stripe", body, signature)
        return json_response(200, {"received": True})

    @route(
        "GET",
        "/payments/demo/<payment_id>",
        summary="The demo provider's TEST payment page (HTML, French); optional ?return_to=<url> "
        "(shown as a link back only on an origin of PAYMENT_RETURN_ORIGINS); 404 in production",
        tag="payments",
        responses={200: "text/html", 404: "Unknown payment, not a demo payment, or production"},
    )
    def demo_payment_page(self, request: Request, payment_id: str) -> Response:
        if is_production(self.config):
            return not_found_page()
        back = self._return_to(request.args.get("return_to"))
        try:
            payment_id = checked_id(payment_id)
            self.anonymous(request)
            payment = self.billing.demo_payment(payment_id)
        except ServiceError as exc:
            if hidden_from_demo(exc):
                return not_found_page(back)
            return demo_page(exc.status, error=True, message=exc.message, return_to=back)
        if payment.get("provider") != DEMO_PROVIDER:
            return not_found_page(back)
        return demo_page(payment=page_context(payment), return_to=back)

    @route(
        "POST",
        "/payments/demo/<payment_id>",
        summary="Decide a demo payment: JSON {outcome: succeeded|failed} → the payment (JSON), or the "
        "page's form → the page; 404 in production",
        tag="payments",
        body=DemoOutcomeBody,
        responses={200: "Payment", 400: "VALIDATION_ERROR", 404: "NOT_FOUND (also in production)"},
    )
    def demo_payment_outcome(self, request: Request, payment_id: str) -> Response:
        if is_form(request):
            return self._demo_form(request, payment_id)
        if is_production(self.config):
            raise NotFound()
        outcome = load_body(request, DemoOutcomeBody)["outcome"]
        payment_id = checked_id(payment_id)
        self.anonymous(request)
        try:
            payment = self.billing.demo_outcome(payment_id, outcome)
        except ServiceError as exc:
            if hidden_from_demo(exc):
                raise NotFound() from None
            raise
        return json_response(200, payment)

    def _demo_form(self, request: Request, payment_id: str) -> Response:
        if is_production(self.config):
            return not_found_page()
        if request.content_length and request.content_length > MAX_BODY_BYTES:
            return demo_page(413, error=True, message="Le formulaire envoyé est trop volumineux.")
        request.max_form_memory_size = MAX_BODY_BYTES  # a chunked body has no length to check first
        back = self._return_to(request.form.get("return_to") or request.args.get("return_to"))
        outcome = request.form.get("outcome", "")
        if outcome not in OUTCOMES:
            return demo_page(400, error=True, message="Choisissez « accepté » ou « refusé ».", return_to=back)
        try:
            payment_id = checked_id(payment_id)
            self.anonymous(request)
            payment = self.billing.demo_outcome(payment_id, outcome)
        except ServiceError as exc:
            if hidden_from_demo(exc):
                return not_found_page(back)
            return demo_page(exc.status, error=True, message=exc.message, return_to=back)
        texts = INVOICE_RESULT_TEXT if payment.get("invoice_id") else RESULT_TEXT
        message = texts[outcome] if payment.get("status") == outcome else None
        return demo_page(payment=page_context(payment), message=message, return_to=back)

    def _return_to(self, value: object) -> str | None:
        return allowed_return(value, return_origins(self.config))

"""Invoicing over HTTP (issue 6): agents start the month-end run and download the finance office's
exports; parents list their invoices, read one, get its PDF and pay it. The billing service decides
who may see what (NotFound for anything else); the gateway validates, authenticates and shapes HTTP
(JSON, or the files billing prepared: CSV text, PDF bytes sent base64 over RPC)."""

from __future__ import annotations

import base64
import binascii
import logging
import re
from typing import Any

from werkzeug.wrappers import Request, Response

from gateway.errors import SECURITY_HEADERS, DocumentUnavailable, json_response
from gateway.invoicing_schemas import ExportQuery, RunBody
from gateway.openapi import route
from gateway.routes.booking_agent import file_response
from gateway.routes.communes import AGENT, AGENT_ERRORS, checked_id
from gateway.schemas import load_body, load_query
from services.common.errors import ValidationFailed
from services.common.rpc import ServiceRpc

log = logging.getLogger(__name__)

INVOICES = "/api/v1/invoices"
INVOICE = INVOICES + "/<invoice_id>"
EXPORTS = AGENT + "/exports"
# the month-end run and the exports read a whole commune's month: a longer deadline than the 5 s of
# interactive calls (the run is idempotent, so a client that gave up may simply ask again)
BATCH_TIMEOUT_SECONDS = 120
MAX_IDEMPOTENCY_KEY = 150  # scoped by the invoice below: billing stores at most 200 characters
SAFE_FILENAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$")
PARENT_ERRORS = {401: "UNAUTHENTICATED", 404: "NOT_FOUND (not an invoice of the caller's families)"}


def client_key(request: Request) -> str:
    """The client's `Idempotency-Key` ("" when it sent none)."""
    key = (request.headers.get("Idempotency-Key") or "").strip()
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise ValidationFailed(
            "En-tête Idempotency-Key trop long.",
            {"fields": {"Idempotency-Key": [f"Au plus {MAX_IDEMPOTENCY_KEY} caractères."]}},
        )
    return key


def payment_key(invoice_id: str, key: str, paid_cents: Any) -> str:
    """The key billing de-duplicates the invoice's payment with. The client's key is scoped to the
    invoice (the same key used for a cart or another invoice means another payment); with none, the
    invoice and what is already paid on it make the key, so a double click pays once."""
    if key:
        return f"invoice-{invoice_id}-key-{key}"
    return f"invoice-{invoice_id}-{int(paid_cents or 0)}"


def safe_filename(name: Any, default: str) -> str:
    """Billing's file name if it is a plain one (it goes into a header), else `default`."""
    return name if isinstance(name, str) and SAFE_FILENAME.match(name) else default


def pdf_response(document: dict[str, Any], invoice_id: str) -> Response:
    """The invoice's PDF (billing sends it base64), shown in the browser, printable or saved."""
    try:
        content = base64.b64decode(document["content_base64"], validate=True)
    except (KeyError, TypeError, ValueError, binascii.Error):
        log.error("billing answered an invoice PDF that is not base64")
        raise DocumentUnavailable() from None
    filename = safe_filename(document.get("filename"), f"facture-{invoice_id}.pdf")
    response = Response(content, status=200, mimetype="application/pdf")
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    response.headers["Content-Disposition"] = f'inline; filename="{filename}"'
    return response


def export_response(export: dict[str, Any], fmt: str, default_name: str) -> Response:
    """A download named as billing named it: CSV text (starting with the BOM, as billing wrote it) or
    JSON (billing's text sent as it is, not decoded and encoded again)."""
    body = export.get("body")
    filename = safe_filename(export.get("filename"), f"{default_name}.{fmt}")
    if fmt == "csv":
        return file_response(str(body or ""), "text/csv", filename)
    if isinstance(body, str):
        response = Response(body.encode("utf-8"), status=200, mimetype="application/json")
        for name, value in SECURITY_HEADERS.items():
            response.headers[name] = value
    else:
        response = json_response(200, body)
    response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class InvoicingRoutes:
    billing_batch = ServiceRpc("billing", timeout=BATCH_TIMEOUT_SECONDS)

    # --- agents: the month-end run and the exports --------------------------------------------

    @route(
        "POST",
        AGENT + "/invoicing-runs",
        summary="Run the month's invoicing for the commune (idempotent: 201 when something new was "
        "issued, 200 when the month was already invoiced)",
        tag="agent",
        auth=True,
        body=RunBody,
        responses={
            201: "The run: invoices and credit notes issued by this call",
            200: "The run: nothing new to issue",
            400: "VALIDATION_ERROR",
            504: "SERVICE_TIMEOUT (the run goes on or stopped between chunks: ask again)",
            **AGENT_ERRORS,
        },
    )
    def run_invoicing(self, request: Request, commune_id: str) -> Response:
        body = load_body(request, RunBody)
        self.authenticate(request)
        run = self.billing_batch.run_month_end(checked_id(commune_id), body["month"])
        return json_response(201 if run.get("created") else 200, run)

    @route(
        "GET",
        EXPORTS + "/invoices",
        summary="The month's invoices for the finance office, one row per invoice line: CSV (UTF-8 "
        "with BOM, `;`, decimal comma; the default) or JSON (amounts in cents)",
        tag="agent",
        auth=True,
        query=ExportQuery,
        produces=("text/csv", "application/json"),
        responses={200: "The export", 400: "VALIDATION_ERROR", **AGENT_ERRORS},
    )
    def export_invoices(self, request: Request, commune_id: str) -> Response:
        query = load_query(request, ExportQuery)
        self.authenticate(request)
        commune_id = checked_id(commune_id)
        export = self.billing_batch.export_invoices(commune_id, query["month"], query["format"])
        return export_response(export, query["format"], f"factures-{query['month']}")

    @route(
        "GET",
        EXPORTS + "/payments",
        summary="The month's payments and refunds for the finance office: CSV (the default) or JSON",
        tag="agent",
        auth=True,
        query=ExportQuery,
        produces=("text/csv", "application/json"),
        responses={200: "The export", 400: "VALIDATION_ERROR", **AGENT_ERRORS},
    )
    def export_payments(self, request: Request, commune_id: str) -> Response:
        query = load_query(request, ExportQuery)
        self.authenticate(request)
        commune_id = checked_id(commune_id)
        export = self.billing_batch.export_payments(commune_id, query["month"], query["format"])
        return export_response(export, query["format"], f"paiements-{query['month']}")

    # --- parents: their invoices ----------------------------------------------------------------

    @route(
        "GET",
        INVOICES,
        summary="The invoices and credit notes of every family the caller is linked to, newest first",
        tag="invoices",
        auth=True,
        responses={200: "Invoices", 401: "UNAUTHENTICATED"},
    )
    def list_invoices(self, request: Request) -> Response:
        self.authenticate(request)
        return json_response(200, self.billing.list_invoices())

    @route(
        "GET",
        INVOICE,
        summary="An invoice with its lines and how to pay it (its family's parents, or staff of its commune)",
        tag="invoices",
        auth=True,
        responses={200: "Invoice", **PARENT_ERRORS},
    )
    def get_invoice(self, request: Request, invoice_id: str) -> Response:
        self.authenticate(request)
        return json_response(200, self.billing.get_invoice(checked_id(invoice_id)))

    @route(
        "GET",
        INVOICE + "/pdf",
        summary="The invoice as a PDF to print (French, A4)",
        tag="invoices",
        auth=True,
        produces=("application/pdf",),
        responses={200: "application/pdf", **PARENT_ERRORS},
    )
    def invoice_pdf(self, request: Request, invoice_id: str) -> Response:
        self.authenticate(request)
        invoice_id = checked_id(invoice_id)
        return pdf_response(self.billing.invoice_pdf(invoice_id), invoice_id)

    @route(
        "POST",
        INVOICE + "/payments",
        summary="Pay what remains due on the invoice through the commune's provider (optional "
        "Idempotency-Key header; without one, a repeated request for the same amount due returns the "
        "same payment, even a failed one: send a new key to try again)",
        tag="invoices",
        auth=True,
        responses={
            201: "Payment (checkout_url: where to pay; the same payment for a repeated request)",
            400: "VALIDATION_ERROR",
            409: "INVOICE_ALREADY_PAID, PAYMENT_NOT_CONFIGURED",
            **PARENT_ERRORS,
        },
    )
    def pay_invoice(self, request: Request, invoice_id: str) -> Response:
        key = client_key(request)
        self.authenticate(request)
        invoice_id = checked_id(invoice_id)
        # without a key, what is already paid is read first (also a 404 for someone else's invoice)
        paid = None if key else self.billing.get_invoice(invoice_id).get("paid_cents")
        return json_response(201, self.billing.pay_invoice(invoice_id, payment_key(invoice_id, key, paid)))

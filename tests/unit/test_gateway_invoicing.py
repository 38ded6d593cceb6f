"""The gateway's invoicing routes without a broker: the route methods run with fake billing proxies
that answer like the RPC contract of issue 6 (and fail like billing does)."""

import base64
import json

import pytest
from nameko.testing.services import worker_factory
from werkzeug.test import EnvironBuilder
from werkzeug.wrappers import Request

from gateway.errors import error_response
from gateway.openapi import document
from gateway.routes.invoicing import BATCH_TIMEOUT_SECONDS, InvoicingRoutes
from gateway.service import GatewayService
from services.common.errors import Conflict, NotFound, ServiceError, ServiceTimeout
from services.common.rpc import ServiceRpc

COMMUNE = "6f1c1d7e-2f0a-4d8e-9a55-0a1b2c3d4e5f"
INVOICE = "5d0c8a1e-7b2f-4c3d-9e4f-5a6b7c8d9e0f"
ACTIVITY = "0b7e7c55-9a0a-4c1e-8d55-1a2b3c4d5e6f"
RUNS = f"/api/v1/agent/communes/{COMMUNE}/invoicing-runs"
EXPORTS = f"/api/v1/agent/communes/{COMMUNE}/exports"
PDF = b"%PDF-1.4\n% a tiny stand-in\n%%EOF\n"


class Fake:
    """A proxy that records its calls and answers from `answers` (a value, or an exception to raise)."""

    def __init__(self, **answers):
        self.answers = answers
        self.calls = []

    def __getattr__(self, method):
        if method not in self.answers:
            raise AttributeError(method)

        def call(*args, **kwargs):
            self.calls.append((method, args))
            answer = self.answers[method]
            if isinstance(answer, BaseException):
                raise answer
            return answer(*args, **kwargs) if callable(answer) else answer

        return call


def gateway(billing=None, batch=None):
    return worker_factory(
        GatewayService,
        billing=billing or Fake(),
        billing_batch=batch or Fake(),
        config={"ENVIRONMENT": "local", "PUBLIC_URL": "http://portail.test"},
    )


def request(method, path, body=None, headers=None, query=None):
    headers = {"Authorization": "Bearer token", **(headers or {})}
    builder = EnvironBuilder(method=method, path=path, json=body, headers=headers, query_string=query)
    return Request(builder.get_environ())


def call(handler, req, *args):
    """What JsonHttpEntrypoint does: the handler's response, or its error as the JSON error body."""
    try:
        response = handler(req, *args)
    except ServiceError as exc:
        response = error_response(exc)
    return response


def as_json(response):
    return response.status_code, json.loads(response.get_data(as_text=True))


def coded(cls, code, message="refusé"):
    error = cls(message)
    error.code = code
    return error


def run(created, issued=1):
    return {
        "id": "run-1",
        "commune_id": COMMUNE,
        "month": "2026-03",
        "invoices_issued": issued,
        "credit_notes_issued": 0,
        "total_cents": 8300 if issued else 0,
        "created": created,
        "skipped_activities": [],
    }


def invoice(**fields):
    return {
        "id": INVOICE,
        "number": "2026-000042",
        "kind": "invoice",
        "commune_id": COMMUNE,
        "commune": "Saint-Exemple",
        "family_id": "fam",
        "month": "2026-03",
        "total_cents": 8300,
        "paid_cents": 0,
        "credit_applied_cents": 0,
        "status": "issued",
        "due_date": "2026-05-01",
        "issued_at": "2026-04-01T06:00:00+00:00",
        **fields,
    }


# --- POST .../invoicing-runs ---------------------------------------------------------------------


def test_a_run_that_issued_invoices_is_201_and_a_repeat_200():
    answers = iter([run(True), run(False, issued=0)])
    batch = Fake(run_month_end=lambda c, m: next(answers))
    svc = gateway(batch=batch)
    first = as_json(call(svc.run_invoicing, request("POST", RUNS, {"month": "2026-03"}), COMMUNE))
    again = as_json(call(svc.run_invoicing, request("POST", RUNS, {"month": "2026-03"}), COMMUNE))
    assert first[0] == 201 and first[1]["invoices_issued"] == 1
    assert again[0] == 200 and again[1]["invoices_issued"] == 0
    assert batch.calls == [("run_month_end", (COMMUNE, "2026-03"))] * 2
    assert svc.attach_caller.called  # the agent's identity travels with the RPC


@pytest.mark.parametrize(
    "body",
    [{}, {"month": "2026-3"}, {"month": "2026-13"}, {"month": "2026-00"}, {"month": "26-03"},
     {"month": "2026-03-01"}, {"month": 202603}, {"month": "1999-12"}, {"month": "2026-03\n"}],
)  # fmt: skip
def test_a_run_needs_a_month_yyyy_mm(body):
    batch = Fake(run_month_end=AssertionError("not called"))
    svc = gateway(batch=batch)
    status, answer = as_json(call(svc.run_invoicing, request("POST", RUNS, body), COMMUNE))
    assert status == 400 and answer["error"] == "VALIDATION_ERROR"
    assert set(answer["fields"]) == {"month"}
    assert batch.calls == []


def test_a_run_for_another_commune_is_not_found_and_a_slow_one_a_timeout():
    svc = gateway(batch=Fake(run_month_end=NotFound()))
    assert call(svc.run_invoicing, request("POST", RUNS, {"month": "2026-03"}), COMMUNE).status_code == 404
    batch = Fake(run_month_end=AssertionError("not called"))
    svc = gateway(batch=batch)
    assert call(svc.run_invoicing, request("POST", RUNS, {"month": "2026-03"}), "nope").status_code == 404
    assert batch.calls == []
    slow = gateway(batch=Fake(run_month_end=ServiceTimeout()))
    status, body = as_json(call(slow.run_invoicing, request("POST", RUNS, {"month": "2026-03"}), COMMUNE))
    assert status == 504 and body["error"] == "SERVICE_TIMEOUT"


def test_the_run_and_the_exports_use_the_long_deadline_proxy_and_nothing_else_does():
    batch = InvoicingRoutes.billing_batch
    assert isinstance(batch, ServiceRpc) and batch.target_service == "billing"
    assert batch._fixed_timeout == BATCH_TIMEOUT_SECONDS
    billing = Fake(
        list_invoices=[invoice()],
        get_invoice=invoice(),
        invoice_pdf={"filename": "f.pdf", "content_base64": ""},
    )
    svc = gateway(billing=billing, batch=Fake())  # the batch proxy answers nothing: never called
    assert call(svc.list_invoices, request("GET", "/api/v1/invoices")).status_code == 200
    assert call(svc.get_invoice, request("GET", "/"), INVOICE).status_code == 200
    assert call(svc.invoice_pdf, request("GET", "/"), INVOICE).status_code == 200


# --- exports -------------------------------------------------------------------------------------

CSV = "\ufeffnumero;type;date_emission\r\n2026-000042;facture;01/04/2026\r\n"


def test_the_invoices_export_is_a_csv_download_with_the_bom():
    export = {"content_type": "text/csv; charset=utf-8", "filename": "factures-2026-03.csv", "body": CSV}
    batch = Fake(export_invoices=export)
    svc = gateway(batch=batch)
    response = call(svc.export_invoices, request("GET", "/", query={"month": "2026-03"}), COMMUNE)
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert response.headers["Content-Disposition"] == 'attachment; filename="factures-2026-03.csv"'
    assert response.get_data().startswith(b"\xef\xbb\xbfnumero;type")  # the BOM, in UTF-8
    assert response.get_data().decode("utf-8-sig") == CSV.removeprefix("\ufeff")
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert batch.calls == [("export_invoices", (COMMUNE, "2026-03", "csv"))]  # csv is the default


@pytest.mark.parametrize("body", [{"commune_id": COMMUNE, "month": "2026-03", "payments": []}, None])
def test_the_payments_export_in_json_is_json_whether_billing_sends_an_object_or_text(body):
    payload = {"commune_id": COMMUNE, "month": "2026-03", "payments": [{"amount_cents": 8300}]}
    answer = {"content_type": "application/json", "filename": "p.json", "body": body or json.dumps(payload)}
    batch = Fake(export_payments=answer)
    svc = gateway(batch=batch)
    query = {"month": "2026-03", "format": "json"}
    response = call(svc.export_payments, request("GET", "/", query=query), COMMUNE)
    assert as_json(response) == (200, body or payload)
    assert response.headers["Content-Type"] == "application/json"
    assert response.headers["Content-Disposition"] == 'attachment; filename="p.json"'
    assert batch.calls == [("export_payments", (COMMUNE, "2026-03", "json"))]


def test_an_unsafe_file_name_from_billing_is_not_put_in_the_header():
    export = {"filename": 'x"; evil=1.csv', "body": CSV}
    svc = gateway(batch=Fake(export_payments=export))
    response = call(svc.export_payments, request("GET", "/", query={"month": "2026-03"}), COMMUNE)
    assert response.headers["Content-Disposition"] == 'attachment; filename="paiements-2026-03.csv"'


@pytest.mark.parametrize(
    "query, fields",
    [({}, {"month"}), ({"month": "mars"}, {"month"}), ({"month": "2026-03", "format": "xlsx"}, {"format"}),
     ({"format": "pdf"}, {"month", "format"})],
)  # fmt: skip
def test_exports_refuse_a_bad_month_or_format_naming_them(query, fields):
    batch = Fake(export_invoices=AssertionError("not called"), export_payments=AssertionError("not called"))
    svc = gateway(batch=batch)
    for handler in (svc.export_invoices, svc.export_payments):
        status, body = as_json(call(handler, request("GET", "/", query=query), COMMUNE))
        assert status == 400 and set(body["fields"]) == fields
    assert batch.calls == []


def test_exports_of_a_commune_the_caller_is_not_staff_of_are_not_found():
    svc = gateway(batch=Fake(export_invoices=NotFound(), export_payments=NotFound()))
    for handler in (svc.export_invoices, svc.export_payments):
        assert call(handler, request("GET", "/", query={"month": "2026-03"}), COMMUNE).status_code == 404


# --- parents: list, detail, PDF ------------------------------------------------------------------


def test_the_parent_s_invoices_come_as_billing_lists_them():
    billing = Fake(list_invoices=[invoice(), invoice(id="older", number="2026-000007")])
    svc = gateway(billing=billing)
    status, body = as_json(call(svc.list_invoices, request("GET", "/api/v1/invoices")))
    assert status == 200 and [i["number"] for i in body] == ["2026-000042", "2026-000007"]
    assert billing.calls == [("list_invoices", ())]


def test_an_invoice_is_shown_to_its_family_and_hidden_from_anyone_else():
    detail = invoice(family="Famille Martin", lines=[], payment_instructions="…", corrects=None)
    svc = gateway(billing=Fake(get_invoice=detail))
    assert as_json(call(svc.get_invoice, request("GET", "/"), INVOICE)) == (200, detail)
    hidden = gateway(billing=Fake(get_invoice=NotFound()))
    status, body = as_json(call(hidden.get_invoice, request("GET", "/"), INVOICE))
    assert status == 404 and body["error"] == "NOT_FOUND"
    never = Fake(get_invoice=AssertionError("not called"))
    assert call(gateway(billing=never).get_invoice, request("GET", "/"), "../x").status_code == 404
    assert never.calls == []


def test_the_pdf_arrives_decoded_with_its_type_and_file_name():
    encoded = base64.b64encode(PDF).decode()
    billing = Fake(invoice_pdf={"filename": "facture-2026-000042.pdf", "content_base64": encoded})
    svc = gateway(billing=billing)
    response = call(svc.invoice_pdf, request("GET", "/"), INVOICE)
    assert response.status_code == 200 and response.get_data() == PDF
    assert response.headers["Content-Type"] == "application/pdf"
    assert response.headers["Content-Disposition"] == 'inline; filename="facture-2026-000042.pdf"'
    assert response.headers["Cache-Control"] == "no-store"  # a family's invoice is not cached
    assert billing.calls == [("invoice_pdf", (INVOICE,))]


def test_a_pdf_that_is_not_base64_is_an_error_not_garbage():
    svc = gateway(billing=Fake(invoice_pdf={"filename": "f.pdf", "content_base64": "%PDF not base64!"}))
    status, body = as_json(call(svc.invoice_pdf, request("GET", "/"), INVOICE))
    assert (status, body["error"]) == (502, "DOCUMENT_UNAVAILABLE") and "%PDF" not in json.dumps(body)
    hidden = gateway(billing=Fake(invoice_pdf=NotFound()))
    assert call(hidden.invoice_pdf, request("GET", "/"), INVOICE).status_code == 404


# --- parents: paying -----------------------------------------------------------------------------


def payment(**fields):
    return {
        "id": "pay-1",
        "invoice_id": INVOICE,
        "provider": "demo",
        "amount_cents": 8300,
        "status": "pending",
        "checkout_url": "http://portail.test/payments/demo/pay-1",
        **fields,
    }


def test_without_a_key_the_amount_already_paid_makes_it_so_a_double_click_pays_once():
    paid = iter([0, 0, 3000])
    billing = Fake(
        get_invoice=lambda i: invoice(paid_cents=next(paid)),
        pay_invoice=lambda i, key: payment(idempotency=key),
    )
    svc = gateway(billing=billing)
    path = f"/api/v1/invoices/{INVOICE}/payments"
    for _ in range(3):
        assert call(svc.pay_invoice, request("POST", path), INVOICE).status_code == 201
    keys = [args[1] for method, args in billing.calls if method == "pay_invoice"]
    assert keys == [f"invoice-{INVOICE}-0", f"invoice-{INVOICE}-0", f"invoice-{INVOICE}-3000"]


def test_a_client_key_is_scoped_to_the_invoice():
    billing = Fake(get_invoice=AssertionError("not needed"), pay_invoice=payment())
    svc = gateway(billing=billing)
    req = lambda: request("POST", "/", headers={"Idempotency-Key": " clic-1 "})  # noqa: E731
    assert as_json(call(svc.pay_invoice, req(), INVOICE)) == (201, payment())
    assert as_json(call(svc.pay_invoice, req(), INVOICE)) == (201, payment())
    assert billing.calls == [("pay_invoice", (INVOICE, f"invoice-{INVOICE}-key-clic-1"))] * 2
    assert len(f"invoice-{INVOICE}-key-" + "k" * 150) <= 200  # what billing stores


def test_a_too_long_key_is_refused_before_billing_is_asked():
    billing = Fake(pay_invoice=AssertionError("not called"), get_invoice=AssertionError("not called"))
    svc = gateway(billing=billing)
    status, body = as_json(
        call(svc.pay_invoice, request("POST", "/", headers={"Idempotency-Key": "k" * 151}), INVOICE)
    )
    assert status == 400 and set(body["fields"]) == {"Idempotency-Key"}
    assert billing.calls == []


def test_paying_a_paid_invoice_is_a_conflict_and_someone_else_s_not_found():
    svc = gateway(billing=Fake(pay_invoice=coded(Conflict, "INVOICE_ALREADY_PAID", "Facture déjà payée.")))
    status, body = as_json(
        call(svc.pay_invoice, request("POST", "/", headers={"Idempotency-Key": "k"}), INVOICE)
    )
    assert (status, body["error"]) == (409, "INVOICE_ALREADY_PAID")
    billing = Fake(get_invoice=NotFound(), pay_invoice=AssertionError("not called"))
    assert call(gateway(billing=billing).pay_invoice, request("POST", "/"), INVOICE).status_code == 404
    assert [method for method, _ in billing.calls] == ["get_invoice"]


# --- tariff rule and OpenAPI ---------------------------------------------------------------------

TARIFF = f"/api/v1/agent/communes/{COMMUNE}/activities/{ACTIVITY}/tariff"


@pytest.mark.parametrize("basis", ["booked", "attended"])
def test_the_tariff_carries_the_invoice_basis(basis):
    billing = Fake(set_tariff=lambda c, a, t: t)
    svc = gateway(billing=billing)
    body = {"unit_price_cents": 415, "invoice_basis": basis}
    assert call(svc.set_tariff, request("PUT", TARIFF, body), COMMUNE, ACTIVITY).status_code == 200
    assert billing.calls[0][1][2] == {
        "unit_price_cents": 415,
        "cancellation_refund": "refund",
        "invoice_basis": basis,
    }


def test_a_tariff_without_a_basis_leaves_it_to_billing_and_a_wrong_one_is_refused():
    billing = Fake(set_tariff=lambda c, a, t: t)
    svc = gateway(billing=billing)
    assert (
        call(svc.set_tariff, request("PUT", TARIFF, {"unit_price_cents": 1}), COMMUNE, ACTIVITY).status_code
        == 200
    )
    assert "invoice_basis" not in billing.calls[0][1][2]
    bad = {"unit_price_cents": 1, "invoice_basis": "reserved"}
    status, body = as_json(call(svc.set_tariff, request("PUT", TARIFF, bad), COMMUNE, ACTIVITY))
    assert status == 400 and set(body["fields"]) == {"invoice_basis"} and len(billing.calls) == 1


def test_invoicing_routes_are_in_the_openapi_document():
    paths = document("http://portail.test")["paths"]
    base = "/api/v1/agent/communes/{commune_id}"
    run_op = paths[base + "/invoicing-runs"]["post"]
    assert run_op["requestBody"]["content"]["application/json"]["schema"]["required"] == ["month"]
    assert run_op["requestBody"]["content"]["application/json"]["schema"]["properties"]["month"]["pattern"]
    assert {"200", "201", "400", "404"} <= set(run_op["responses"])
    for kind in ("invoices", "payments"):
        export = paths[f"{base}/exports/{kind}"]["get"]
        query = {p["name"]: p for p in export["parameters"] if p["in"] == "query"}
        assert query["month"]["required"] and query["format"]["schema"]["enum"] == ["csv", "json"]
        assert set(export["responses"]["200"]["content"]) == {"text/csv", "application/json"}
    assert set(paths["/api/v1/invoices/{invoice_id}/pdf"]["get"]["responses"]["200"]["content"]) == {
        "application/pdf"
    }
    for path in (
        "/api/v1/invoices",
        "/api/v1/invoices/{invoice_id}",
        "/api/v1/invoices/{invoice_id}/payments",
    ):
        assert all("security" in op for op in paths[path].values())
    assert "409" in paths["/api/v1/invoices/{invoice_id}/payments"]["post"]["responses"]
    tariff = paths[base + "/activities/{activity_id}/tariff"]["put"]
    basis = tariff["requestBody"]["content"]["application/json"]["schema"]["properties"]["invoice_basis"]
    assert basis["anyOf"][0]["enum"] == ["booked", "attended"]


# --- the demo page, for an invoice's payment -----------------------------------------------------


def test_the_demo_page_of_an_invoice_payment_names_the_invoice_and_speaks_of_it_not_of_places():
    decided = payment(status="succeeded", invoice_number="2026-000042", days=[], total_cents=8300)
    billing = Fake(demo_payment=payment(invoice_number="2026-000042"), demo_outcome=decided)
    svc = gateway(billing=billing)
    page = call(
        svc.demo_payment_page, request("GET", "/payments/demo/x"), "5d0c8a1e-7b2f-4c3d-9e4f-5a6b7c8d9e01"
    )
    assert page.status_code == 200 and "Facture n° 2026-000042" in page.get_data(as_text=True)
    assert "83,00\u00a0€" in page.get_data(as_text=True)
    builder = EnvironBuilder(method="POST", path="/", data=b"outcome=succeeded")
    form = Request(builder.get_environ())
    form.environ["CONTENT_TYPE"] = "application/x-www-form-urlencoded"
    text = call(svc.demo_payment_outcome, form, "5d0c8a1e-7b2f-4c3d-9e4f-5a6b7c8d9e01").get_data(as_text=True)
    assert "Votre facture est réglée" in text and "réservations" not in text

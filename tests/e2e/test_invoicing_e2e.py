"""Month-end invoicing over HTTP, the whole stack on PostgreSQL with the demo provider (issue 6): an
agent prices two postpaid activities (the canteen billed on attended days, the evening care on booked
days), a parent books a month of days for two children, the agent marks attendance, runs the month
(201, then 200 with nothing new), the family is emailed; the parent finds the invoice with the right
total, prints its PDF, pays it on the demo page (the invoice becomes paid, the family account
balances); the finance office's exports show the invoice and the payment. Then the parent, signed in
on the portal, sees the same invoice on the invoices site in a headless Chromium without being asked
for a password (single sign-on): a second test, on the first one's invoice."""

import datetime as dt
import json
import time
from collections import defaultdict
from urllib.parse import urlparse
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from services.common.db import get_engine
from tests.e2e.towns import WEEKDAYS, Town, parent, set_tariff

pytestmark = pytest.mark.e2e

PASSWORD = "un mot de passe solide"  # Platform.registered_account's default
DEADLINE = {"days_before": 1, "at": "10:00"}
CANTEEN_BANDS = [
    {"qf_max": 500, "unit_price_cents": 150},
    {"qf_max": 1000, "unit_price_cents": 415},
    {"qf_max": None, "unit_price_cents": 600},
]
CARE_PRICE = 200


def wait_for(check, timeout=20.0):
    """Poll `check` until it returns something truthy (effects travel through events)."""
    deadline = time.monotonic() + timeout
    while True:
        found = check()
        if found or time.monotonic() > deadline:
            return found
        time.sleep(0.3)


def coming_month():
    """A whole calendar month whose first day is at least ten days ahead (every deadline open)."""
    first = (dt.date.today() + dt.timedelta(days=40)).replace(day=1)
    last = (first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
    return first, last


def postpaid_activity(town, name, kind, first, last):
    body = {
        "name": name,
        "kind": kind,
        "billing_mode": "postpaid",
        "capacity": 20,
        "weekdays": WEEKDAYS,
        "start_date": first.isoformat(),
        "end_date": last.isoformat(),
        "booking_deadline": DEADLINE,
        "cancellation_deadline": DEADLINE,
    }
    response = town.agent_client.post(town.path("/activities"), token=town.agent, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def book_month(client, token, child, activity, first, last):
    """The month's days of the activity, put in the cart as one period."""
    period = {"from": first.isoformat(), "to": last.isoformat(), "weekdays": WEEKDAYS}
    added = client.post(
        "/api/v1/cart/items",
        token=token,
        json={"child_id": child["id"], "activity_id": activity["id"], "period": period},
    )
    assert added.status_code == 201, added.text


def mark(town, activity, child, day, status):
    body = {"activity_id": activity["id"], "date": day, "child_id": child["id"], "status": status}
    response = town.agent_client.request("PUT", town.path("/attendance"), token=town.agent, json=body)
    assert response.status_code == 200, response.text


def billing_projection_has(env, commune_id, booked, marked):
    """Whether billing's copy of the days (fed by booking's events, asynchronously) has them all: the
    run must not start before, or it would rightly invoice less and correct it later. Read-only."""
    engine = get_engine(env["BILLING_DB_URI"])
    with engine.connect() as conn:
        found = conn.execute(
            text(
                "SELECT count(*), count(attendance) FROM billable_days "
                "WHERE commune_id = :commune AND state = 'booked'"
            ),
            {"commune": commune_id},
        ).one()
    return tuple(found) == (booked, marked)


def test_a_month_of_postpaid_days_invoiced_emailed_paid_and_exported(platform, admin):
    town = Town(platform, *admin, "Factureville")
    agent = town.agent_client
    assert (
        agent.request("PUT", town.path("/payment-settings"), token=town.agent, json={"provider": "demo"})
    ).status_code == 200
    first, last = coming_month()
    month = f"{first:%Y-%m}"
    canteen = postpaid_activity(town, "Cantine", "canteen", first, last)
    care = postpaid_activity(town, "Garderie du soir", "evening_care", first, last)
    attended = set_tariff(town, canteen["id"], {"bands": CANTEEN_BANDS, "invoice_basis": "attended"})
    assert attended["invoice_basis"] == "attended"
    booked = set_tariff(town, care["id"], {"unit_price_cents": CARE_PRICE, "invoice_basis": "booked"})
    assert booked["invoice_basis"] == "booked"
    wrong = agent.request(
        "PUT",
        town.path(f"/activities/{care['id']}/tariff"),
        token=town.agent,
        json={"unit_price_cents": 1, "invoice_basis": "reserved"},
    )
    assert wrong.status_code == 400 and set(wrong.json()["fields"]) == {"invoice_basis"}

    # a family (quotient 800: the canteen's second band, 4,15 €) with two children, and its parent
    family_email = platform.new_email("famille")
    family = town.family(f"F-{platform.new_email()[:10]}", family_email, quotient=800)
    lea, hugo = town.child(family["id"], "Léa"), town.child(family["id"], "Hugo")
    client, parent_email, token = parent(platform)
    joined = client.post("/api/v1/adhesions", token=token, json={"code": town.code(family["id"])["code"]})
    assert joined.status_code == 201, joined.text

    # a month of days: the canteen for both children, the evening care for Léa
    book_month(client, token, lea, canteen, first, last)
    book_month(client, token, hugo, canteen, first, last)
    book_month(client, token, lea, care, first, last)
    validated = client.post("/api/v1/cart/validate", token=token, headers={"Idempotency-Key": "month-1"})
    assert validated.status_code == 200, validated.text
    results = validated.json()["results"]
    assert {r["outcome"] for r in results} == {"confirmed"} and validated.json()["payment"] is None
    days = defaultdict(list)  # (child, activity) -> the confirmed dates (closures aside)
    for result in sorted(results, key=lambda r: r["date"]):
        days[(result["child_id"], result["activity_id"])].append(result["date"])
    lea_canteen, hugo_canteen, lea_care = (
        days[(lea["id"], canteen["id"])],
        days[(hugo["id"], canteen["id"])],
        days[(lea["id"], care["id"])],
    )
    assert len(lea_canteen) >= 15 and len(lea_care) == len(lea_canteen)

    # attendance: Léa at the canteen 3 days and excused once, Hugo 2 days and absent once (not
    # excused); Léa excused once at the evening care. Unmarked canteen days are not billed.
    for day in lea_canteen[:3]:
        mark(town, canteen, lea, day, "present")
    mark(town, canteen, lea, lea_canteen[3], "absent_justified")
    for day in hugo_canteen[:2]:
        mark(town, canteen, hugo, day, "present")
    mark(town, canteen, hugo, hugo_canteen[2], "absent")
    mark(town, care, lea, lea_care[0], "absent_justified")
    total_days = len(lea_canteen) + len(hugo_canteen) + len(lea_care)
    assert wait_for(lambda: billing_projection_has(platform.env, town.id, total_days, 8)), (
        "billing did not receive every booked day and attendance"
    )
    canteen_amount = 415 * (3 + 2)
    care_amount = CARE_PRICE * (len(lea_care) - 1)
    total = canteen_amount + care_amount

    # the month-end run, then the same run again: nothing twice
    bad_month = agent.post(town.path("/invoicing-runs"), token=town.agent, json={"month": "2026-13"})
    assert bad_month.status_code == 400 and set(bad_month.json()["fields"]) == {"month"}
    run = agent.post(town.path("/invoicing-runs"), token=town.agent, json={"month": month})
    assert run.status_code == 201, run.text
    assert (run.json()["invoices_issued"], run.json()["total_cents"], run.json()["created"]) == (
        1,
        total,
        True,
    )
    again = agent.post(town.path("/invoicing-runs"), token=town.agent, json={"month": month})
    assert again.status_code == 200, again.text
    assert (again.json()["invoices_issued"], again.json()["credit_notes_issued"]) == (0, 0)
    assert again.json()["created"] is False

    # the parent's invoice: the right total and lines
    listed = client.get("/api/v1/invoices", token=token)
    assert listed.status_code == 200, listed.text
    (invoice,) = listed.json()
    assert (invoice["kind"], invoice["month"], invoice["total_cents"]) == ("invoice", month, total)
    assert (invoice["status"], invoice["paid_cents"], invoice["commune"]) == ("issued", 0, "Factureville")
    assert invoice["number"].startswith(f"{dt.date.today().year}-") and len(invoice["number"]) == 11
    detail = client.get(f"/api/v1/invoices/{invoice['id']}", token=token)
    assert detail.status_code == 200, detail.text
    lines = {
        (line["child_first_name"], line["activity_name"]): (
            line["unit_price_cents"],
            line["quantity"],
            line["amount_cents"],
        )
        for line in detail.json()["lines"]
    }
    assert lines == {
        ("Léa", "Cantine"): (415, 3, 1245),
        ("Hugo", "Cantine"): (415, 2, 830),
        ("Léa", "Garderie du soir"): (CARE_PRICE, len(lea_care) - 1, care_amount),
    }
    assert detail.json()["payment_instructions"]

    # the family's contact address is told, with the number
    def invoice_email():
        found = platform.mailbox.messages_to(family_email)
        return [m for m in found if invoice["number"] in m.get_body(preferencelist=("plain",)).get_content()]

    assert wait_for(invoice_email), "no email with the invoice's number to the family's address"

    # the PDF, printable; another family's parent sees none of it
    pdf = client.get(f"/api/v1/invoices/{invoice['id']}/pdf", token=token)
    assert pdf.status_code == 200 and pdf.headers["Content-Type"] == "application/pdf"
    assert pdf.content.startswith(b"%PDF") and invoice["number"] in pdf.headers["Content-Disposition"]
    stranger, _, stranger_token = parent(platform)
    assert stranger.get("/api/v1/invoices", token=stranger_token).json() == []
    assert stranger.get(f"/api/v1/invoices/{invoice['id']}", token=stranger_token).status_code == 404
    assert stranger.get(f"/api/v1/invoices/{invoice['id']}/pdf", token=stranger_token).status_code == 404
    assert platform.client().get("/api/v1/invoices").status_code == 401

    # paid with the demo provider: a double click is one payment
    pay = client.post(f"/api/v1/invoices/{invoice['id']}/payments", token=token)
    assert pay.status_code == 201, pay.text
    payment = pay.json()
    twice = client.post(f"/api/v1/invoices/{invoice['id']}/payments", token=token)
    assert twice.status_code in (200, 201) and twice.json()["id"] == payment["id"]
    assert (payment["amount_cents"], payment["invoice_id"], payment["status"]) == (
        total,
        invoice["id"],
        "pending",
    )
    checkout = urlparse(payment["checkout_url"])
    assert checkout.path == f"/payments/demo/{payment['id']}"
    paid = platform.client().post(checkout.path, json={"outcome": "succeeded"})
    assert paid.status_code == 200 and paid.json()["status"] == "succeeded", paid.text

    def paid_invoice():
        shown = client.get(f"/api/v1/invoices/{invoice['id']}", token=token).json()
        return shown if shown["status"] == "paid" else None

    shown = wait_for(paid_invoice)
    assert shown and shown["paid_cents"] == total
    again_pay = client.post(
        f"/api/v1/invoices/{invoice['id']}/payments", token=token, headers={"Idempotency-Key": "x"}
    )
    assert again_pay.status_code == 409 and again_pay.json()["error"] == "INVOICE_ALREADY_PAID"
    account = client.get(f"/api/v1/communes/{town.id}/account", token=token).json()
    assert sorted((e["kind"], e["amount_cents"]) for e in account["entries"]) == [
        ("invoice", -total),
        ("payment", total),
    ]
    assert account["balance_cents"] == 0

    # the finance office's exports: CSV for a French spreadsheet, and JSON
    exports = town.path("/exports")
    invoices_csv = agent.get(
        f"{exports}/invoices", token=town.agent, params={"month": month, "format": "csv"}
    )
    assert invoices_csv.status_code == 200, invoices_csv.text
    assert invoices_csv.headers["Content-Type"] == "text/csv; charset=utf-8"
    assert invoices_csv.headers["Content-Disposition"].startswith("attachment; filename=")
    assert invoices_csv.content.startswith(b"\xef\xbb\xbf")  # the BOM
    rows = invoices_csv.content.decode("utf-8-sig").split("\r\n")
    assert rows[0].startswith("numero;type;date_emission;echeance;famille")
    invoice_rows = [row for row in rows[1:] if row.startswith(invoice["number"] + ";")]
    assert len(invoice_rows) == 3  # one row per invoice line
    assert any(";4,15;" in row and ";12,45;" in row for row in invoice_rows)  # decimal comma
    invoices_json = agent.get(
        f"{exports}/invoices", token=town.agent, params={"month": month, "format": "json"}
    )
    assert invoices_json.status_code == 200 and invoices_json.headers["Content-Type"].startswith(
        "application/json"
    )
    (exported,) = invoices_json.json()["invoices"]
    assert exported["number"] == invoice["number"] and exported["total_cents"] == total
    assert sum(line["amount_cents"] for line in exported["lines"]) == total

    # payments are exported by the month they were settled in (commune time): this month
    paid_month = f"{dt.datetime.now(ZoneInfo('Europe/Paris')):%Y-%m}"
    payments_csv = agent.get(f"{exports}/payments", token=town.agent, params={"month": paid_month})
    assert payments_csv.status_code == 200 and payments_csv.content.startswith(b"\xef\xbb\xbf")
    payment_text = payments_csv.content.decode("utf-8-sig")
    assert invoice["number"] in payment_text and payment["id"] in payment_text
    payments_json = agent.get(
        f"{exports}/payments", token=town.agent, params={"month": paid_month, "format": "json"}
    )
    assert payments_json.status_code == 200
    assert payment["id"] in json.dumps(payments_json.json())
    bad_format = agent.get(f"{exports}/invoices", token=town.agent, params={"month": month, "format": "xlsx"})
    assert bad_format.status_code == 400 and set(bad_format.json()["fields"]) == {"format"}
    other_town = Town(platform, *admin, "Ailleurs")
    hidden = other_town.agent_client.get(
        f"{exports}/invoices", token=other_town.agent, params={"month": month}
    )
    assert hidden.status_code == 404

"""Month-end invoicing, the whole stack on PostgreSQL with the demo provider (issue 6): an agent
prices two postpaid activities (the canteen billed on attended days, the evening care on booked days),
a parent books a month of days for two children, the agent marks attendance, runs the month (201, then
200 with nothing new), the family is emailed.

Then two ways to pay, each on its own commune's month: over HTTP (the parent finds the invoice with
the right total, prints its PDF, pays it on the demo page; the invoice becomes paid, the family
account balances), and in a real headless Chromium (tests/browser.py): the parent, signed in on the
portal, opens the invoices site without being asked for a password again (single sign-on), opens the
invoice (lines and total in French), downloads its PDF, clicks "Payer", chooses the successful outcome
on the demo payment page and comes back to the site where the invoice reads "Payée". Both times the
finance office's exports (CSV and JSON) show the invoice and the payment."""

import datetime as dt
import json
import time
from collections import defaultdict
from types import SimpleNamespace
from urllib.parse import parse_qs, urlparse, urlsplit
from zoneinfo import ZoneInfo

import pytest
from sqlalchemy import text

from invoices_site.formatting import euros, month_label
from services.common.db import get_engine
from tests.browser import new_context, run_scenario
from tests.e2e.towns import WEEKDAYS, Town, Visits, parent, set_tariff, sign_in_on_portal

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


def invoiced_month(platform, admin, commune_name):
    """A commune pricing two postpaid activities, a family with two children booked for a whole month
    by their parent, attendance marked, and the month-end run (then the same run again: nothing
    twice). Returns what the tests go on with."""
    town = Town(platform, *admin, commune_name)
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
    return SimpleNamespace(
        town=town,
        client=client,
        token=token,
        parent_email=parent_email,
        family_email=family_email,
        month=month,
        total=total,
        care_days=len(lea_care),
    )


def check_exports(platform, admin, town, month, invoice, payment_id):
    """The finance office's exports show the invoice (by the month invoiced) and its payment (by
    the month it was settled in); another commune's agent sees none of it."""
    agent, total = town.agent_client, invoice["total_cents"]

    # CSV for a French spreadsheet, and JSON
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
    assert invoice["number"] in payment_text and payment_id in payment_text
    payments_json = agent.get(
        f"{exports}/payments", token=town.agent, params={"month": paid_month, "format": "json"}
    )
    assert payments_json.status_code == 200
    assert payment_id in json.dumps(payments_json.json())
    bad_format = agent.get(f"{exports}/invoices", token=town.agent, params={"month": month, "format": "xlsx"})
    assert bad_format.status_code == 400 and set(bad_format.json()["fields"]) == {"format"}
    other_town = Town(platform, *admin, "Ailleurs")
    hidden = other_town.agent_client.get(
        f"{exports}/invoices", token=other_town.agent, params={"month": month}
    )
    assert hidden.status_code == 404


def test_a_month_of_postpaid_days_invoiced_emailed_paid_and_exported(platform, admin):
    month_set = invoiced_month(platform, admin, "Factureville")
    town, client, token = month_set.town, month_set.client, month_set.token
    month, total, family_email = month_set.month, month_set.total, month_set.family_email
    care_amount = CARE_PRICE * (month_set.care_days - 1)

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
        ("Léa", "Garderie du soir"): (CARE_PRICE, month_set.care_days - 1, care_amount),
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
    check_exports(platform, admin, town, month, invoice, payment["id"])


# --- the same month on the invoices site, in a real browser (issue 6, end to end) ---------------


def pays_on_the_invoices_site(browser, site_url, issuer, email, password, number):
    """Signed in on the portal, the parent opens the invoices site (no password asked again), opens
    the invoice, downloads its PDF, clicks "Payer", chooses the successful outcome on the demo
    payment page, and comes back through that page's "Retour à la facture" link to the site, where the
    invoice reads "Payée". Runs in its own process (tests/browser.py); asserts what only the browser can
    see and reports the rest."""
    context = new_context(browser, accept_downloads=True)
    page = context.new_page()
    sign_in_on_portal(context, page, issuer, email, password)

    # the invoices site: single sign-on, the issued invoice in the list
    visits = Visits(page)
    page.goto(site_url + "/")
    page.wait_for_url(site_url + "/")
    sso_paths = visits.paths()
    card = page.locator(".cards > li").filter(has_text=f"Facture n° {number}")
    list_text = card.inner_text()

    # the invoice: its lines and totals
    card.get_by_role("link", name=f"Voir la facture n° {number}").click()
    page.wait_for_url(lambda url: urlsplit(url).path.startswith("/factures/"))
    invoice_path = urlsplit(page.url).path
    rows = [
        [cell.strip() for cell in row.locator("td").all_inner_texts()]
        for row in page.locator("table tbody tr").all()
    ]
    invoice_text = page.locator("main").inner_text()

    # the PDF, as the link downloads it, and as the site serves it (same cookies)
    link = page.get_by_role("link", name=f"Télécharger la facture n° {number} (PDF)")
    with page.expect_download() as downloading:
        link.click()
    download = downloading.value
    with open(download.path(), "rb") as pdf_file:
        pdf_start = pdf_file.read(5)
    served = context.request.get(site_url + link.get_attribute("href"))
    pdf = {
        "filename": download.suggested_filename,
        "start": pdf_start.decode("latin-1"),
        "status": served.status,
        "content_type": served.headers.get("content-type"),
        "served_start": served.body()[:5].decode("latin-1"),
    }

    # "Payer": the demo provider's test page, where the parent clicks the successful outcome
    page.get_by_role("button", name="Payer").click()
    page.wait_for_url(lambda url: urlsplit(url).path.startswith("/payments/demo/"))
    demo_url = page.url
    demo_text = page.locator("main").inner_text()
    page.get_by_role("button", name="Simuler un paiement accepté").click()
    page.get_by_role("status").wait_for()
    outcome_text = page.locator("main").inner_text()

    # back on the invoices site through the page's link: the invoice is paid (billing settles it from
    # the payment's event)
    page.get_by_role("link", name="Retour à la facture").click()
    page.wait_for_url(site_url + invoice_path)
    back_url = page.url
    deadline = time.monotonic() + 20
    status = page.locator("dd[class^=status-]")
    while status.inner_text() != "Payée" and time.monotonic() < deadline:
        time.sleep(0.3)
        page.reload()
    paid_text = page.locator("main").inner_text()
    pay_buttons = page.get_by_role("button", name="Payer").count()
    page.goto(site_url + "/")
    paid_list_text = page.locator(".cards > li").filter(has_text=f"Facture n° {number}").inner_text()
    context.close()
    return {
        "sso_paths": sso_paths,
        "list_text": list_text,
        "invoice_path": invoice_path,
        "rows": rows,
        "invoice_text": invoice_text,
        "pdf": pdf,
        "demo_url": demo_url,
        "demo_text": demo_text,
        "outcome_text": outcome_text,
        "back_url": back_url,
        "paid_text": paid_text,
        "pay_buttons": pay_buttons,
        "paid_list_text": paid_list_text,
    }


def test_the_parent_pays_the_month_on_the_invoices_site_in_a_browser(platform, admin, site_url):
    month_set = invoiced_month(platform, admin, "Payeville")
    client, token, total = month_set.client, month_set.token, month_set.total
    (invoice,) = client.get("/api/v1/invoices", token=token).json()
    assert (invoice["status"], invoice["paid_cents"]) == ("issued", 0)
    care_amount = CARE_PRICE * (month_set.care_days - 1)

    seen = run_scenario(
        pays_on_the_invoices_site,
        site_url=site_url,
        issuer=platform.env["PUBLIC_URL"],
        email=month_set.parent_email,
        password=PASSWORD,
        number=invoice["number"],
    )

    # single sign-on: the provider's authorization endpoint, never its login form
    assert "/oidc/authorize" in seen["sso_paths"] and "/oidc/login" not in seen["sso_paths"], seen
    # the list and the invoice, in French: amounts "1 234,50 €", the status, the lines
    assert euros(total) in seen["list_text"] and "À payer" in seen["list_text"], seen["list_text"]
    assert "Payeville" in seen["list_text"] and month_label(month_set.month) in seen["list_text"]
    assert seen["invoice_path"] == f"/factures/{invoice['id']}"
    assert sorted(seen["rows"]) == sorted(
        [
            ["Léa", "Cantine", euros(415), "3", euros(1245)],
            ["Hugo", "Cantine", euros(415), "2", euros(830)],
            ["Léa", "Garderie du soir", euros(CARE_PRICE), str(month_set.care_days - 1), euros(care_amount)],
        ]
    ), seen["rows"]
    assert "4,15\u00a0€" in seen["invoice_text"] and f"Total\n{euros(total)}" in seen["invoice_text"]
    assert f"Reste à payer\n{euros(total)}" in seen["invoice_text"], seen["invoice_text"]
    # a real PDF, downloaded from the site
    pdf = seen["pdf"]
    assert pdf["start"] == "%PDF-" and pdf["served_start"] == "%PDF-", pdf
    assert pdf["status"] == 200 and pdf["content_type"] == "application/pdf", pdf
    assert pdf["filename"] == f"facture-{invoice['id']}.pdf", pdf
    # the demo provider's page: this invoice, its amount, then the outcome the parent clicked
    demo = urlsplit(seen["demo_url"])
    assert f"{demo.scheme}://{demo.netloc}" == platform.env["PUBLIC_URL"], seen["demo_url"]
    payment_id = demo.path.rsplit("/", 1)[1]
    # (billing's demo_payment carries the invoice's id but not its number: the page says "Facture")
    assert seen["demo_text"].startswith("Paiement de test\n"), seen["demo_text"]
    assert "\nFacture" in seen["demo_text"] and f"Montant à payer :\n\n{euros(total)}" in seen["demo_text"]
    assert "En attente de paiement" in seen["demo_text"], seen["demo_text"]
    assert "Paiement de test accepté. Votre facture est réglée." in seen["outcome_text"], seen
    # the invoices site sent its invoice page along (?return_to=), and the page's link went back there
    assert parse_qs(demo.query)["return_to"] == [site_url + seen["invoice_path"]], seen["demo_url"]
    assert "Retour à la facture" in seen["outcome_text"], seen["outcome_text"]
    assert seen["back_url"] == site_url + seen["invoice_path"], seen["back_url"]
    # back on the invoices site: paid, nothing left to pay, no "Payer" button
    assert "Statut\nPayée" in seen["paid_text"], seen["paid_text"]
    assert f"Reste à payer\n{euros(0)}" in seen["paid_text"] and seen["pay_buttons"] == 0
    assert "Payée" in seen["paid_list_text"], seen["paid_list_text"]

    # the API agrees: one succeeded payment of the whole invoice, the family account balances
    shown = client.get(f"/api/v1/invoices/{invoice['id']}", token=token).json()
    assert (shown["status"], shown["paid_cents"]) == ("paid", total)
    payment = client.get(f"/api/v1/payments/{payment_id}", token=token)
    assert payment.status_code == 200, payment.text
    assert (payment.json()["status"], payment.json()["amount_cents"]) == ("succeeded", total)
    assert payment.json()["invoice_id"] == invoice["id"]
    town = month_set.town
    account = client.get(f"/api/v1/communes/{town.id}/account", token=token).json()
    assert account["balance_cents"] == 0
    check_exports(platform, admin, town, month_set.month, invoice, payment_id)

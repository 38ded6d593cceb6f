"""Month-end invoicing against the real PostgreSQL and RabbitMQ, next to the real identity, communes
and booking services (booking's events dispatched under booking's name): the run and its RPC, one
invoice per family with gapless numbers, re-runs issuing nothing twice, a credit note after a late
attendance correction (the original unchanged), credits applied, an invoice paid with the demo
provider, the exports, who may see what; and, calling the run directly as the benchmark does, two
concurrent runs and a run killed half-way then run again."""

import base64
import contextlib
import csv
import datetime as dt
import io
import json
import uuid

import eventlet
import pytest
from nameko.events import event_handler
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_waiter
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker

from services.billing import billable_days, invoicing, ledger
from services.billing.exceptions import InvoiceAlreadyPaid, InvoiceNotPayable
from services.billing.models import BillableDay, Invoice, InvoiceLine, LedgerEntry, OutboxEvent, Tariff
from services.common import clock
from services.common.db import get_engine
from services.common.errors import NotFound, ValidationFailed
from tests.integration.helpers import about, agent_of, call, new_parent
from tests.integration.test_billing_service import T0, Town, start_platform

pytestmark = pytest.mark.integration

RUN_AT = dt.datetime(2026, 4, 1, 5, 0, tzinfo=dt.UTC)  # 1 April, 7:00 in Paris
MARCH = [f"2026-03-{d:02d}" for d in (2, 3, 4, 5, 6, 9, 10)]


class InvoiceEventsRecorder:
    """Stands for notify, which emails the family when an invoice is issued."""

    name = "billing_invoice_recorder"

    @event_handler("billing", "invoice_issued")
    def on_invoice_issued(self, payload):
        return payload

    @event_handler("billing", "invoice_paid")
    def on_invoice_paid(self, payload):
        return payload


@pytest.fixture
def platform(
    container_factory,
    billing_config,
    booking_for_billing_config,
    communes_for_billing_config,
    identity_for_billing_config,
):
    found = start_platform(
        container_factory,
        billing_config,
        booking_for_billing_config,
        communes_for_billing_config,
        identity_for_billing_config,
    )
    found.invoices = container_factory(InvoiceEventsRecorder, billing_config)
    found.invoices.start()
    return found


def engine_of(platform):
    return get_engine(platform.config["DB_URIS"]["billing"])


def dispatch(platform, event_type, payloads, handler):
    """booking's events as booking publishes them; waits until billing has handled the last one."""
    send = event_dispatcher({"AMQP_URI": platform.config["AMQP_URI"]})
    for payload in payloads[:-1]:
        send("booking", event_type, {"event_id": str(uuid.uuid4()), **payload})
    with entrypoint_waiter(
        platform.billing, handler, callback=about("booking_id", payloads[-1]["booking_id"]), timeout=15
    ):
        send("booking", event_type, {"event_id": str(uuid.uuid4()), **payloads[-1]})


def days_of(town, family_id, child, activity, dates):
    return [
        {
            "booking_id": str(uuid.uuid4()),
            "commune_id": town.id,
            "family_id": family_id,
            "child_id": child["id"],
            "activity_id": activity["id"],
            "activity_name": activity["name"],
            "date": date,
            "status": "confirmed",
            "billing_mode": "postpaid",
            "account_id": str(uuid.uuid4()),
            "hold_expires_at": None,
        }
        for date in dates
    ]


def run(platform, town, month="2026-03", caller=None):
    return call(platform.billing, "run_month_end", town.id, month, caller=caller or town.agent)


def test_month_end_run_invoices_corrects_is_paid_and_exported(platform):
    town = Town(platform)
    with platform.booking_running():
        canteen = town.activity(name="Cantine", billing_mode="postpaid")
        leisure = town.activity(name="Accueil du soir", billing_mode="postpaid")
        untariffed = town.activity(name="Étude", billing_mode="postpaid")
        prepaid = town.activity(name="Stage", billing_mode="prepaid")
        assert town.tariff(canteen["id"], {"unit_price_cents": 1250})["invoice_basis"] == "booked"
        basis = {"unit_price_cents": 350, "invoice_basis": "attended"}
        assert town.tariff(leisure["id"], basis)["invoice_basis"] == "attended"
        town.tariff(prepaid["id"], {"unit_price_cents": 999})
        with pytest.raises(ValidationFailed):
            town.tariff(leisure["id"], {"unit_price_cents": 350, "invoice_basis": "present"})
    parent, family_id, lea = town.family(800)
    hugo = call(
        platform.communes,
        "add_child",
        town.id,
        family_id,
        "Hugo",
        "Martin",
        "2016-02-01",
        None,
        "CM1",
        caller=town.agent,
    )
    other_parent, other_family, other_child = town.family(None)

    clock.set_now(T0)
    confirmed = days_of(town, family_id, lea, canteen, MARCH)
    confirmed += days_of(town, family_id, hugo, canteen, MARCH[:3])
    evenings = days_of(town, family_id, hugo, leisure, MARCH[:4])
    confirmed += evenings
    confirmed += days_of(town, other_family, other_child, canteen, MARCH[:2])
    confirmed += days_of(town, other_family, other_child, untariffed, MARCH[:2])
    stage = days_of(town, other_family, other_child, prepaid, MARCH[:1])
    stage[0]["billing_mode"] = "prepaid"
    dispatch(platform, "booking_confirmed", confirmed + stage, "on_day_confirmed")
    marks = [{**e, "status": "present"} for e in evenings[:3]] + [{**evenings[3], "status": "absent"}]
    dispatch(platform, "attendance_marked", marks, "on_attendance_marked")
    cancelled = [confirmed[6]]  # Léa's last day: cancelled before the run
    dispatch(platform, "booking_cancelled", cancelled, "on_day_cancelled")
    with Session(engine_of(platform)) as session:
        assert session.get(BillableDay, stage[0]["booking_id"]) is None  # prepaid: paid when booked
        assert session.get(BillableDay, cancelled[0]["booking_id"]).state == "cancelled"

    # the family already had 10,00 € of credit
    with Session(engine_of(platform)) as session, session.begin():
        ledger.append(session, town.id, other_family, "cancellation", 1000, "Annulation", T0)

    clock.set_now(RUN_AT)
    with pytest.raises(NotFound):
        run(platform, town, caller=agent_of(str(uuid.uuid4())))
    with pytest.raises(ValidationFailed):
        run(platform, town, month="2026-3")
    with entrypoint_waiter(
        platform.invoices, "on_invoice_issued", callback=about("family_id", other_family), timeout=10
    ) as issued_event:
        answer = run(platform, town)
    assert (answer["invoices_issued"], answer["credit_notes_issued"], answer["created"]) == (2, 0, True)
    assert answer["skipped_activities"] == [{"activity_id": untariffed["id"], "activity_name": "Étude"}]
    ours_total = 6 * 1250 + 3 * 1250 + 3 * 350
    assert answer["total_cents"] == ours_total + 2 * 1250
    event = issued_event.get()
    assert (event["kind"], event["month"], event["total_cents"], event["amount_due_cents"]) == (
        "invoice",
        "2026-03",
        2500,
        1500,
    )
    assert event["due_date"] == "2026-05-01" and event["number"].startswith("2026-")

    again = run(platform, town)
    assert (again["invoices_issued"], again["credit_notes_issued"], again["created"]) == (0, 0, False)

    [mine] = call(platform.billing, "list_invoices", caller=parent)
    assert (mine["kind"], mine["commune"], mine["family_id"], mine["status"]) == (
        "invoice",
        "Rennes",
        family_id,
        "issued",
    )
    assert (mine["total_cents"], mine["paid_cents"], mine["due_date"]) == (ours_total, 0, "2026-05-01")
    detail = call(platform.billing, "get_invoice", mine["id"], caller=parent)
    assert (
        detail["family"] == "Famille"
        and detail["corrects"] is None
        and "mairie" in detail["payment_instructions"]
    )
    assert [
        (ln["child_first_name"], ln["activity_name"], ln["quantity"], ln["amount_cents"])
        for ln in detail["lines"]
    ] == [
        ("Hugo", "Accueil du soir", 3, 1050),
        ("Hugo", "Cantine", 3, 3750),
        ("Léa", "Cantine", 6, 7500),
    ]
    assert call(platform.billing, "get_invoice", mine["id"], caller=town.agent)["number"] == mine["number"]
    [theirs] = call(platform.billing, "list_invoices", caller=other_parent)
    assert (theirs["credit_applied_cents"], theirs["paid_cents"], theirs["status"]) == (
        1000,
        1000,
        "partially_paid",
    )
    numbers = sorted([mine["number"], theirs["number"]])
    assert int(numbers[1][5:]) == int(numbers[0][5:]) + 1  # gapless within the commune

    pdf = call(platform.billing, "invoice_pdf", mine["id"], caller=parent)
    assert pdf["filename"] == f"facture-{mine['number']}.pdf"
    assert base64.b64decode(pdf["content_base64"]).startswith(b"%PDF")

    for outsider in (other_parent, new_parent(), agent_of(str(uuid.uuid4()))):
        for method in ("get_invoice", "invoice_pdf"):
            with pytest.raises(NotFound):
                call(platform.billing, method, mine["id"], caller=outsider)
    with pytest.raises(NotFound):
        call(platform.billing, "pay_invoice", mine["id"], "k1", caller=other_parent)
    assert call(platform.billing, "list_invoices", caller=new_parent()) == []

    # a late attendance correction: Léa's first day was a justified absence
    dispatch(
        platform,
        "attendance_marked",
        [{**confirmed[0], "status": "absent_justified"}],
        "on_attendance_marked",
    )
    corrected = run(platform, town)
    assert (corrected["invoices_issued"], corrected["credit_notes_issued"], corrected["total_cents"]) == (
        0,
        1,
        -1250,
    )
    listed = call(platform.billing, "list_invoices", caller=parent)
    note = next(i for i in listed if i["kind"] == "credit_note")
    assert note["total_cents"] == 1250 and int(note["number"][5:]) == int(numbers[1][5:]) + 1
    assert call(platform.billing, "get_invoice", note["id"], caller=parent)["corrects"] == mine["number"]
    original = call(platform.billing, "get_invoice", mine["id"], caller=parent)
    assert original["total_cents"] == ours_total and original["lines"] == detail["lines"]  # unchanged
    with pytest.raises(InvoiceNotPayable):
        call(platform.billing, "pay_invoice", note["id"], "k-note", caller=parent)

    # paid online with the demo provider
    payment = call(platform.billing, "pay_invoice", mine["id"], "pay-1", caller=parent)
    assert (payment["invoice_id"], payment["amount_cents"], payment["provider"], payment["days"]) == (
        mine["id"],
        ours_total,
        "demo",
        [],
    )
    assert call(platform.billing, "pay_invoice", mine["id"], "pay-2", caller=parent)["id"] == payment["id"]
    with entrypoint_waiter(
        platform.invoices, "on_invoice_paid", callback=about("invoice_id", mine["id"]), timeout=10
    ) as paid_event:
        assert call(platform.billing, "demo_outcome", payment["id"], "succeeded")["status"] == "succeeded"
    assert paid_event.get()["status"] == "paid"
    paid = call(platform.billing, "get_invoice", mine["id"], caller=parent)
    assert (paid["status"], paid["paid_cents"]) == ("paid", ours_total)
    with pytest.raises(InvoiceAlreadyPaid) as refused:
        call(platform.billing, "pay_invoice", mine["id"], "pay-3", caller=parent)
    assert refused.value.code == "INVOICE_ALREADY_PAID"
    account = call(platform.billing, "family_account", town.id, caller=parent)
    assert account["balance_cents"] == 1250  # the credit note
    assert sorted((e["kind"], e["amount_cents"]) for e in account["entries"]) == sorted(
        [("invoice", -ours_total), ("credit_note", 1250), ("payment", ours_total)]
    )

    # the finance office's exports
    exported = call(platform.billing, "export_invoices", town.id, "2026-03", "csv", caller=town.agent)
    assert exported["content_type"] == "text/csv; charset=utf-8" and exported["filename"].endswith(".csv")
    body = exported["body"]
    assert body.startswith("\ufeff") and "\r\n" in body
    rows = list(csv.reader(io.StringIO(body[1:]), delimiter=";"))
    assert rows[0][:3] == ["numero", "type", "date_emission"]
    assert len(rows) == 1 + 3 + 1 + 1  # our 3 lines, theirs, the credit note's
    assert [
        mine["number"],
        "facture",
        "2026-04-01",
        "2026-05-01",
        "Famille",
        family_id,
        "Léa",
        "Cantine",
        "12,50",
        "6",
        "75,00",
    ] == next(r for r in rows if r[0] == mine["number"] and r[6] == "Léa")[:11]
    as_json = json.loads(
        call(platform.billing, "export_invoices", town.id, "2026-03", "json", caller=town.agent)["body"]
    )
    assert {i["number"] for i in as_json["invoices"]} == {mine["number"], theirs["number"], note["number"]}
    payments = call(platform.billing, "export_payments", town.id, "2026-04", "csv", caller=town.agent)["body"]
    prows = list(csv.reader(io.StringIO(payments[1:]), delimiter=";"))
    assert prows[0][:3] == ["date", "type", "montant"]
    row = next(r for r in prows if r[4] == payment["id"])
    assert (row[1], row[2], row[3], row[7]) == (
        "paiement",
        f"{ours_total // 100},{ours_total % 100:02d}",
        "demo",
        f"facture {mine['number']}",
    )
    for method in ("export_invoices", "export_payments"):
        with pytest.raises(NotFound):
            call(platform.billing, method, town.id, "2026-03", "csv", caller=parent)
    with pytest.raises(ValidationFailed):
        call(platform.billing, "export_invoices", town.id, "2026-03", "xlsx", caller=town.agent)


def test_invoices_are_dated_and_months_cut_in_the_communes_time_zone(platform):
    """At 02:30 UTC on 1 April it is already 1 April in Paris, still 31 March in Guadeloupe (UTC-4):
    each commune's invoice is dated in its own time, and so are its due date and its export."""
    issued_on = {}
    for name, zone in (("Rennes", "Europe/Paris"), ("Pointe-à-Pitre", "America/Guadeloupe")):
        town = Town(platform, name=name, timezone=zone)
        with platform.booking_running():
            canteen = town.activity(name="Cantine", billing_mode="postpaid")
            town.tariff(canteen["id"], {"unit_price_cents": 500})
        _, family_id, lea = town.family(800)
        clock.set_now(T0)
        dispatch(
            platform,
            "booking_confirmed",
            days_of(town, family_id, lea, canteen, MARCH[:2]),
            "on_day_confirmed",
        )
        clock.set_now(dt.datetime(2026, 4, 1, 2, 30, tzinfo=dt.UTC))
        answer = run(platform, town)
        assert (answer["invoices_issued"], answer["total_cents"]) == (1, 1000)
        body = call(platform.billing, "export_invoices", town.id, "2026-03", "csv", caller=town.agent)["body"]
        header, row = list(csv.reader(io.StringIO(body[1:]), delimiter=";"))[:2]
        (invoice,) = json.loads(
            call(platform.billing, "export_invoices", town.id, "2026-03", "json", caller=town.agent)["body"]
        )["invoices"]
        issued_on[zone] = (row[header.index("date_emission")], dt.date.fromisoformat(invoice["due_date"]))
    paris_day, paris_due = issued_on["Europe/Paris"]
    guadeloupe_day, guadeloupe_due = issued_on["America/Guadeloupe"]
    assert (paris_day, guadeloupe_day) == ("2026-04-01", "2026-03-31")
    assert paris_due - guadeloupe_due == dt.timedelta(days=1)


# ------------------------------------------------ the run called directly (as bench/ does)


def seed(engine, families, days=2, price=700):
    """A commune with a tariff and `families` families of one child, `days` postpaid days each, fed
    through billing's projection of booking's events."""
    commune_id = str(uuid.uuid4())
    activity_id = str(uuid.uuid4())
    with Session(engine) as session, session.begin():
        session.add(
            Tariff(
                activity_id=activity_id,
                commune_id=commune_id,
                unit_price_cents=price,
                bands=None,
                cancellation_refund="refund",
                invoice_basis="booked",
                updated_at=T0,
            )
        )
        for n in range(families):
            for d in range(days):
                payload = {
                    "event_id": str(uuid.uuid4()),
                    "booking_id": str(uuid.uuid4()),
                    "commune_id": commune_id,
                    "family_id": f"family-{n:04d}",
                    "child_id": f"child-{n:04d}",
                    "activity_id": activity_id,
                    "date": f"2026-03-{d + 2:02d}",
                    "billing_mode": "postpaid",
                }
                billable_days.on_booking_event(session, "booking_confirmed", payload, T0)
    return commune_id


def transaction_of(engine):
    factory = sessionmaker(bind=engine, expire_on_commit=False)

    @contextlib.contextmanager
    def transaction():
        with factory() as session, session.begin():
            yield session

    return transaction


def issued(engine, commune_id):
    with Session(engine) as session:
        return session.execute(
            select(Invoice.number, Invoice.family_id)
            .where(Invoice.commune_id == commune_id)
            .order_by(Invoice.number)
        ).all()


def test_two_concurrent_runs_issue_each_invoice_once_with_gapless_numbers(billing_db_uri):
    engine = get_engine(billing_db_uri)
    commune_id = seed(engine, 24)
    transaction = transaction_of(engine)

    def contend():
        return invoicing.run_month(transaction, commune_id, "2026-03", {}, RUN_AT, chunk_size=5)

    first, second = [thread.wait() for thread in [eventlet.spawn(contend), eventlet.spawn(contend)]]
    assert first["invoices_issued"] + second["invoices_issued"] == 24
    found = issued(engine, commune_id)
    assert [number for number, _ in found] == [f"2026-{n:06d}" for n in range(1, 25)]
    assert sorted(family for _, family in found) == [f"family-{n:04d}" for n in range(24)]
    with Session(engine) as session:
        ids = select(Invoice.id).where(Invoice.commune_id == commune_id)
        assert (
            session.scalar(
                select(func.count()).select_from(InvoiceLine).where(InvoiceLine.invoice_id.in_(ids))
            )
            == 24
        )
        assert (
            session.scalar(
                select(func.count()).select_from(LedgerEntry).where(LedgerEntry.commune_id == commune_id)
            )
            == 24
        )
        events = session.scalars(
            select(OutboxEvent.payload).where(OutboxEvent.event_type == "invoice_issued")
        ).all()
        assert sorted(e["number"] for e in events if e["commune_id"] == commune_id) == [n for n, _ in found]


def test_a_run_killed_half_way_then_run_again_has_no_duplicate_and_no_gap(billing_db_uri):
    engine = get_engine(billing_db_uri)
    commune_id = seed(engine, 6)
    transaction = transaction_of(engine)

    def killed(index):
        if index == 2:
            raise RuntimeError("killed after the third chunk")

    with pytest.raises(RuntimeError):
        invoicing.run_month(transaction, commune_id, "2026-03", {}, RUN_AT, chunk_size=1, after_chunk=killed)
    assert [n for n, _ in issued(engine, commune_id)] == ["2026-000001", "2026-000002", "2026-000003"]
    answer = invoicing.run_month(transaction, commune_id, "2026-03", {}, RUN_AT, chunk_size=1)
    assert (answer["invoices_issued"], answer["created"]) == (3, True)
    found = issued(engine, commune_id)
    assert [n for n, _ in found] == [f"2026-{n:06d}" for n in range(1, 7)]
    assert sorted(f for _, f in found) == [f"family-{n:04d}" for n in range(6)]
    assert invoicing.run_month(transaction, commune_id, "2026-03", {}, RUN_AT)["created"] is False


def wait_for(predicate, timeout=15.0):
    deadline = eventlet.hubs.get_hub().clock() + timeout
    while not predicate():
        if eventlet.hubs.get_hub().clock() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        eventlet.sleep(0.05)


def test_days_booked_and_marked_through_the_real_booking_service_are_invoiced(platform):
    town = Town(platform)
    parent, family_id, child = town.family(300)
    dates = ["2026-03-09", "2026-03-10", "2026-03-11", "2026-03-12", "2026-03-13"]
    clock.set_now(T0)
    with platform.booking_running() as booking:
        canteen = town.activity(name="Cantine", billing_mode="postpaid")
        town.tariff(
            canteen["id"],
            {"bands": [{"qf_max": 500, "unit_price_cents": 180}, {"qf_max": None, "unit_price_cents": 420}]},
        )
        call(booking, "add_cart_items", child["id"], canteen["id"], dates=dates, caller=parent)
        results = call(booking, "validate_cart", uuid.uuid4().hex, caller=parent)["results"]
        assert {r["outcome"] for r in results} == {"confirmed"}

        def projected():
            with Session(engine_of(platform)) as session:
                rows = session.scalars(select(BillableDay).where(BillableDay.family_id == family_id)).all()
                return len(rows) == 5 and rows

        wait_for(projected)
        clock.set_now(dt.datetime(2026, 3, 16, 8, 0, tzinfo=dt.UTC))
        call(
            booking,
            "mark_attendance",
            town.id,
            canteen["id"],
            "2026-03-10",
            child["id"],
            "absent_justified",
            caller=town.agent,
        )

        def marked():
            with Session(engine_of(platform)) as session:
                return (
                    session.scalar(
                        select(func.count())
                        .select_from(BillableDay)
                        .where(
                            BillableDay.family_id == family_id, BillableDay.attendance == "absent_justified"
                        )
                    )
                    == 1
                )

        wait_for(marked)
    with Session(engine_of(platform)) as session:
        [row] = session.scalars(
            select(BillableDay).where(
                BillableDay.family_id == family_id, BillableDay.date == dt.date(2026, 3, 9)
            )
        ).all()
        assert (row.billing_mode, row.activity_name, row.state) == ("postpaid", "Cantine", "booked")

    clock.set_now(RUN_AT)
    assert run(platform, town)["invoices_issued"] == 1
    [invoice] = call(platform.billing, "list_invoices", caller=parent)
    lines = call(platform.billing, "get_invoice", invoice["id"], caller=parent)["lines"]
    assert [
        (ln["child_first_name"], ln["activity_name"], ln["unit_price_cents"], ln["quantity"]) for ln in lines
    ] == [("Léa", "Cantine", 180, 4)]
    assert invoice["total_cents"] == 720

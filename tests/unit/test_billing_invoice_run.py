"""The month-end run on a SQLite database built from the models (no broker): booking's events kept
as billable days, invoices with gapless numbers, re-runs that issue nothing twice, a credit note after a
late attendance correction (the original unchanged), credits applied, a run interrupted after its
first chunk and run again, the ledger and the invoice_issued events."""

import contextlib
import datetime as dt
import uuid

import pytest
from sqlalchemy import create_engine, event, func, select
from sqlalchemy.orm import sessionmaker
from sqlalchemy.pool import StaticPool

from services.billing import billable_days, invoicing, ledger
from services.billing.models import (
    Base,
    BillableDay,
    Invoice,
    InvoiceLine,
    InvoiceSequence,
    LedgerEntry,
    OutboxEvent,
    Tariff,
)

NOW = dt.datetime(2026, 4, 1, 6, 30, tzinfo=dt.UTC)
COMMUNE = "commune-1"


@pytest.fixture
def transaction():
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})

    @event.listens_for(engine, "connect")
    def _fk(dbapi_conn, _record):
        dbapi_conn.execute("PRAGMA foreign_keys=ON")

    Base.metadata.create_all(engine)
    factory = sessionmaker(bind=engine, expire_on_commit=False)

    @contextlib.contextmanager
    def begin():
        with factory() as session, session.begin():
            yield session

    yield begin
    engine.dispose()


def tariff(transaction, activity_id, price, basis="booked"):
    with transaction() as session:
        session.add(
            Tariff(
                activity_id=activity_id,
                commune_id=COMMUNE,
                unit_price_cents=price,
                bands=None,
                cancellation_refund="refund",
                invoice_basis=basis,
                updated_at=NOW,
            )
        )


def booked(transaction, family, child, activity, dates, mode="postpaid"):
    ids = []
    with transaction() as session:
        for date in dates:
            booking_id = str(uuid.uuid4())
            payload = {
                "event_id": str(uuid.uuid4()),
                "booking_id": booking_id,
                "commune_id": COMMUNE,
                "family_id": family,
                "child_id": child,
                "activity_id": activity,
                "activity_name": "Cantine",
                "date": date,
                "billing_mode": mode,
                "status": "confirmed",
            }
            billable_days.on_booking_event(session, "booking_confirmed", payload, NOW)
            ids.append(payload)
    return ids


def mark(transaction, booking, status):
    with transaction() as session:
        return billable_days.on_attendance_marked(
            session, {**booking, "event_id": str(uuid.uuid4()), "status": status}, NOW
        )


def march(n, start=2):
    return [f"2026-03-{day:02d}" for day in range(start, start + n)]


def run(transaction, profiles=None, **kwargs):
    return invoicing.run_month(transaction, COMMUNE, "2026-03", profiles or {}, NOW, **kwargs)


def invoices(transaction):
    with transaction() as session:
        return session.scalars(select(Invoice).order_by(Invoice.number)).all()


def test_projection_keeps_postpaid_days_once_and_cancelled_stays_cancelled(transaction):
    [day] = booked(transaction, "f1", "c1", "a1", march(1))
    booked(transaction, "f1", "c1", "a1", march(1), mode="prepaid")
    with transaction() as session:
        assert not billable_days.on_booking_event(session, "booking_confirmed", day, NOW)  # redelivered
        cancel = {**day, "event_id": str(uuid.uuid4())}
        assert billable_days.on_booking_event(session, "booking_cancelled", cancel, NOW)
        late = {**day, "event_id": str(uuid.uuid4())}
        assert billable_days.on_booking_event(session, "booking_confirmed", late, NOW)
        refused = {**day, "event_id": str(uuid.uuid4()), "decision": "rejected"}
        assert not billable_days.on_booking_event(session, "cancellation_decided", refused, NOW)
    assert mark(transaction, day, "present")
    with transaction() as session:
        [row] = session.scalars(select(BillableDay)).all()  # the prepaid day is not kept
        assert (row.state, row.attendance, row.activity_name) == ("cancelled", "present", "Cantine")


def test_attendance_before_confirmation_keeps_the_attendance(transaction):
    day = {
        "booking_id": "b1",
        "commune_id": COMMUNE,
        "family_id": "f1",
        "child_id": "c1",
        "activity_id": "a1",
        "date": "2026-03-02",
        "billing_mode": "postpaid",
    }
    assert mark(transaction, day, "absent_justified")
    with transaction() as session:
        billable_days.on_booking_event(session, "booking_confirmed", {**day, "event_id": "e2"}, NOW)
        row = session.get(BillableDay, "b1")
        assert (row.state, row.attendance) == ("booked", "absent_justified")


def test_run_issues_one_invoice_per_family_with_gapless_numbers_and_events(transaction):
    tariff(transaction, "a1", 1250)
    tariff(transaction, "a2", 300, basis="attended")
    booked(transaction, "f1", "c1", "a1", march(3))
    booked(transaction, "f1", "c2", "a1", march(2))
    for day in booked(transaction, "f2", "c3", "a2", march(4)):
        mark(transaction, day, "present")
    booked(transaction, "f3", "c4", "a2", march(2))  # attended basis, nobody marked: nothing due
    booked(transaction, "f4", "c5", "free", march(2))  # no tariff: skipped
    profiles = {"f1": {"quotient_familial": 400, "name": "Martin", "children": {"c1": "Léa", "c2": "Hugo"}}}
    answer = run(transaction, profiles, commune_name="Rennes")
    assert answer["invoices_issued"] == 2 and answer["credit_notes_issued"] == 0 and answer["created"]
    assert answer["total_cents"] == 5 * 1250 + 4 * 300
    assert answer["skipped_activities"] == [{"activity_id": "free", "activity_name": "Cantine"}]
    first, second = invoices(transaction)
    assert (first.number, second.number) == ("2026-000001", "2026-000002")
    assert (first.family_id, first.total_cents, first.status, first.paid_cents) == ("f1", 6250, "issued", 0)
    assert (first.family_name, first.commune_name, first.due_date) == (
        "Martin",
        "Rennes",
        dt.date(2026, 5, 1),
    )
    with transaction() as session:
        lines = session.scalars(
            select(InvoiceLine).where(InvoiceLine.invoice_id == first.id).order_by(InvoiceLine.position)
        ).all()
        assert [(ln.child_first_name, ln.quantity, ln.amount_cents) for ln in lines] == [
            ("Hugo", 2, 2500),
            ("Léa", 3, 3750),
        ]
        assert ledger.balance(session, COMMUNE, "f1") == -6250
        issued = [e.payload for e in session.scalars(select(OutboxEvent)).all()]
        assert sorted(p["number"] for p in issued) == ["2026-000001", "2026-000002"]
        assert issued[0]["amount_due_cents"] == issued[0]["total_cents"] and issued[0]["kind"] == "invoice"
        assert session.get(InvoiceSequence, (COMMUNE, 2026)).next_number == 3

    again = run(transaction, profiles)
    assert (again["invoices_issued"], again["credit_notes_issued"], again["created"]) == (0, 0, False)
    assert len(invoices(transaction)) == 2


def test_late_correction_gives_a_credit_note_and_leaves_the_original_unchanged(transaction):
    tariff(transaction, "a1", 1250)
    days = booked(transaction, "f1", "c1", "a1", march(4))
    run(transaction)
    [original] = invoices(transaction)
    mark(transaction, days[0], "absent_justified")
    answer = run(transaction)
    assert (answer["invoices_issued"], answer["credit_notes_issued"], answer["total_cents"]) == (0, 1, -1250)
    first, note = invoices(transaction)
    assert (first.id, first.total_cents, first.status) == (original.id, 5000, "issued")
    assert (note.kind, note.number, note.total_cents, note.corrects_id) == (
        "credit_note",
        "2026-000002",
        1250,
        original.id,
    )
    booked(transaction, "f1", "c1", "a1", march(2, start=20))
    answer = run(transaction)
    assert (answer["invoices_issued"], answer["credit_notes_issued"]) == (1, 0)
    corrective = invoices(transaction)[-1]
    assert (corrective.kind, corrective.total_cents, corrective.corrects_id) == ("invoice", 2500, original.id)
    # the family still owes the original invoice: the credit note is no credit to apply
    assert (corrective.credit_applied_cents, corrective.paid_cents, corrective.status) == (0, 0, "issued")
    with transaction() as session:
        assert ledger.balance(session, COMMUNE, "f1") == -5000 + 1250 - 2500
    assert run(transaction)["created"] is False


def test_existing_credit_is_applied_partially_or_totally(transaction):
    tariff(transaction, "a1", 1000)
    booked(transaction, "rich", "c1", "a1", march(3))
    booked(transaction, "some", "c2", "a1", march(3))
    with transaction() as session:
        ledger.append(session, COMMUNE, "rich", "cancellation", 5000, "avoir", NOW)
        ledger.append(session, COMMUNE, "some", "cancellation", 1200, "avoir", NOW)
    run(transaction)
    rich, some = sorted(invoices(transaction), key=lambda i: i.family_id)
    assert (rich.credit_applied_cents, rich.paid_cents, rich.status) == (3000, 3000, "paid")
    assert (some.credit_applied_cents, some.paid_cents, some.status) == (1200, 1200, "partially_paid")
    with transaction() as session:
        assert ledger.balance(session, COMMUNE, "rich") == 2000
        assert ledger.balance(session, COMMUNE, "some") == -1800


def test_a_run_interrupted_after_its_first_chunk_then_run_again_has_no_duplicate_nor_gap(transaction):
    tariff(transaction, "a1", 700)
    for n in range(5):
        booked(transaction, f"f{n}", f"c{n}", "a1", march(2))

    def crash(index):
        raise RuntimeError("killed")

    with pytest.raises(RuntimeError):
        run(transaction, chunk_size=2, after_chunk=crash)
    assert [i.number for i in invoices(transaction)] == ["2026-000001", "2026-000002"]
    answer = run(transaction, chunk_size=2)
    assert answer["invoices_issued"] == 3
    found = invoices(transaction)
    assert [i.number for i in found] == [f"2026-{n:06d}" for n in range(1, 6)]
    assert sorted(i.family_id for i in found) == [f"f{n}" for n in range(5)]
    with transaction() as session:
        assert session.scalar(select(func.count()).select_from(LedgerEntry)) == 5
        assert session.scalar(select(func.count()).select_from(OutboxEvent)) == 5


def test_the_timer_runs_the_previous_month_on_its_day_from_its_hour_once(transaction):
    day = dt.datetime(2026, 4, 1, 3, 59, tzinfo=dt.UTC)  # 5:59 in Paris (summer time)
    assert invoicing.scheduled_month(day, 1, 6) is None
    assert invoicing.scheduled_month(day + dt.timedelta(minutes=1), 1, 6) == "2026-03"
    assert invoicing.scheduled_month(dt.datetime(2026, 1, 1, 7, tzinfo=dt.UTC), 1, 6) == "2025-12"
    assert invoicing.scheduled_month(dt.datetime(2026, 4, 2, 7, tzinfo=dt.UTC), 1, 6) is None
    tariff(transaction, "a1", 500)
    booked(transaction, "f1", "c1", "a1", march(1))
    with transaction() as session:
        assert invoicing.communes_to_run(session, "2026-03") == [COMMUNE]
        assert invoicing.communes_to_run(session, "2026-02") == []
    run(transaction, started_by="agent-1")  # an agent's run does not count as the timer's
    with transaction() as session:
        assert invoicing.communes_to_run(session, "2026-03") == [COMMUNE]
    run(transaction)
    with transaction() as session:
        assert invoicing.communes_to_run(session, "2026-03") == []


def test_export_amounts_use_a_decimal_comma():
    from services.billing.exports import euros

    assert [euros(c) for c in (0, 5, 1250, 123456, -250)] == ["0,00", "0,05", "12,50", "1234,56", "-2,50"]

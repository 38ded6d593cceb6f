"""Month-end invoicing's pure rules: what a day counts as (booked vs attended, justified absences,
cancelled days), lines by quotient band, corrections against what was issued, credits, statuses,
numbers and months."""

import datetime as dt

import pytest

from services.billing import invoice_rules as rules
from services.billing.invoice_rules import DayGroup
from services.billing.pricing import TariffRule, parse_tariff
from services.common.errors import ValidationFailed

FLAT = TariffRule(unit_price_cents=1250, bands=None)
ATTENDED = TariffRule(unit_price_cents=800, bands=None, invoice_basis="attended")
BANDED = TariffRule(unit_price_cents=None, bands=((500, 150), (1000, 300), (None, 450)))


def day(state="booked", attendance=None, child="c1", activity="a1", count=1):
    return DayGroup(child, activity, state, attendance, count)


@pytest.mark.parametrize(
    ("state", "attendance", "booked", "attended"),
    [
        ("booked", None, True, False),
        ("booked", "present", True, True),
        ("booked", "absent", True, False),
        ("booked", "absent_justified", False, False),
        ("cancelled", None, False, False),
        ("cancelled", "present", False, False),
    ],
)
def test_what_a_day_counts_as(state, attendance, booked, attended):
    assert rules.counts(state, attendance, "booked") is booked
    assert rules.counts(state, attendance, "attended") is attended


def test_booked_basis_bills_booked_days_but_not_justified_absences_nor_cancelled_days():
    days = [day(), day(attendance="present"), day(attendance="absent"), day(attendance="absent_justified")]
    days += [day(state="cancelled"), day(count=3)]
    should, skipped = rules.due(days, {"a1": FLAT}, None)
    assert should == {("c1", "a1", 1250): 6}
    assert skipped == frozenset()


def test_attended_basis_bills_present_days_only():
    days = [day(attendance="present", count=4), day(attendance="absent"), day(attendance="absent_justified")]
    days += [day(), day(state="cancelled", attendance="present")]
    should, _ = rules.due(days, {"a1": ATTENDED}, None)
    assert should == {("c1", "a1", 800): 4}


def test_lines_per_child_and_activity_at_the_family_quotient_price():
    days = [day(child="c1", count=3), day(child="c2", count=2), day(child="c2", activity="a2", count=5)]
    tariffs = {"a1": BANDED, "a2": FLAT}
    assert rules.due(days, tariffs, 700)[0] == {
        ("c1", "a1", 300): 3,
        ("c2", "a1", 300): 2,
        ("c2", "a2", 1250): 5,
    }
    assert rules.due(days, tariffs, 400)[0][("c1", "a1", 150)] == 3
    assert rules.due(days, tariffs, None)[0][("c1", "a1", 450)] == 3  # unknown quotient: highest band


def test_an_activity_without_tariff_is_skipped_and_reported():
    should, skipped = rules.due([day(activity="free", count=2), day()], {"a1": FLAT}, None)
    assert should == {("c1", "a1", 1250): 1}
    assert skipped == frozenset({"free"})


def test_first_invoice_has_exact_amounts_and_sum():
    plan = rules.plan(
        [day(count=19), day(child="c2", activity="a2", count=7)],
        {"a1": FLAT, "a2": TariffRule(unit_price_cents=333, bands=None)},
        None,
        {},
        {"c1": "Léa", "c2": "Hugo"},
        {"a1": "Cantine", "a2": "Garderie"},
    )
    assert plan.credit_note == ()
    assert [(ln.child_first_name, ln.activity_name, ln.quantity, ln.amount_cents) for ln in plan.invoice] == [
        ("Hugo", "Garderie", 7, 2331),
        ("Léa", "Cantine", 19, 23750),
    ]
    assert rules.total(plan.invoice) == 26081


def test_nothing_twice_when_nothing_changed():
    should, _ = rules.due([day(count=5)], {"a1": FLAT}, None)
    plan = rules.plan([day(count=5)], {"a1": FLAT}, None, should)
    assert plan.invoice == () and plan.credit_note == ()


def test_a_late_justified_absence_gives_a_credit_note_of_one_day():
    issued = {("c1", "a1", 1250): 5}
    plan = rules.plan([day(count=4), day(attendance="absent_justified")], {"a1": FLAT}, None, issued)
    assert plan.invoice == ()
    assert [(ln.quantity, ln.amount_cents) for ln in plan.credit_note] == [(1, 1250)]


def test_a_late_presence_under_attended_gives_a_corrective_invoice():
    issued = {("c1", "a1", 800): 2}
    plan = rules.plan([day(attendance="present", count=3)], {"a1": ATTENDED}, None, issued)
    assert plan.credit_note == ()
    assert [(ln.quantity, ln.amount_cents) for ln in plan.invoice] == [(1, 800)]


def test_a_price_change_credits_the_old_price_and_invoices_the_new_one():
    issued = {("c1", "a1", 300): 4}
    plan = rules.plan([day(count=4)], {"a1": BANDED}, 400, issued)
    assert [(ln.unit_price_cents, ln.quantity) for ln in plan.credit_note] == [(300, 4)]
    assert [(ln.unit_price_cents, ln.quantity) for ln in plan.invoice] == [(150, 4)]


def test_every_day_cancelled_after_issue_is_credited_in_full():
    plan = rules.plan([day(state="cancelled", count=3)], {"a1": FLAT}, None, {("c1", "a1", 1250): 3})
    assert rules.total(plan.credit_note) == 3750 and plan.invoice == ()


@pytest.mark.parametrize(
    ("credit", "total", "applied"),
    [(0, 5000, 0), (1200, 5000, 1200), (5000, 5000, 5000), (9000, 5000, 5000), (-300, 5000, 0), (100, 0, 0)],
)
def test_credit_applied_partially_or_totally_never_more_than_the_total(credit, total, applied):
    assert rules.credit_applied(credit, total) == applied


@pytest.mark.parametrize(
    ("total", "paid", "status"),
    [(5000, 0, "issued"), (5000, 1, "partially_paid"), (5000, 5000, "paid"), (0, 0, "paid")],
)
def test_status(total, paid, status):
    assert rules.status(total, paid) == status


def test_numbers_months_and_due_dates():
    assert rules.number(2026, 42) == "2026-000042"
    assert rules.month_bounds("2026-12") == (dt.date(2026, 12, 1), dt.date(2027, 1, 1))
    assert rules.month_bounds("2026-02") == (dt.date(2026, 2, 1), dt.date(2026, 3, 1))
    assert rules.previous_month(dt.date(2027, 1, 1)) == "2026-12"
    assert rules.due_date(dt.date(2026, 12, 15), 30) == dt.date(2027, 1, 14)
    for wrong in ("2026-13", "2026-1", "26-01", None, 202601, "2026-00"):
        with pytest.raises(ValidationFailed) as refused:
            rules.month_bounds(wrong)
        assert "month" in refused.value.details["fields"]


def test_tariff_invoice_basis_defaults_to_booked_and_is_checked():
    assert parse_tariff({"unit_price_cents": 100}).invoice_basis == "booked"
    assert parse_tariff({"unit_price_cents": 100, "invoice_basis": "attended"}).invoice_basis == "attended"
    with pytest.raises(ValidationFailed) as refused:
        parse_tariff({"unit_price_cents": 100, "invoice_basis": "present"})
    assert "invoice_basis" in refused.value.details["fields"]

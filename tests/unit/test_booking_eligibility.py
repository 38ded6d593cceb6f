"""Who may attend: age on the day and school class."""

import datetime as dt

import pytest

from services.booking.eligibility import age_on, is_eligible

BORN = dt.date(2020, 6, 15)


def test_age_counts_completed_years():
    assert age_on(BORN, dt.date(2026, 6, 14)) == 5
    assert age_on(BORN, dt.date(2026, 6, 15)) == 6  # the birthday itself
    assert age_on(BORN, dt.date(2026, 12, 31)) == 6
    assert age_on(BORN, BORN) == 0
    assert age_on(BORN, dt.date(2020, 6, 14)) == -1  # before the birth


def test_leap_day_birthdays_count_on_the_first_of_march():
    leap = dt.date(2020, 2, 29)
    assert age_on(leap, dt.date(2027, 2, 28)) == 6
    assert age_on(leap, dt.date(2027, 3, 1)) == 7
    assert age_on(leap, dt.date(2028, 2, 28)) == 7
    assert age_on(leap, dt.date(2028, 2, 29)) == 8


@pytest.mark.parametrize(
    "day, min_age, max_age, eligible",
    [
        (dt.date(2026, 6, 14), 6, None, False),
        (dt.date(2026, 6, 15), 6, None, True),  # bounds are inclusive
        (dt.date(2026, 6, 15), None, 6, True),
        (dt.date(2027, 6, 14), None, 6, True),  # still 6 the day before turning 7
        (dt.date(2027, 6, 15), None, 6, False),
        (dt.date(2026, 9, 1), 3, 11, True),
        (dt.date(2026, 9, 1), 7, 11, False),
        (dt.date(2026, 9, 1), None, None, True),
        (dt.date(2026, 9, 1), 8, 3, False),  # an empty range
    ],
)
def test_age_range(day, min_age, max_age, eligible):
    assert is_eligible(BORN, None, day, min_age=min_age, max_age=max_age, classes=None) is eligible


def test_unknown_birth_date_fails_an_age_bound_only():
    day = dt.date(2026, 9, 1)
    assert not is_eligible(None, "CP", day, min_age=3, max_age=None, classes=None)
    assert not is_eligible(None, "CP", day, min_age=None, max_age=11, classes=None)
    assert is_eligible(None, "CP", day, min_age=None, max_age=None, classes=frozenset({"CP"}))


@pytest.mark.parametrize(
    "class_name, eligible",
    [
        ("CP", True),
        ("cp", True),
        ("  Ce1 ", True),
        ("CE2", False),
        ("", False),
        ("   ", False),
        (None, False),
    ],
)
def test_classes_compare_without_case_or_surrounding_spaces(class_name, eligible):
    classes = frozenset({"CP", " ce1"})
    day = dt.date(2026, 9, 1)
    assert is_eligible(BORN, class_name, day, min_age=None, max_age=None, classes=classes) is eligible


def test_no_class_restriction():
    day = dt.date(2026, 9, 1)
    assert is_eligible(BORN, None, day, min_age=None, max_age=None, classes=None)
    assert is_eligible(BORN, None, day, min_age=None, max_age=None, classes=frozenset())


def test_age_and_class_both_apply():
    day = dt.date(2026, 9, 1)
    classes = frozenset({"CP"})
    assert is_eligible(BORN, "CP", day, min_age=6, max_age=7, classes=classes)
    assert not is_eligible(BORN, "CE1", day, min_age=6, max_age=7, classes=classes)
    assert not is_eligible(BORN, "CP", day, min_age=7, max_age=8, classes=classes)

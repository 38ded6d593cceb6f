"""Activity periods: weekday lists, dates and the days a period covers."""

import datetime as dt

import pytest

from services.booking.periods import WEEKDAYS, PeriodError, expand_period, parse_date, parse_weekdays


def test_weekday_names():
    assert WEEKDAYS[0] == "monday" and WEEKDAYS[6] == "sunday" and len(WEEKDAYS) == 7
    assert parse_weekdays(["monday", "tuesday", "thursday", "friday"]) == {0, 1, 3, 4}
    assert parse_weekdays(["wednesday"]) == {2}
    assert parse_weekdays(("sunday", "saturday")) == {5, 6}


@pytest.mark.parametrize(
    "names, named",
    [
        ([], "liste non vide"),
        (None, "liste non vide"),
        ("monday", "liste non vide"),
        ({"monday": 1}, "liste non vide"),
        (["monday", "monday"], "en double"),
        (["Monday"], "Monday"),
        (["lundi"], "lundi"),
        ([0], "0"),
    ],
)
def test_weekday_refusals(names, named):
    with pytest.raises(PeriodError) as refused:
        parse_weekdays(names)
    assert named in str(refused.value)


def test_expand_period_keeps_the_requested_weekdays_both_ends_included():
    wednesdays = expand_period(dt.date(2026, 9, 2), dt.date(2026, 9, 30), frozenset({2}))
    assert wednesdays == [dt.date(2026, 9, d) for d in (2, 9, 16, 23, 30)]
    school_week = expand_period(dt.date(2026, 9, 1), dt.date(2026, 9, 7), frozenset({0, 1, 3, 4}))
    assert school_week == [dt.date(2026, 9, 1), dt.date(2026, 9, 3), dt.date(2026, 9, 4), dt.date(2026, 9, 7)]


def test_expand_period_of_one_day():
    assert expand_period(dt.date(2026, 9, 2), dt.date(2026, 9, 2), frozenset({2})) == [dt.date(2026, 9, 2)]
    assert expand_period(dt.date(2026, 9, 2), dt.date(2026, 9, 2), frozenset({3})) == []


def test_expand_period_refuses_backwards_and_too_long_periods():
    with pytest.raises(PeriodError, match="précéder"):
        expand_period(dt.date(2026, 9, 2), dt.date(2026, 9, 1), frozenset({2}))
    leap_year = expand_period(dt.date(2028, 1, 1), dt.date(2028, 12, 31), frozenset(range(7)))
    assert len(leap_year) == 366
    with pytest.raises(PeriodError, match="366"):
        expand_period(dt.date(2026, 1, 1), dt.date(2027, 1, 2), frozenset(range(7)))
    assert (
        len(expand_period(dt.date(2026, 1, 1), dt.date(2026, 1, 10), frozenset(range(7)), max_days=10)) == 10
    )
    with pytest.raises(PeriodError, match="10 jours"):
        expand_period(dt.date(2026, 1, 1), dt.date(2026, 1, 11), frozenset(range(7)), max_days=10)


def test_parse_date():
    assert parse_date("2026-09-02", "start") == dt.date(2026, 9, 2)
    assert parse_date("2028-02-29", "start") == dt.date(2028, 2, 29)


@pytest.mark.parametrize(
    "value",
    [
        None,
        20260902,
        dt.date(2026, 9, 2),
        "",
        "20260902",
        "2026-W36-3",
        "2026-9-2",
        "02/09/2026",
        "2026-09-02T00:00",
        " 2026-09-02",
        "2026-09-02\n",
        "2026-02-30",
        "2026-13-01",
        "２０２６-09-02",
    ],
)
def test_parse_date_refusals_name_the_field(value):
    with pytest.raises(PeriodError) as refused:
        parse_date(value, "end_date")
    assert "end_date" in str(refused.value)

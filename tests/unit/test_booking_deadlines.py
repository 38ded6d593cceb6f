"""Booking and cancellation deadlines: every rule form, the edge second, daylight-saving changes,
working days, and the rules' API shape."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest

from services.booking.deadlines import (
    DaysBefore,
    Never,
    RuleError,
    WeekdayOfPreviousWeek,
    deadline,
    is_before,
    parse_rule,
    rule_to_dict,
)
from services.booking.holidays import working_day_checker

PARIS = ZoneInfo("Europe/Paris")
SECOND = dt.timedelta(seconds=1)
WORKING = working_day_checker()


def utc(*args):
    return dt.datetime(*args, tzinfo=dt.UTC)


def not_asked(day):
    raise AssertionError(f"a calendar-day rule asked whether {day} is a working day")


@pytest.mark.parametrize(
    "rule, day, expected",
    [
        (DaysBefore(2, dt.time(10, 0)), dt.date(2026, 3, 12), utc(2026, 3, 10, 9, 0)),
        (DaysBefore(0, dt.time(8, 30)), dt.date(2026, 6, 15), utc(2026, 6, 15, 6, 30)),
        (DaysBefore(2, dt.time(10, 0), working_days=True), dt.date(2026, 3, 16), utc(2026, 3, 12, 9, 0)),
        (WeekdayOfPreviousWeek(3, dt.time(12, 0)), dt.date(2026, 3, 18), utc(2026, 3, 12, 11, 0)),
    ],
    ids=["days_before", "same_day", "working_days", "weekday_of_previous_week"],
)
def test_deadline_edge_second(rule, day, expected):
    limit = deadline(rule, day, PARIS, WORKING)
    assert limit == expected
    assert limit.tzinfo is dt.UTC
    assert is_before(expected - SECOND, limit)
    assert not is_before(expected, limit)  # at the deadline itself it is already too late
    assert not is_before(expected + SECOND, limit)


def test_never_has_no_deadline_and_is_never_in_time():
    assert deadline(Never(), dt.date(2026, 3, 12), PARIS, not_asked) is None
    assert not is_before(utc(1970, 1, 1), None)
    assert not is_before(utc(2026, 3, 12), None)


def test_calendar_days_do_not_ask_about_working_days():
    assert deadline(DaysBefore(3, dt.time(9, 0)), dt.date(2026, 5, 18), PARIS, not_asked) == utc(
        2026, 5, 15, 7, 0
    )
    assert deadline(WeekdayOfPreviousWeek(0, dt.time(9, 0)), dt.date(2026, 5, 18), PARIS, not_asked)


# Daylight saving: Paris goes to summer time on Sunday 29 March 2026 (02:00 → 03:00) and back on
# Sunday 25 October 2026 (03:00 → 02:00).


@pytest.mark.parametrize(
    "day, expected",
    [
        (dt.date(2026, 3, 29), utc(2026, 3, 28, 9, 0)),  # Saturday 10:00 winter time (+01:00)
        (dt.date(2026, 3, 30), utc(2026, 3, 29, 8, 0)),  # Sunday 10:00, already summer time (+02:00)
        (dt.date(2026, 10, 25), utc(2026, 10, 24, 8, 0)),  # Saturday 10:00 summer time
        (dt.date(2026, 10, 26), utc(2026, 10, 25, 9, 0)),  # Sunday 10:00, back to winter time
    ],
)
def test_day_before_across_daylight_saving_changes(day, expected):
    limit = deadline(DaysBefore(1, dt.time(10, 0)), day, PARIS, WORKING)
    assert limit == expected
    assert limit.astimezone(PARIS).time() == dt.time(10, 0)
    assert is_before(expected - SECOND, limit)
    assert not is_before(expected, limit)


def test_skipped_local_time_resolves_to_the_end_of_the_gap():
    """02:30 does not exist on 29 March 2026 in Paris: the deadline is 03:00 summer time."""
    limit = deadline(DaysBefore(0, dt.time(2, 30)), dt.date(2026, 3, 29), PARIS, WORKING)
    assert limit == utc(2026, 3, 29, 1, 0)
    assert limit.astimezone(PARIS).replace(tzinfo=None) == dt.datetime(2026, 3, 29, 3, 0)
    assert is_before(utc(2026, 3, 29, 0, 59, 59), limit)  # 01:59:59 winter time
    assert not is_before(utc(2026, 3, 29, 1, 0), limit)
    # Monday's "1 day before at 02:30" lands in the same gap.
    assert deadline(DaysBefore(1, dt.time(2, 30)), dt.date(2026, 3, 30), PARIS, WORKING) == limit


def test_repeated_local_time_resolves_to_its_first_occurrence():
    """02:30 happens twice on 25 October 2026 in Paris: first in summer time (00:30 UTC)."""
    limit = deadline(DaysBefore(0, dt.time(2, 30)), dt.date(2026, 10, 25), PARIS, WORKING)
    assert limit == utc(2026, 10, 25, 0, 30)
    assert not is_before(utc(2026, 10, 25, 1, 0), limit)  # 02:00 winter time, after the first 02:30


@pytest.mark.parametrize(
    "zone, expected",
    [
        ("America/Cayenne", utc(2026, 3, 11, 13, 0)),  # -03:00
        ("Pacific/Noumea", utc(2026, 3, 10, 23, 0)),  # +11:00, the previous UTC day
        ("Indian/Reunion", utc(2026, 3, 11, 6, 0)),  # +04:00
    ],
)
def test_overseas_time_zones(zone, expected):
    assert deadline(DaysBefore(1, dt.time(10, 0)), dt.date(2026, 3, 12), ZoneInfo(zone), WORKING) == expected


# Working days.


def test_working_days_skip_the_weekend():
    rule = DaysBefore(1, dt.time(18, 0), working_days=True)
    assert deadline(rule, dt.date(2026, 3, 9), PARIS, WORKING) == utc(2026, 3, 6, 17, 0)  # Friday
    assert deadline(rule, dt.date(2026, 3, 7), PARIS, WORKING) == utc(2026, 3, 6, 17, 0)  # from Saturday too
    calendar = DaysBefore(1, dt.time(18, 0))
    assert deadline(calendar, dt.date(2026, 3, 9), PARIS, WORKING) == utc(2026, 3, 8, 17, 0)  # Sunday


def test_working_days_do_not_count_the_day_itself():
    rule = DaysBefore(1, dt.time(10, 0), working_days=True)
    assert deadline(rule, dt.date(2026, 3, 11), PARIS, WORKING) == utc(2026, 3, 10, 9, 0)
    same_day = DaysBefore(0, dt.time(10, 0), working_days=True)
    assert deadline(same_day, dt.date(2026, 5, 14), PARIS, WORKING) == utc(
        2026, 5, 14, 8, 0
    )  # even Ascension


def test_working_days_skip_ascension():
    """Ascension 2026 is Thursday 14 May: two working days before Monday 18 May is Wednesday 13."""
    rule = DaysBefore(2, dt.time(10, 0), working_days=True)
    assert deadline(rule, dt.date(2026, 5, 18), PARIS, WORKING) == utc(2026, 5, 13, 8, 0)


def test_working_days_skip_whit_monday():
    """Whit Monday 2026 is 25 May: one working day before Tuesday 26 is Friday 22."""
    rule = DaysBefore(1, dt.time(10, 0), working_days=True)
    assert deadline(rule, dt.date(2026, 5, 26), PARIS, WORKING) == utc(2026, 5, 22, 8, 0)
    calendar = DaysBefore(1, dt.time(10, 0))
    assert deadline(calendar, dt.date(2026, 5, 26), PARIS, WORKING) == utc(2026, 5, 25, 8, 0)


def test_working_days_skip_closures():
    """The commune closes Friday 15 May 2026 (the bridge after Ascension)."""
    rule = DaysBefore(2, dt.time(10, 0), working_days=True)
    with_closure = working_day_checker([dt.date(2026, 5, 15)])
    assert deadline(rule, dt.date(2026, 5, 18), PARIS, with_closure) == utc(2026, 5, 12, 8, 0)


def test_working_days_give_up_when_nothing_is_open():
    rule = DaysBefore(1, dt.time(10, 0), working_days=True)
    with pytest.raises(RuleError):
        deadline(rule, dt.date(2026, 5, 18), PARIS, lambda day: False)


# Weekday of the previous week.


@pytest.mark.parametrize(
    "weekday, day, expected_local",
    [
        (3, dt.date(2026, 3, 16), dt.date(2026, 3, 12)),  # Monday → Thursday of the week before
        (3, dt.date(2026, 3, 22), dt.date(2026, 3, 12)),  # Sunday of the same week → same Thursday
        (3, dt.date(2026, 3, 23), dt.date(2026, 3, 19)),  # next Monday → next Thursday
        (6, dt.date(2026, 3, 16), dt.date(2026, 3, 15)),  # Sunday before a Monday: the day before
        (0, dt.date(2026, 3, 22), dt.date(2026, 3, 9)),  # Monday before a Sunday: 13 days before
    ],
)
def test_weekday_of_previous_week(weekday, day, expected_local):
    limit = deadline(WeekdayOfPreviousWeek(weekday, dt.time(12, 0)), day, PARIS, not_asked)
    assert limit == dt.datetime.combine(expected_local, dt.time(12, 0), PARIS).astimezone(dt.UTC)


def test_weekday_of_previous_week_across_a_year_boundary():
    limit = deadline(WeekdayOfPreviousWeek(4, dt.time(12, 0)), dt.date(2026, 1, 1), PARIS, not_asked)
    assert limit == utc(2025, 12, 26, 11, 0)


# The API shape.


@pytest.mark.parametrize(
    "data, allow_never, rule",
    [
        ({"days_before": 2, "at": "10:00", "working_days": True}, False, DaysBefore(2, dt.time(10, 0), True)),
        ({"days_before": 0, "at": "00:00", "working_days": False}, False, DaysBefore(0, dt.time(0, 0))),
        ({"days_before": 60, "at": "23:59", "working_days": False}, True, DaysBefore(60, dt.time(23, 59))),
        (
            {"weekday_of_previous_week": "thursday", "at": "12:00"},
            False,
            WeekdayOfPreviousWeek(3, dt.time(12)),
        ),
        (
            {"weekday_of_previous_week": "sunday", "at": "07:05"},
            True,
            WeekdayOfPreviousWeek(6, dt.time(7, 5)),
        ),
        ({"never": True}, True, Never()),
    ],
)
def test_rule_round_trip(data, allow_never, rule):
    assert parse_rule(data, allow_never=allow_never) == rule
    assert rule_to_dict(rule) == data
    assert parse_rule(rule_to_dict(rule), allow_never=True) == rule


def test_working_days_default_to_calendar_days():
    assert parse_rule({"days_before": 1, "at": "10:00"}, allow_never=False) == DaysBefore(1, dt.time(10, 0))


@pytest.mark.parametrize(
    "data, allow_never, named",
    [
        (None, True, "objet"),
        ([], True, "objet"),
        ("never", True, "objet"),
        ({}, True, "never"),
        ({}, False, "days_before"),
        ({"days_before": 2}, False, "« at »"),
        ({"days_before": 61, "at": "10:00"}, False, "days_before"),
        ({"days_before": -1, "at": "10:00"}, False, "days_before"),
        ({"days_before": True, "at": "10:00"}, False, "days_before"),
        ({"days_before": 2.0, "at": "10:00"}, False, "days_before"),
        ({"days_before": "2", "at": "10:00"}, False, "days_before"),
        ({"days_before": None, "at": "10:00"}, False, "days_before"),
        ({"days_before": 2, "at": "24:00"}, False, "« at »"),
        ({"days_before": 2, "at": "10:60"}, False, "« at »"),
        ({"days_before": 2, "at": "9:00"}, False, "« at »"),
        ({"days_before": 2, "at": "10h00"}, False, "« at »"),
        ({"days_before": 2, "at": "10:00:00"}, False, "« at »"),
        ({"days_before": 2, "at": " 10:00"}, False, "« at »"),
        ({"days_before": 2, "at": "10:00\n"}, False, "« at »"),
        ({"days_before": 2, "at": "１０:００"}, False, "« at »"),
        ({"days_before": 2, "at": 600}, False, "« at »"),
        ({"days_before": 2, "at": "10:00", "working_days": "yes"}, False, "working_days"),
        ({"days_before": 2, "at": "10:00", "working_days": 1}, False, "working_days"),
        ({"days_before": 2, "at": "10:00", "hour": 3}, False, "hour"),
        ({"weekday_of_previous_week": "Thursday", "at": "12:00"}, False, "weekday_of_previous_week"),
        ({"weekday_of_previous_week": "jeudi", "at": "12:00"}, False, "weekday_of_previous_week"),
        ({"weekday_of_previous_week": 3, "at": "12:00"}, False, "weekday_of_previous_week"),
        ({"weekday_of_previous_week": "thursday"}, False, "« at »"),
        (
            {"weekday_of_previous_week": "thursday", "at": "12:00", "working_days": True},
            False,
            "working_days",
        ),
        ({"days_before": 1, "weekday_of_previous_week": "monday", "at": "10:00"}, False, "combinent"),
        ({"days_before": 1, "at": "10:00", "never": True}, True, "combinent"),
        ({"never": True}, False, "annulation"),
        ({"never": False}, True, "never"),
        ({"never": 1}, True, "never"),
        ({"never": True, "at": "10:00"}, True, "« at »"),
    ],
)
def test_parse_rule_refusals_name_the_problem(data, allow_never, named):
    with pytest.raises(RuleError) as refused:
        parse_rule(data, allow_never=allow_never)
    message = str(refused.value)
    assert message.startswith("Règle de délai invalide")
    assert named in message


@pytest.mark.parametrize(
    "build",
    [
        lambda: DaysBefore(-1, dt.time(10, 0)),
        lambda: DaysBefore(True, dt.time(10, 0)),
        lambda: DaysBefore(1, "10:00"),
        lambda: DaysBefore(1, dt.time(10, 0, tzinfo=dt.UTC)),
        lambda: WeekdayOfPreviousWeek(7, dt.time(10, 0)),
        lambda: WeekdayOfPreviousWeek(-1, dt.time(10, 0)),
    ],
)
def test_rules_refuse_impossible_values(build):
    with pytest.raises(RuleError):
        build()

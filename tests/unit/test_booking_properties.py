"""Properties of the booking rules over random rules, days and the communes' time zones (mainland and
overseas). No example database: a failure prints its falsifying example to reproduce with."""

import datetime as dt
from zoneinfo import ZoneInfo

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.booking.day_state import BOOKING_STATUSES, STATES, day_state
from services.booking.deadlines import (
    DaysBefore,
    Never,
    WeekdayOfPreviousWeek,
    deadline,
    is_before,
    parse_rule,
    rule_to_dict,
)
from services.booking.eligibility import age_on
from services.booking.holidays import working_day_checker
from services.booking.periods import PeriodError, expand_period

PROPERTIES = settings(max_examples=150, deadline=None, database=None)

ZONES = st.sampled_from(
    [ZoneInfo(name) for name in ("Europe/Paris", "America/Cayenne", "Pacific/Noumea", "Indian/Reunion")]
)
ANY_DAY = st.dates(min_value=dt.date(1990, 1, 1), max_value=dt.date(2060, 12, 31))


@st.composite
def near_a_clock_change(draw):
    """Days around the last Sundays of March and October, where Paris changes its clocks."""
    year = draw(st.integers(1990, 2060))
    month = draw(st.sampled_from([3, 10]))
    last = dt.date(year, month, 31)
    last_sunday = last - dt.timedelta(days=(last.weekday() + 1) % 7)
    return last_sunday + dt.timedelta(days=draw(st.integers(-3, 9)))


DAYS = st.one_of(ANY_DAY, near_a_clock_change())
# Early-morning times often, to land in (or next to) the changes' skipped and repeated hours.
TIMES = st.one_of(
    st.builds(dt.time, st.integers(0, 23), st.integers(0, 59)),
    st.builds(dt.time, st.integers(1, 3), st.integers(0, 59)),
)
COUNTS = st.integers(0, 60)
CLOSURE_OFFSETS = st.frozensets(st.integers(1, 90), max_size=20)

RULES = st.one_of(
    st.builds(DaysBefore, COUNTS, TIMES, st.booleans()),
    st.builds(WeekdayOfPreviousWeek, st.integers(0, 6), TIMES),
)


def checker(day, closure_offsets):
    return working_day_checker(day - dt.timedelta(days=offset) for offset in closure_offsets)


def local_wall(instant, tz):
    return instant.astimezone(tz).replace(tzinfo=None)


@PROPERTIES
@given(rule=RULES, day=DAYS, tz=ZONES, closures=CLOSURE_OFFSETS)
def test_a_deadline_is_the_first_instant_its_local_time_is_reached(rule, day, tz, closures):
    """Local time `at` on the deadline's date: exactly, or the end of the gap when the clock skips it."""
    is_working_day = checker(day, closures)
    limit = deadline(rule, day, tz, is_working_day)
    assert limit.tzinfo is dt.UTC
    target = dt.datetime.combine(limit.astimezone(tz).date(), rule.at)
    assert local_wall(limit, tz) >= target
    assert local_wall(limit - dt.timedelta(microseconds=1), tz) < target
    assert local_wall(limit, tz) - target <= dt.timedelta(hours=1)  # no gap in these zones is longer


@PROPERTIES
@given(rule=RULES, day=DAYS, tz=ZONES, closures=CLOSURE_OFFSETS)
def test_never_in_time_at_or_after_the_deadline(rule, day, tz, closures):
    limit = deadline(rule, day, tz, checker(day, closures))
    assert is_before(limit - dt.timedelta(microseconds=1), limit)
    assert not is_before(limit, limit)
    assert not is_before(limit + dt.timedelta(seconds=1), limit)
    assert not is_before(limit + dt.timedelta(days=400), limit)
    assert not is_before(limit, None)


@PROPERTIES
@given(days=COUNTS, at=TIMES, working=st.booleans(), day=DAYS, tz=ZONES, closures=CLOSURE_OFFSETS)
def test_days_before_is_never_after_the_day_at_that_time(days, at, working, day, tz, closures):
    is_working_day = checker(day, closures)
    same_day = deadline(DaysBefore(0, at), day, tz, is_working_day)
    assert deadline(DaysBefore(0, at, working), day, tz, is_working_day) == same_day
    assert deadline(DaysBefore(days, at, working), day, tz, is_working_day) <= same_day


@PROPERTIES
@given(counts=st.lists(COUNTS, min_size=2, max_size=2, unique=True), at=TIMES, working=st.booleans(),
       day=DAYS, tz=ZONES, closures=CLOSURE_OFFSETS)  # fmt: skip
def test_more_days_before_is_strictly_earlier(counts, at, working, day, tz, closures):
    fewer, more = sorted(counts)
    is_working_day = checker(day, closures)
    assert deadline(DaysBefore(more, at, working), day, tz, is_working_day) < deadline(
        DaysBefore(fewer, at, working), day, tz, is_working_day
    )


@PROPERTIES
@given(days=COUNTS, at=TIMES, day=DAYS, tz=ZONES, closures=CLOSURE_OFFSETS)
def test_working_days_come_no_later_than_calendar_days(days, at, day, tz, closures):
    is_working_day = checker(day, closures)
    working = deadline(DaysBefore(days, at, True), day, tz, is_working_day)
    assert working <= deadline(DaysBefore(days, at, False), day, tz, is_working_day)


@PROPERTIES
@given(days=st.integers(1, 60), at=TIMES, day=DAYS, tz=ZONES, closures=CLOSURE_OFFSETS)
def test_working_days_land_on_a_working_day_n_working_days_before(days, at, day, tz, closures):
    is_working_day = checker(day, closures)
    local_date = deadline(DaysBefore(days, at, True), day, tz, is_working_day).astimezone(tz).date()
    assert is_working_day(local_date)
    span = (day - local_date).days
    assert sum(is_working_day(local_date + dt.timedelta(days=i)) for i in range(span)) == days


@PROPERTIES
@given(days=COUNTS, at=TIMES, day=DAYS, tz=ZONES)
def test_calendar_days_land_n_local_days_before(days, at, day, tz):
    limit = deadline(DaysBefore(days, at), day, tz, working_day_checker())
    assert limit.astimezone(tz).date() == day - dt.timedelta(days=days)


@PROPERTIES
@given(weekday=st.integers(0, 6), at=TIMES, day=DAYS, tz=ZONES)
def test_weekday_of_previous_week_lands_in_the_week_before(weekday, at, day, tz):
    local_date = deadline(WeekdayOfPreviousWeek(weekday, at), day, tz, working_day_checker()).astimezone(tz)
    local_date = local_date.date()
    assert local_date.weekday() == weekday
    assert local_date.isocalendar()[:2] == (day - dt.timedelta(days=7)).isocalendar()[:2]
    assert 1 <= (day - local_date).days <= 13


@PROPERTIES
@given(rule=st.one_of(RULES, st.just(Never())))
def test_rules_survive_their_api_shape(rule):
    assert parse_rule(rule_to_dict(rule), allow_never=True) == rule
    if not isinstance(rule, Never):
        assert parse_rule(rule_to_dict(rule), allow_never=False) == rule


@PROPERTIES
@given(start=ANY_DAY, length=st.integers(0, 400), weekdays=st.frozensets(st.integers(0, 6)))
def test_expand_period_yields_the_requested_weekdays_in_bounds_sorted_and_unique(start, length, weekdays):
    end = start + dt.timedelta(days=length)
    if length + 1 > 366:
        with pytest.raises(PeriodError):
            expand_period(start, end, weekdays)
        return
    days = expand_period(start, end, weekdays)
    assert days == sorted(set(days))
    assert all(start <= d <= end and d.weekday() in weekdays for d in days)
    expected = sum(1 for i in range(length + 1) if (start + dt.timedelta(days=i)).weekday() in weekdays)
    assert len(days) == expected


@PROPERTIES
@given(birth=ANY_DAY, day=ANY_DAY)
def test_age_grows_by_one_on_each_birthday_and_never_otherwise(birth, day):
    step = age_on(birth, day + dt.timedelta(days=1)) - age_on(birth, day)
    assert step in (0, 1)
    assert age_on(birth, birth) == 0
    if day >= birth:
        assert (day - birth).days // 366 <= age_on(birth, day) <= (day - birth).days // 365


@PROPERTIES
@given(
    closed=st.booleans(),
    eligible=st.booleans(),
    booking_status=st.one_of(st.none(), st.sampled_from(BOOKING_STATUSES)),
    attendance=st.sampled_from([None, "present", "absent", "absent_justified"]),
    places_left=st.integers(-2, 3),
    offset=st.one_of(st.none(), st.integers(-3, 3)),
)
def test_day_state_is_always_a_known_state(closed, eligible, booking_status, attendance, places_left, offset):
    now = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)
    book_until = None if offset is None else now + dt.timedelta(seconds=offset)
    state = day_state(
        now=now,
        closed=closed,
        eligible=eligible,
        booking_status=booking_status,
        attendance=attendance,
        places_left=places_left,
        book_until=book_until,
    )
    assert state in STATES
    if state == "open":
        assert is_before(now, book_until) and places_left > 0 and eligible and not closed

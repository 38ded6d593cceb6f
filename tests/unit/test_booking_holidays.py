"""French public holidays and the working-day test."""

import datetime as dt

import pytest

from services.booking.holidays import easter_sunday, french_public_holidays, working_day_checker


@pytest.mark.parametrize(
    "year, easter",
    [
        (1693, dt.date(1693, 3, 22)),  # the earliest possible
        (1886, dt.date(1886, 4, 25)),  # the latest possible
        (1943, dt.date(1943, 4, 25)),
        (2000, dt.date(2000, 4, 23)),
        (2008, dt.date(2008, 3, 23)),
        (2011, dt.date(2011, 4, 24)),
        (2024, dt.date(2024, 3, 31)),
        (2025, dt.date(2025, 4, 20)),
        (2026, dt.date(2026, 4, 5)),
        (2027, dt.date(2027, 3, 28)),
        (2038, dt.date(2038, 4, 25)),
        (2285, dt.date(2285, 3, 22)),
    ],
)
def test_easter_sunday(year, easter):
    assert easter_sunday(year) == easter
    assert easter.weekday() == 6
    assert easter + dt.timedelta(days=1) in french_public_holidays(year)  # Easter Monday


def test_the_eleven_holidays_of_2026():
    assert french_public_holidays(2026) == {
        dt.date(2026, 1, 1),
        dt.date(2026, 4, 6),  # Easter Monday
        dt.date(2026, 5, 1),
        dt.date(2026, 5, 8),
        dt.date(2026, 5, 14),  # Ascension
        dt.date(2026, 5, 25),  # Whit Monday
        dt.date(2026, 7, 14),
        dt.date(2026, 8, 15),
        dt.date(2026, 11, 1),
        dt.date(2026, 11, 11),
        dt.date(2026, 12, 25),
    }


def test_holidays_are_cached_and_immutable():
    assert french_public_holidays(2027) is french_public_holidays(2027)
    assert isinstance(french_public_holidays(2027), frozenset)
    assert len(french_public_holidays(2027)) == 11


def test_movable_holidays_follow_easter():
    for year in range(2020, 2040):
        easter = easter_sunday(year)
        holidays = french_public_holidays(year)
        assert easter + dt.timedelta(days=39) in holidays and (easter + dt.timedelta(days=39)).weekday() == 3
        assert easter + dt.timedelta(days=50) in holidays and (easter + dt.timedelta(days=50)).weekday() == 0


def test_working_days():
    is_working_day = working_day_checker()
    assert is_working_day(dt.date(2026, 5, 13))  # Wednesday
    assert not is_working_day(dt.date(2026, 5, 14))  # Ascension
    assert is_working_day(dt.date(2026, 5, 15))  # Friday
    assert not is_working_day(dt.date(2026, 5, 16))  # Saturday
    assert not is_working_day(dt.date(2026, 5, 17))  # Sunday
    assert not is_working_day(dt.date(2026, 5, 25))  # Whit Monday


def test_closed_days_are_not_working_days():
    closures = (day for day in [dt.date(2026, 5, 15), dt.date(2026, 6, 2)])  # read once: a generator is fine
    is_working_day = working_day_checker(closures)
    assert not is_working_day(dt.date(2026, 5, 15))
    assert not is_working_day(dt.date(2026, 6, 2))
    assert not is_working_day(dt.date(2026, 6, 2))
    assert is_working_day(dt.date(2026, 5, 12))
    assert is_working_day(dt.date(2026, 6, 3))

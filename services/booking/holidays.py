"""French public holidays and the working-day test that deadlines counted in working days use.

Only the 11 national holidays are known here; local ones (Good Friday and 26 December in
Alsace-Moselle, the abolition of slavery in the overseas departments) and school holidays, strikes
or other closures come in as the commune's closed days."""

from __future__ import annotations

import datetime as dt
import functools
from collections.abc import Callable, Iterable


def easter_sunday(year: int) -> dt.date:
    """Gregorian Easter Sunday (the anonymous Gregorian algorithm, a.k.a. Meeus/Jones/Butcher)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    leap = (32 + 2 * e + 2 * i - h - k) % 7
    m = (a + 11 * h + 22 * leap) // 451
    month, day = divmod(h + leap - 7 * m + 114, 31)
    return dt.date(year, month, day + 1)


@functools.lru_cache(maxsize=512)
def french_public_holidays(year: int) -> frozenset[dt.date]:
    """The 11 national public holidays of `year` (cached: working-day counts ask for them often)."""
    easter = easter_sunday(year)
    return frozenset(
        {
            dt.date(year, 1, 1),  # Jour de l'an
            easter + dt.timedelta(days=1),  # Lundi de Pâques
            dt.date(year, 5, 1),  # Fête du Travail
            dt.date(year, 5, 8),  # Victoire 1945
            easter + dt.timedelta(days=39),  # Ascension
            easter + dt.timedelta(days=50),  # Lundi de Pentecôte
            dt.date(year, 7, 14),  # Fête nationale
            dt.date(year, 8, 15),  # Assomption
            dt.date(year, 11, 1),  # Toussaint
            dt.date(year, 11, 11),  # Armistice 1918
            dt.date(year, 12, 25),  # Noël
        }
    )


def working_day_checker(closed_days: Iterable[dt.date] = ()) -> Callable[[dt.date], bool]:
    """A test for working days: Monday to Friday, not a public holiday, not one of `closed_days`
    (read once, so a generator is fine)."""
    closed = frozenset(closed_days)

    def is_working_day(day: dt.date) -> bool:
        return day.weekday() < 5 and day not in closed and day not in french_public_holidays(day.year)

    return is_working_day

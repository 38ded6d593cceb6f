"""Activity periods: the weekdays an activity runs on, and the dates a period covers."""

from __future__ import annotations

import datetime as dt
import re

WEEKDAYS: tuple[str, ...] = ("monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday")

_ISO_DATE = re.compile(r"[0-9]{4}-[0-9]{2}-[0-9]{2}")


class PeriodError(ValueError):
    """A period, a date or a weekday list the API cannot accept; str(exc) is meant for people."""


def parse_weekdays(names: object) -> frozenset[int]:
    """Weekday names (English, lower case, as in WEEKDAYS) to numbers, 0 = Monday. A non-empty list of
    distinct names: a duplicate is refused rather than ignored, since it usually hides a typo."""
    if not isinstance(names, list | tuple) or not names:
        raise PeriodError('Les jours de la semaine sont une liste non vide (exemple : ["monday", "friday"]).')
    days: set[int] = set()
    for name in names:
        if not isinstance(name, str) or name not in WEEKDAYS:
            raise PeriodError(f"Jour de la semaine inconnu : « {name} » (attendu : {', '.join(WEEKDAYS)}).")
        number = WEEKDAYS.index(name)
        if number in days:
            raise PeriodError(f"Jour de la semaine en double : {name}.")
        days.add(number)
    return frozenset(days)


def expand_period(
    start: dt.date, end: dt.date, weekdays: frozenset[int], max_days: int = 366
) -> list[dt.date]:
    """The dates from `start` to `end` (both included) falling on `weekdays`, in order. The span is
    capped (`max_days` calendar days, both ends counted) so one request cannot create years of days."""
    if start > end:
        raise PeriodError("La date de début doit précéder la date de fin.")
    span = (end - start).days + 1
    if span > max_days:
        raise PeriodError(f"Une période couvre au plus {max_days} jours.")
    return [
        start + dt.timedelta(days=offset)
        for offset in range(span)
        if (start + dt.timedelta(days=offset)).weekday() in weekdays
    ]


def parse_date(value: object, field: str) -> dt.date:
    """A date written strictly AAAA-MM-JJ (date.fromisoformat alone would also take 20260105 or
    2026-W02-1)."""
    if not isinstance(value, str) or not _ISO_DATE.fullmatch(value):
        raise PeriodError(f"« {field} » : la date s'écrit AAAA-MM-JJ.")
    try:
        return dt.date.fromisoformat(value)
    except ValueError:
        raise PeriodError(f"« {field} » : cette date n'existe pas ({value}).") from None

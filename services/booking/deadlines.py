"""Booking and cancellation deadlines. A rule says until when a day can be booked (or cancelled):
"N days before at HH:MM" (calendar days, or working days only), "a weekday of the previous week at
HH:MM", or, for cancellation only, "never". Deadlines are local times in the commune's time zone,
returned as UTC instants; at the deadline itself it is already too late."""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any
from zoneinfo import ZoneInfo

from services.booking.periods import WEEKDAYS

MAX_DAYS_BEFORE = 60
# How far back a working-day count may look before giving up (a closure cannot last years).
MAX_LOOKBACK = dt.timedelta(days=3 * 366)

_HH_MM = re.compile(r"(?:[01][0-9]|2[0-3]):[0-5][0-9]")
_FORMS = ("days_before", "weekday_of_previous_week", "never")
_KEYS = {"days_before": {"at", "working_days"}, "weekday_of_previous_week": {"at"}, "never": set()}
_ALL_KEYS = {"days_before", "weekday_of_previous_week", "never", "at", "working_days"}


class RuleError(ValueError):
    """A deadline rule that cannot be used; str(exc) is a French message for people."""


@dataclass(frozen=True)
class DaysBefore:
    """N days before the day, at a local time; day 0 is the day itself."""

    days: int
    at: dt.time
    working_days: bool = False  # count only working days (the day itself never counts)

    def __post_init__(self) -> None:
        if type(self.days) is not int or self.days < 0:
            raise RuleError("Le nombre de jours doit être un entier positif ou nul.")
        _check_time(self.at)


@dataclass(frozen=True)
class WeekdayOfPreviousWeek:
    """A weekday (0 = Monday) of the week (Monday to Sunday) before the day's week, at a local time."""

    weekday: int
    at: dt.time

    def __post_init__(self) -> None:
        if type(self.weekday) is not int or not 0 <= self.weekday <= 6:
            raise RuleError("Le jour de la semaine est un nombre de 0 (lundi) à 6 (dimanche).")
        _check_time(self.at)


@dataclass(frozen=True)
class Never:
    """No deadline to meet: never allowed (cancellation only)."""


Rule = DaysBefore | WeekdayOfPreviousWeek | Never


def _check_time(at: object) -> None:
    if not isinstance(at, dt.time) or at.tzinfo is not None:
        raise RuleError("L'heure limite doit être une heure locale, sans fuseau.")


def parse_rule(data: object, *, allow_never: bool) -> Rule:
    """A rule from its API shape: {"days_before": 2, "at": "10:00", "working_days": true},
    {"weekday_of_previous_week": "thursday", "at": "12:00"} or, if allowed, {"never": true}. Anything
    else (unknown or mixed keys, out-of-range values) is refused with a message naming the field."""
    if not isinstance(data, dict):
        raise RuleError("Règle de délai invalide : un objet est attendu.")
    unknown = sorted(str(key) for key in data if key not in _ALL_KEYS)
    forms = [form for form in _FORMS if form in data]
    known_forms = "« days_before » ou « weekday_of_previous_week »" + (" ou « never »" if allow_never else "")
    if unknown:
        raise RuleError(f"Règle de délai invalide : champ inconnu « {unknown[0]} ».")
    if not forms:
        raise RuleError(f"Règle de délai invalide : indiquez {known_forms}.")
    if len(forms) > 1:
        raise RuleError(f"Règle de délai invalide : « {forms[0]} » et « {forms[1]} » ne se combinent pas.")
    form = forms[0]
    extra = sorted(key for key in data if key != form and key not in _KEYS[form])
    if extra:
        raise RuleError(f"Règle de délai invalide : « {extra[0]} » ne s'utilise pas avec « {form} ».")

    if form == "never":
        if not allow_never:
            raise RuleError("Règle de délai invalide : « never » n'est possible que pour l'annulation.")
        if data["never"] is not True:
            raise RuleError("Règle de délai invalide : « never » ne peut valoir que true.")
        return Never()

    at = _parse_at(data.get("at"))
    if form == "days_before":
        days = data["days_before"]
        if type(days) is not int or not 0 <= days <= MAX_DAYS_BEFORE:
            raise RuleError(
                f"Règle de délai invalide : « days_before » est un nombre entier de jours "
                f"entre 0 et {MAX_DAYS_BEFORE}."
            )
        working_days = data.get("working_days", False)
        if not isinstance(working_days, bool):
            raise RuleError("Règle de délai invalide : « working_days » vaut true ou false.")
        return DaysBefore(days=days, at=at, working_days=working_days)

    weekday = data["weekday_of_previous_week"]
    if not isinstance(weekday, str) or weekday not in WEEKDAYS:
        raise RuleError(
            "Règle de délai invalide : « weekday_of_previous_week » est un jour de la semaine en anglais "
            f"et en minuscules ({', '.join(WEEKDAYS)})."
        )
    return WeekdayOfPreviousWeek(weekday=WEEKDAYS.index(weekday), at=at)


def _parse_at(value: object) -> dt.time:
    if value is None:
        raise RuleError("Règle de délai invalide : « at » (l'heure limite, HH:MM) est obligatoire.")
    if not isinstance(value, str) or not _HH_MM.fullmatch(value):
        raise RuleError("Règle de délai invalide : « at » est une heure HH:MM entre 00:00 et 23:59.")
    hours, minutes = value.split(":")
    return dt.time(int(hours), int(minutes))


def rule_to_dict(rule: Rule) -> dict[str, Any]:
    """The API shape of a rule (parse_rule's inverse; times are written HH:MM, seconds dropped)."""
    if isinstance(rule, Never):
        return {"never": True}
    if isinstance(rule, DaysBefore):
        return {"days_before": rule.days, "at": rule.at.strftime("%H:%M"), "working_days": rule.working_days}
    if isinstance(rule, WeekdayOfPreviousWeek):
        return {"weekday_of_previous_week": WEEKDAYS[rule.weekday], "at": rule.at.strftime("%H:%M")}
    raise TypeError(f"not a deadline rule: {rule!r}")


def deadline(
    rule: Rule, day: dt.date, tz: ZoneInfo, is_working_day: Callable[[dt.date], bool]
) -> dt.datetime | None:
    """The instant (aware, UTC) from which `day` can no longer be booked or cancelled under `rule`;
    None for Never. `is_working_day` is only asked when the rule counts working days."""
    if isinstance(rule, Never):
        return None
    if isinstance(rule, DaysBefore):
        if rule.working_days:
            local_day = _working_days_before(day, rule.days, is_working_day)
        else:
            local_day = day - dt.timedelta(days=rule.days)
    elif isinstance(rule, WeekdayOfPreviousWeek):
        local_day = day - dt.timedelta(days=day.weekday() + 7 - rule.weekday)
    else:
        raise TypeError(f"not a deadline rule: {rule!r}")
    return local_instant(dt.datetime.combine(local_day, rule.at), tz)


def _working_days_before(day: dt.date, count: int, is_working_day: Callable[[dt.date], bool]) -> dt.date:
    """The date `count` working days before `day` (`day` itself not counted; 0 gives `day`)."""
    current = day
    while count > 0:
        current -= dt.timedelta(days=1)
        if day - current > MAX_LOOKBACK:
            raise RuleError("Délai incalculable : aucun jour ouvré trouvé avant cette date.")
        if is_working_day(current):
            count -= 1
    return current


def local_instant(wall: dt.datetime, tz: ZoneInfo) -> dt.datetime:
    """The UTC instant at which the naive local time `wall` happens in `tz`. A time skipped by a
    forward change (02:30 when Paris goes from 02:00 to 03:00) gives the first instant after the gap
    (03:00 local), the moment the clock has gone past it; a time that happens twice (autumn) gives its
    first occurrence. Either way: the first instant whose local time is not earlier than `wall`."""
    first = wall.replace(tzinfo=tz, fold=0).astimezone(dt.UTC)
    if first.astimezone(tz).replace(tzinfo=None) == wall:
        return first
    # In a gap: fold=0 reads the wall time with the offset from before the change and fold=1 with the
    # one after, so the change lies between those two instants. Find it to the microsecond.
    low = wall.replace(tzinfo=tz, fold=1).astimezone(dt.UTC)
    high = first
    if low > high:
        low, high = high, low
    offset_after = high.astimezone(tz).utcoffset()
    while high - low > dt.timedelta(microseconds=1):
        middle = low + (high - low) / 2
        if middle.astimezone(tz).utcoffset() == offset_after:
            high = middle
        else:
            low = middle
    return high


def is_before(now: dt.datetime, limit: dt.datetime | None) -> bool:
    """Whether `now` is still in time for `limit`: strictly before it (at the deadline itself it is too
    late). No limit (Never) is never in time."""
    return limit is not None and now < limit

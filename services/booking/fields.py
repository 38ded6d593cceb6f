"""Field rules for activities, closures, dates, periods and idempotency keys. Every problem is
collected, then raised at once as ValidationFailed with details {"fields": {field: [message in
French]}}. Deadline rules, weekdays and dates are parsed by the pure modules (deadlines.py,
periods.py), whose errors carry French messages too."""

from __future__ import annotations

import datetime as dt
import re
from typing import Any

from services.booking.deadlines import RuleError, parse_rule, rule_to_dict
from services.booking.periods import WEEKDAYS, PeriodError, expand_period, parse_date, parse_weekdays
from services.common.errors import NotFound, ValidationFailed

KINDS = ("canteen", "morning_care", "evening_care", "wednesday_leisure", "holiday_camp", "other")
BILLING_MODES = ("prepaid", "postpaid")
APPROVALS = ("auto", "agent")
MAX_CAPACITY = 100_000
MAX_AGE = 25
MAX_CLASSES = 50
MAX_HOLD_MINUTES = 24 * 60
DEFAULT_HOLD_MINUTES = 20
MAX_ACTIVITY_DAYS = 2 * 366  # an activity's period: two school years at most
MAX_CLOSURE_DAYS = 366
MAX_CALENDAR_DAYS = 93
MAX_HISTORY_DAYS = 366
MAX_DATES = 366
MAX_ID = 64
MAX_KEY = 200
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")

REQUIRED = (
    "name",
    "kind",
    "billing_mode",
    "capacity",
    "weekdays",
    "start_date",
    "end_date",
    "booking_deadline",
    "cancellation_deadline",
)
OPTIONAL = ("cancellation_approval", "waiting_list", "min_age", "max_age", "classes", "hold_minutes")
DEFAULTS = {"cancellation_approval": "auto", "waiting_list": False, "hold_minutes": DEFAULT_HOLD_MINUTES}
ACTIVITY_FIELDS = REQUIRED + OPTIONAL

MESSAGES = {
    "name": "Le nom est obligatoire (1 à 200 caractères).",
    "kind": "Type d'activité inconnu (attendu : " + ", ".join(KINDS) + ").",
    "billing_mode": "Mode de facturation inconnu (attendu : prepaid ou postpaid).",
    "capacity": f"La capacité est un nombre entier de places entre 0 et {MAX_CAPACITY}.",
    "cancellation_approval": "Validation des annulations : auto ou agent.",
    "waiting_list": "Liste d'attente : true ou false.",
    "age": f"L'âge est un nombre entier d'années entre 0 et {MAX_AGE}.",
    "ages": "L'âge minimum ne peut pas dépasser l'âge maximum.",
    "classes": f"Les classes sont une liste (au plus {MAX_CLASSES}) de noms de 1 à 50 caractères.",
    "hold_minutes": (
        f"La durée de réservation avant paiement est un nombre de minutes entre 1 et {MAX_HOLD_MINUTES}."
    ),
    "period": "La date de fin doit suivre la date de début.",
    "activity_span": f"Une activité couvre au plus {MAX_ACTIVITY_DAYS} jours.",
    "closure_span": f"Une fermeture couvre au plus {MAX_CLOSURE_DAYS} jours.",
    "reason": "Le motif est obligatoire (1 à 200 caractères).",
    "range": "La date de fin doit suivre la date de début.",
    "calendar_span": "La période demandée est trop longue (au plus {days} jours).",
    "dates": f"Les dates sont une liste (au plus {MAX_DATES}) de dates AAAA-MM-JJ.",
    "dates_or_period": "Indiquez des dates ou une période.",
    "period_object": 'La période s\'écrit {"from": "AAAA-MM-JJ", "to": "AAAA-MM-JJ", "weekdays": [...]}.',
    "idempotency_key": f"La clé d'idempotence compte 1 à {MAX_KEY} caractères, sans caractère de contrôle.",
    "changes": "Les modifications sont un objet.",
    "unknown": "Champ inconnu.",
    "required": "Ce champ est obligatoire.",
}


class Checker:
    """Collects field errors; `done()` raises them all together."""

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}

    def fail(self, field: str, message: str) -> None:
        self.fields.setdefault(field, []).append(MESSAGES.get(message, message))

    def text(self, field: str, value: Any, max_length: int, message: str) -> str | None:
        if not isinstance(value, str) or _CONTROL.search(value) or not 0 < len(value.strip()) <= max_length:
            self.fail(field, message)
            return None
        return value.strip()

    def integer(self, field: str, value: Any, low: int, high: int, message: str) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(field, message)
            return None
        return value

    def choice(self, field: str, value: Any, choices: tuple[str, ...]) -> str | None:
        if not isinstance(value, str) or value not in choices:
            self.fail(field, field)
            return None
        return value

    def date(self, field: str, value: Any) -> dt.date | None:
        try:
            return parse_date(value, field)
        except PeriodError as exc:
            self.fail(field, str(exc))
            return None

    def done(self) -> None:
        if self.fields:
            raise ValidationFailed(details={"fields": self.fields})


def _rule(check: Checker, field: str, value: Any, allow_never: bool) -> dict[str, Any] | None:
    try:
        return rule_to_dict(parse_rule(value, allow_never=allow_never))
    except RuleError as exc:
        check.fail(field, str(exc))
        return None


def _classes(check: Checker, value: Any) -> list[str] | None:
    if value is None:
        return None
    if not isinstance(value, list | tuple) or len(value) > MAX_CLASSES:
        check.fail("classes", "classes")
        return None
    names = [check.text("classes", name, 50, "classes") for name in value]
    if any(name is None for name in names):
        return None
    unique = list(dict.fromkeys(names))
    return unique or None


def activity_fields(data: Any, current: dict[str, Any] | None = None) -> dict[str, Any]:
    """Checked activity values, as stored. `current` (the stored values) makes it a PATCH: only the
    given fields are checked and returned, and cross-field rules apply to the merged values."""
    check = Checker()
    if not isinstance(data, dict):
        raise ValidationFailed(details={"fields": {"changes": [MESSAGES["changes"]]}})
    for key in data:
        if key not in ACTIVITY_FIELDS:
            check.fail(str(key)[:50], "unknown")
    if current is None:
        for key in REQUIRED:
            if data.get(key) is None:
                check.fail(key, "required")
    values: dict[str, Any] = {}
    given = {key: value for key, value in data.items() if key in ACTIVITY_FIELDS}
    for key in (*REQUIRED, "cancellation_approval", "waiting_list"):
        if key in given and given[key] is None and current is not None:
            check.fail(key, "required")
    if given.get("name") is not None:
        values["name"] = check.text("name", given["name"], 200, "name")
    if given.get("kind") is not None:
        values["kind"] = check.choice("kind", given["kind"], KINDS)
    if given.get("billing_mode") is not None:
        values["billing_mode"] = check.choice("billing_mode", given["billing_mode"], BILLING_MODES)
    if given.get("capacity") is not None:
        values["capacity"] = check.integer("capacity", given["capacity"], 0, MAX_CAPACITY, "capacity")
    if given.get("weekdays") is not None:
        try:
            values["weekdays"] = sorted(parse_weekdays(given["weekdays"]))
        except PeriodError as exc:
            check.fail("weekdays", str(exc))
    for key in ("start_date", "end_date"):
        if given.get(key) is not None:
            values[key] = check.date(key, given[key])
    if given.get("booking_deadline") is not None:
        values["booking_deadline"] = _rule(check, "booking_deadline", given["booking_deadline"], False)
    if given.get("cancellation_deadline") is not None:
        values["cancellation_deadline"] = _rule(
            check, "cancellation_deadline", given["cancellation_deadline"], True
        )
    if given.get("cancellation_approval") is not None:
        values["cancellation_approval"] = check.choice(
            "cancellation_approval", given["cancellation_approval"], APPROVALS
        )
    if given.get("waiting_list") is not None:
        if not isinstance(given["waiting_list"], bool):
            check.fail("waiting_list", "waiting_list")
        values["waiting_list"] = given["waiting_list"]
    for key in ("min_age", "max_age"):
        if key in given:
            value = given[key]
            values[key] = None if value is None else check.integer(key, value, 0, MAX_AGE, "age")
    if "classes" in given:
        values["classes"] = _classes(check, given["classes"])
    if given.get("hold_minutes") is not None:
        values["hold_minutes"] = check.integer(
            "hold_minutes", given["hold_minutes"], 1, MAX_HOLD_MINUTES, "hold_minutes"
        )
    elif "hold_minutes" in given and current is not None:  # null: back to the default
        values["hold_minutes"] = DEFAULT_HOLD_MINUTES
    if current is None:
        for key, default in DEFAULTS.items():
            values.setdefault(key, default)
    check.done()
    merged = {**(current or {}), **values}
    start, end = merged.get("start_date"), merged.get("end_date")
    if start is not None and end is not None:
        if start > end:
            check.fail("end_date", "period")
        elif (end - start).days + 1 > MAX_ACTIVITY_DAYS:
            check.fail("end_date", "activity_span")
    low, high = merged.get("min_age"), merged.get("max_age")
    if low is not None and high is not None and low > high:
        check.fail("max_age", "ages")
    check.done()
    return values


def closure_fields(start: Any, end: Any, reason: Any) -> dict[str, Any]:
    check = Checker()
    values = {
        "start_date": check.date("from", start),
        "end_date": check.date("to", end),
        "reason": check.text("reason", reason, 200, "reason"),
    }
    check.done()
    if values["start_date"] > values["end_date"]:
        check.fail("to", "range")
    elif (values["end_date"] - values["start_date"]).days + 1 > MAX_CLOSURE_DAYS:
        check.fail("to", "closure_span")
    check.done()
    return values


def date_range(start: Any, end: Any, max_days: int) -> tuple[dt.date, dt.date]:
    """[from, to], both included, at most `max_days` days."""
    check = Checker()
    first, last = check.date("from", start), check.date("to", end)
    check.done()
    if first > last:
        check.fail("to", "range")
    elif (last - first).days + 1 > max_days:
        check.fail("to", MESSAGES["calendar_span"].format(days=max_days))
    check.done()
    return first, last


def dates(values: Any) -> list[dt.date]:
    """A list of distinct dates, in order."""
    check = Checker()
    if not isinstance(values, list | tuple) or not values or len(values) > MAX_DATES:
        check.fail("dates", "dates")
        check.done()
    parsed = [check.date("dates", value) for value in values]
    check.done()
    return sorted(set(parsed))


def period(value: Any) -> list[dt.date]:
    """{"from", "to", "weekdays"}: the dates it covers, in order."""
    check = Checker()
    if not isinstance(value, dict) or set(value) - {"from", "to", "weekdays"}:
        check.fail("period", "period_object")
        check.done()
    first, last = check.date("from", value.get("from")), check.date("to", value.get("to"))
    weekdays = None
    try:
        weekdays = parse_weekdays(value.get("weekdays"))
    except PeriodError as exc:
        check.fail("weekdays", str(exc))
    check.done()
    try:
        return expand_period(first, last, weekdays)
    except PeriodError as exc:
        raise ValidationFailed(details={"fields": {"period": [str(exc)]}}) from None


def idempotency_key(value: Any) -> str:
    """The client's key as given (the gateway passes the Idempotency-Key header, or its own)."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_KEY or _CONTROL.search(value):
        raise ValidationFailed(details={"fields": {"idempotency_key": [MESSAGES["idempotency_key"]]}})
    return value


def identifier(value: Any) -> str:
    """An id from the client: anything implausible is simply not found."""
    if not isinstance(value, str) or not 0 < len(value) <= MAX_ID:
        raise NotFound()
    return value


def weekday_names(numbers: list[int]) -> list[str]:
    return [WEEKDAYS[n] for n in sorted(numbers)]

"""Email templates (Jinja2 files under templates/<locale>/): subject, plain text and HTML per kind.

French first; English when the recipient's locale is English. A missing variable is an error
(StrictUndefined), never an empty hole in an email; HTML is autoescaped, text is not.
"""

from __future__ import annotations

import datetime as dt
import functools
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from jinja2 import Environment, FileSystemLoader, StrictUndefined, select_autoescape

TEMPLATES_DIR = Path(__file__).parent / "templates"
DEFAULT_LOCALE = "fr"
LOCALES = ("fr", "en")
DISPLAY_TIME_ZONE = "Europe/Paris"

_EN_MONTHS = ("January February March April May June July August September October November December").split()
_FR_MONTHS = "janvier février mars avril mai juin juillet août septembre octobre novembre décembre".split()
_EN_DAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()
_FR_DAYS = "lundi mardi mercredi jeudi vendredi samedi dimanche".split()

# booking's outcomes and reasons, as parents read them
OUTCOME_LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "confirmed": "confirmé",
        "waitlisted": "sur liste d'attente",
        "pending_payment": "en attente de paiement",
        "requested": "demande d'annulation transmise",
        "cancelled": "annulé",
        "rejected": "refusé",
    },
    "en": {
        "confirmed": "confirmed",
        "waitlisted": "on the waiting list",
        "pending_payment": "awaiting payment",
        "requested": "cancellation request sent",
        "cancelled": "cancelled",
        "rejected": "refused",
    },
}
REASON_LABELS: dict[str, dict[str, str]] = {
    "fr": {
        "FULL": "complet",
        "DEADLINE_PASSED": "date limite dépassée",
        "CLOSED": "fermé ce jour-là",
        "NOT_ELIGIBLE": "enfant non éligible",
        "ALREADY_BOOKED": "déjà réservé",
        "NOT_BOOKED": "aucune réservation à annuler",
        "CANCELLATION_NOT_ALLOWED": "annulation non autorisée",
        "NOT_SCHEDULED": "pas d'activité ce jour-là",
    },
    "en": {
        "FULL": "full",
        "DEADLINE_PASSED": "deadline passed",
        "CLOSED": "closed that day",
        "NOT_ELIGIBLE": "child not eligible",
        "ALREADY_BOOKED": "already booked",
        "NOT_BOOKED": "no booking to cancel",
        "CANCELLATION_NOT_ALLOWED": "cancellation not allowed",
        "NOT_SCHEDULED": "no activity that day",
    },
}
ACTION_LABELS: dict[str, dict[str, str]] = {
    "fr": {"book": "réservation", "cancel": "annulation"},
    "en": {"book": "booking", "cancel": "cancellation"},
}


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    html: str


def pick_locale(locale: str | None) -> str:
    """`en`, `en-GB`, `en_US` give English; anything else (or nothing) gives French."""
    return "en" if str(locale or "").strip().lower()[:2] == "en" else DEFAULT_LOCALE


def _display_zone() -> dt.tzinfo:
    try:
        return ZoneInfo(DISPLAY_TIME_ZONE)
    except ZoneInfoNotFoundError:  # no tz database on this machine: say UTC rather than lie
        return dt.UTC


def local_datetime(moment: dt.datetime, lang: str) -> str:
    """A deadline as parents read it, in Paris time: `12/01/2026 à 14h30` / `12 January 2026, 14:30`."""
    zone = _display_zone()
    local = moment.astimezone(zone)
    suffix = "" if zone is not dt.UTC else " UTC"
    if lang == "en":
        return f"{local.day} {_EN_MONTHS[local.month - 1]} {local.year}, {local:%H:%M}{suffix}"
    return f"{local:%d/%m/%Y} à {local:%H}h{local:%M}{suffix}"


def long_date(day: dt.date, lang: str) -> str:
    """A day as parents say it: `lundi 7 décembre 2026`, `mardi 1er décembre`, `Monday 7 December 2026`."""
    if lang == "en":
        return f"{_EN_DAYS[day.weekday()]} {day.day} {_EN_MONTHS[day.month - 1]} {day.year}"
    number = "1er" if day.day == 1 else str(day.day)
    return f"{_FR_DAYS[day.weekday()]} {number} {_FR_MONTHS[day.month - 1]} {day.year}"


def month_label(day: dt.date, lang: str) -> str:
    """A month as parents say it: `mars 2026` / `March 2026`."""
    months = _EN_MONTHS if lang == "en" else _FR_MONTHS
    return f"{months[day.month - 1]} {day.year}"


def euros(cents: int, lang: str) -> str:
    """An amount in integer cents as parents read it: `1 234,50 €` (narrow no-break space between
    thousands, no-break space before the sign, as French typography has it) / `€1,234.50`."""
    sign = "-" if cents < 0 else ""
    units, rest = divmod(abs(int(cents)), 100)
    if lang == "en":
        return f"{sign}€{units:,}.{rest:02d}"
    return f"{sign}{units:,}".replace(",", "\u202f") + f",{rest:02d}\u00a0€"


def outcome_label(outcome: str, reason: str | None, lang: str) -> str:
    """`confirmé`, `refusé : complet` / `refused: full` (a reason is given for refusals only)."""
    label = OUTCOME_LABELS[lang][outcome]
    if outcome == "rejected" and reason:
        return (
            f"{label} : {REASON_LABELS[lang][reason]}"
            if lang == "fr"
            else f"{label}: {REASON_LABELS[lang][reason]}"
        )
    return label


def action_label(action: str, lang: str) -> str:
    return ACTION_LABELS[lang][action]


@functools.cache
def environment() -> Environment:
    env = Environment(
        loader=FileSystemLoader(TEMPLATES_DIR),
        autoescape=select_autoescape(enabled_extensions=("html",), default_for_string=False),
        undefined=StrictUndefined,
        trim_blocks=True,
        lstrip_blocks=True,
        keep_trailing_newline=True,
    )
    env.filters["local_datetime"] = local_datetime
    env.filters["long_date"] = long_date
    env.filters["euros"] = euros
    env.filters["month_label"] = month_label
    env.globals["outcome_label"] = outcome_label
    env.globals["action_label"] = action_label
    return env


def render(kind: str, locale: str | None, context: dict[str, Any]) -> Rendered:
    """Render the three parts of one email of `kind` in the recipient's language."""
    lang = pick_locale(locale)
    env = environment()
    values = {**context, "lang": lang}
    subject = env.get_template(f"{lang}/{kind}.subject.txt").render(values)
    return Rendered(
        subject=" ".join(subject.split()),  # one line: no header folding surprises, no injection
        text=env.get_template(f"{lang}/{kind}.txt").render(values),
        html=env.get_template(f"{lang}/{kind}.html").render(values),
    )


def available_kinds(lang: str = DEFAULT_LOCALE) -> list[str]:
    """The kinds that have a subject template for `lang`."""
    return sorted(p.name.removesuffix(".subject.txt") for p in (TEMPLATES_DIR / lang).glob("*.subject.txt"))

"""How amounts, months and dates read in French, for every page, PDF and email that shows them:
"1 234,50 €", "novembre 2026", "lundi 1er décembre 2026". Plain functions, no locale setting (the
server's locale must not change what a parent reads)."""

from __future__ import annotations

import datetime as dt

MONTHS = (
    "janvier",
    "février",
    "mars",
    "avril",
    "mai",
    "juin",
    "juillet",
    "août",
    "septembre",
    "octobre",
    "novembre",
    "décembre",
)
WEEKDAYS = ("lundi", "mardi", "mercredi", "jeudi", "vendredi", "samedi", "dimanche")
NARROW_NBSP = "\u202f"  # between thousands, as French typography (and CLDR) has it
NBSP = "\u00a0"  # before the euro sign, so that it never wraps alone


def euros(cents: int, thousands: str = NARROW_NBSP) -> str:
    """Integer cents (never a float): 1250 -> "12,50 €", 123450 -> "1 234,50 €", -300 -> "-3,00 €"."""
    sign = "-" if cents < 0 else ""
    units, rest = divmod(abs(int(cents)), 100)
    return f"{sign}{units:,}".replace(",", thousands) + f",{rest:02d}{NBSP}€"


def month_label(value: object) -> str:
    """ "2026-11" (or a date in that month) -> "novembre 2026"; anything else is shown as it came."""
    text = str(value or "")
    try:
        year, month = int(text[0:4]), int(text[5:7])
        if text[4] != "-" or not 1 <= month <= 12:
            raise ValueError(text)
    except (ValueError, IndexError):
        return text
    return f"{MONTHS[month - 1]} {year}"


def day_label(day: dt.date, weekday: bool = False) -> str:
    """ "15 décembre 2026", "1er" for the first of the month; "mardi 15 décembre 2026" with the weekday."""
    number = "1er" if day.day == 1 else str(day.day)
    label = f"{number} {MONTHS[day.month - 1]} {day.year}"
    return f"{WEEKDAYS[day.weekday()]} {label}" if weekday else label

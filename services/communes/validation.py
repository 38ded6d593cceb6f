"""Field rules for communes, families and children. Every problem is collected, then raised at once
as ValidationFailed with details {"fields": {field: [message in French]}}."""

from __future__ import annotations

import datetime as dt
import functools
import re
import zoneinfo
from typing import Any

from services.common.errors import ValidationFailed

DEFAULT_TIMEZONE = "Europe/Paris"
INSEE_CODE = re.compile(r"(?:\d{5}|2[AB]\d{3})")
EMAIL = re.compile(r"[^@\s,;:<>()\[\]\"\\]+@[^@\s,;:<>()\[\]\"\\]+\.[^@\s,;:<>()\[\]\"\\.]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_CONTROL_EXCEPT_NEWLINES = re.compile(r"[\x00-\x09\x0b\x0c\x0e-\x1f\x7f]")
EARLIEST_BIRTH_DATE = dt.date(1900, 1, 1)
MAX_QUOTIENT_FAMILIAL = 100_000
FAMILY_FIELDS = ("reference", "name", "email", "address", "quotient_familial")

MESSAGES = {
    "name": "Le nom est obligatoire (1 à 200 caractères).",
    "insee_code": "Le code INSEE compte 5 caractères : 5 chiffres, ou 2A ou 2B suivi de 3 chiffres.",
    "timezone": "Fuseau horaire inconnu (exemple : Europe/Paris).",
    "email": "Adresse e-mail invalide.",
    "code_ttl_days": "La durée de validité des codes est un nombre de jours entre 1 et 365.",
    "reference": "Le numéro de dossier est obligatoire (1 à 50 caractères).",
    "family_name": "Le nom de la famille est obligatoire (1 à 200 caractères).",
    "address": "L'adresse compte au plus 500 caractères.",
    "quotient_familial": f"Le quotient familial est un nombre entier entre 0 et {MAX_QUOTIENT_FAMILIAL}.",
    "first_name": "Le prénom est obligatoire (1 à 100 caractères).",
    "last_name": "Le nom est obligatoire (1 à 100 caractères).",
    "birth_date": "La date de naissance s'écrit AAAA-MM-JJ, entre 1900 et aujourd'hui.",
    "school": "Le nom de l'école compte au plus 200 caractères.",
    "class_name": "Le nom de la classe compte au plus 50 caractères.",
    "unknown": "Champ inconnu.",
    "required": "Ce champ est obligatoire.",
    "limit": "Nombre attendu entre 1 et 500.",
}


class Checker:
    """Collects field errors; `done()` raises them all together."""

    def __init__(self) -> None:
        self.fields: dict[str, list[str]] = {}

    def fail(self, field: str, message_key: str) -> None:
        self.fields.setdefault(field, []).append(MESSAGES[message_key])

    def text(
        self, field: str, value: Any, max_length: int, message_key: str, optional: bool = False
    ) -> str | None:
        if value is None and optional:
            return None
        multiline = field == "address"
        control = _CONTROL_EXCEPT_NEWLINES if multiline else _CONTROL
        if not isinstance(value, str) or control.search(value):
            self.fail(field, message_key)
            return None
        value = value.strip()
        if not value and optional:
            return None
        if not value or len(value) > max_length:
            self.fail(field, message_key)
            return None
        return value

    def email(self, field: str, value: Any, optional: bool = False) -> str | None:
        text = self.text(field, value, 254, "email", optional)
        if text is not None and not EMAIL.fullmatch(text):
            self.fail(field, "email")
            return None
        return text

    def integer(self, field: str, value: Any, low: int, high: int, message_key: str) -> int | None:
        if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
            self.fail(field, message_key)
            return None
        return value

    def done(self) -> None:
        if self.fields:
            raise ValidationFailed(details={"fields": self.fields})


def normalize_email(email: str) -> str:
    return email.strip().lower()


@functools.cache
def known_timezones() -> frozenset[str]:
    return frozenset(zoneinfo.available_timezones())


def commune_fields(
    name: Any, insee_code: Any, timezone: Any, contact_email: Any, code_ttl_days: Any, default_ttl: int
) -> dict[str, Any]:
    check = Checker()
    values: dict[str, Any] = {"name": check.text("name", name, 200, "name")}
    insee = insee_code.strip().upper() if isinstance(insee_code, str) else None
    if insee is None or not INSEE_CODE.fullmatch(insee):
        check.fail("insee_code", "insee_code")
    values["insee_code"] = insee
    timezone = DEFAULT_TIMEZONE if timezone in (None, "") else timezone
    if not isinstance(timezone, str) or timezone.strip() not in known_timezones():
        check.fail("timezone", "timezone")
    values["timezone"] = timezone.strip() if isinstance(timezone, str) else None
    values["contact_email"] = check.email("contact_email", contact_email, optional=True)
    if code_ttl_days is None:
        values["code_ttl_days"] = default_ttl
    else:
        values["code_ttl_days"] = check.integer("code_ttl_days", code_ttl_days, 1, 365, "code_ttl_days")
    check.done()
    return values


def family_fields(changes: Any, partial: bool) -> dict[str, Any]:
    """Checked family fields; `partial` (PATCH) accepts any subset, else all required ones."""
    check = Checker()
    if not isinstance(changes, dict):
        raise ValidationFailed(details={"fields": {"changes": [MESSAGES["required"]]}})
    for key in changes:
        if key not in FAMILY_FIELDS:
            check.fail(str(key)[:50], "unknown")
    values: dict[str, Any] = {}
    if not partial:
        for key in ("reference", "name", "email"):
            if changes.get(key) is None:
                check.fail(key, "required")
    if changes.get("reference") is not None:
        values["reference"] = check.text("reference", changes["reference"], 50, "reference")
    elif "reference" in changes and partial:
        check.fail("reference", "reference")
    if changes.get("name") is not None:
        values["name"] = check.text("name", changes["name"], 200, "family_name")
    elif "name" in changes and partial:
        check.fail("name", "family_name")
    if changes.get("email") is not None:
        values["email"] = check.email("email", changes["email"])
    elif "email" in changes and partial:
        check.fail("email", "email")
    if "address" in changes:
        values["address"] = check.text("address", changes["address"], 500, "address", optional=True)
    if "quotient_familial" in changes:
        qf = changes["quotient_familial"]
        values["quotient_familial"] = (
            None
            if qf is None
            else check.integer("quotient_familial", qf, 0, MAX_QUOTIENT_FAMILIAL, "quotient_familial")
        )
    check.done()
    return values


def child_fields(
    first_name: Any, last_name: Any, birth_date: Any, school: Any, class_name: Any, today: dt.date
) -> dict[str, Any]:
    check = Checker()
    values = {
        "first_name": check.text("first_name", first_name, 100, "first_name"),
        "last_name": check.text("last_name", last_name, 100, "last_name"),
        "school": check.text("school", school, 200, "school", optional=True),
        "class_name": check.text("class_name", class_name, 50, "class_name", optional=True),
        "birth_date": None,
    }
    born = None
    if isinstance(birth_date, dt.date) and not isinstance(birth_date, dt.datetime):
        born = birth_date
    elif isinstance(birth_date, str) and re.fullmatch(r"\d{4}-\d{2}-\d{2}", birth_date.strip()):
        try:
            born = dt.date.fromisoformat(birth_date.strip())
        except ValueError:
            born = None
    if born is None or not EARLIEST_BIRTH_DATE <= born <= today:
        check.fail("birth_date", "birth_date")
    values["birth_date"] = born
    check.done()
    return values


def audit_limit(limit: Any) -> int:
    if isinstance(limit, bool) or not isinstance(limit, int) or not 1 <= limit <= 500:
        raise ValidationFailed(details={"fields": {"limit": [MESSAGES["limit"]]}})
    return limit

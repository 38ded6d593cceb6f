"""Who may attend an activity: an age range and/or a list of school classes."""

from __future__ import annotations

import datetime as dt


def age_on(birth_date: dt.date, day: dt.date) -> int:
    """Completed years on `day`. A child born on 29 February gets a year older on 1 March in
    non-leap years (still the younger age on 28 February). Negative before the birth."""
    years = day.year - birth_date.year
    if (day.month, day.day) < (birth_date.month, birth_date.day):
        years -= 1
    return years


def _class_key(name: str) -> str:
    return name.strip().casefold()


def is_eligible(
    birth_date: dt.date | None,
    class_name: str | None,
    day: dt.date,
    *,
    min_age: int | None,
    max_age: int | None,
    classes: frozenset[str] | None,
) -> bool:
    """Whether the child may attend on `day`: min_age ≤ age ≤ max_age (bounds included, age on the day
    itself) and the class among `classes` (case and surrounding spaces ignored). A bound the child's
    record cannot be checked against (no birth date, no class) refuses: an agent must complete the
    record. None or an empty set of classes means no class restriction."""
    if min_age is not None or max_age is not None:
        if birth_date is None:
            return False
        age = age_on(birth_date, day)
        if min_age is not None and age < min_age:
            return False
        if max_age is not None and age > max_age:
            return False
    if classes:
        if class_name is None or not class_name.strip():
            return False
        if _class_key(class_name) not in {_class_key(c) for c in classes}:
            return False
    return True

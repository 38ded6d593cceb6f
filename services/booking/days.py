"""The facts about one day of one activity that the calendar, the cart and the validation engine all
need: is it scheduled, closed, open to this child, until when can it be booked or cancelled. Built
from an activity row and its closures with the pure rules (deadlines, holidays, eligibility)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from zoneinfo import ZoneInfo

from sqlalchemy import select
from sqlalchemy.orm import Session

from services.booking.access import ChildInfo
from services.booking.deadlines import Never, Rule, deadline, parse_rule
from services.booking.eligibility import is_eligible
from services.booking.holidays import working_day_checker
from services.booking.models import Activity, Closure

_ONE_DAY = dt.timedelta(days=1)


def closure_days(closures: Iterable[Closure]) -> frozenset[dt.date]:
    days: set[dt.date] = set()
    for closure in closures:
        day = closure.start_date
        while day <= closure.end_date:
            days.add(day)
            day += _ONE_DAY
    return frozenset(days)


@dataclass(frozen=True)
class DayRules:
    """What a day of an activity is, whoever asks: its ISO date, whether it is open at all (scheduled
    and not closed), and its deadlines (instants and their ISO texts)."""

    date_text: str
    open: bool
    book_until: dt.datetime | None
    book_until_text: str | None
    cancel_until_text: str | None


@dataclass
class ActivityDays:
    activity: Activity
    tz: ZoneInfo
    weekdays: frozenset[int]
    booking_rule: Rule
    cancellation_rule: Rule
    closed_days: frozenset[dt.date]
    is_working_day: Callable[[dt.date], bool]
    # deadlines already computed, per (rule kind, day): they depend only on the rules above, and the
    # calendar's cached ActivityDays answer the same days for every parent of the commune
    _deadlines: dict[tuple[str, dt.date], tuple[dt.datetime | None, str | None]] = field(
        default_factory=dict, repr=False, compare=False
    )
    _days: dict[dt.date, DayRules] = field(default_factory=dict, repr=False, compare=False)
    # plain copies of the activity's fields the calendar reads for every day (an ORM attribute read
    # costs a microsecond, and a month's calendar made hundreds of them)
    capacity: int = field(init=False, repr=False, compare=False)
    name: str = field(init=False, repr=False, compare=False)
    _eligibility: tuple[str, int | None, int | None, frozenset[str] | None] = field(
        init=False, repr=False, compare=False
    )

    def __post_init__(self) -> None:
        activity = self.activity
        self.capacity, self.name = activity.capacity, activity.name
        classes = frozenset(activity.classes) if activity.classes else None
        self._eligibility = (activity.commune_id, activity.min_age, activity.max_age, classes)

    @classmethod
    def of(cls, activity: Activity, closures: Iterable[Closure]) -> ActivityDays:
        closed = closure_days(closures)
        return cls(
            activity=activity,
            tz=ZoneInfo(activity.timezone),
            weekdays=frozenset(activity.weekdays),
            booking_rule=parse_rule(activity.booking_deadline, allow_never=False),
            cancellation_rule=parse_rule(activity.cancellation_deadline, allow_never=True),
            closed_days=closed,
            is_working_day=working_day_checker(closed),  # weekends, public holidays, closures
        )

    def scheduled(self, day: dt.date) -> bool:
        """The activity runs that weekday, within its period (closed or not)."""
        return self.activity.start_date <= day <= self.activity.end_date and day.weekday() in self.weekdays

    def scheduled_days(self, first: dt.date, last: dt.date) -> list[dt.date]:
        day, end = max(first, self.activity.start_date), min(last, self.activity.end_date)
        found = []
        while day <= end:
            if day.weekday() in self.weekdays:
                found.append(day)
            day += _ONE_DAY
        return found

    def day_rules(self, day: dt.date) -> DayRules:
        """The day's DayRules, computed once per ActivityDays (the calendar's are cached and shared)."""
        found = self._days.get(day)
        if found is None:
            book = self._deadline("book", self.booking_rule, day)
            found = self._days[day] = DayRules(
                date_text=day.isoformat(),
                open=self.scheduled(day) and not self.closed(day),
                book_until=book[0],
                book_until_text=book[1],
                cancel_until_text=self.cancel_until_text(day),
            )
        return found

    def closed(self, day: dt.date) -> bool:
        return day in self.closed_days

    def eligible(self, child: ChildInfo | None, day: dt.date) -> bool:
        commune_id, min_age, max_age, classes = self._eligibility
        if child is None or child.commune_id != commune_id:
            return False
        return is_eligible(
            child.birth_date, child.class_name, day, min_age=min_age, max_age=max_age, classes=classes
        )

    def book_until(self, day: dt.date) -> dt.datetime | None:
        return self._deadline("book", self.booking_rule, day)[0]

    def cancel_until(self, day: dt.date) -> dt.datetime | None:
        """None: cancellations are never allowed (Never)."""
        return self._deadline("cancel", self.cancellation_rule, day)[0]

    def book_until_text(self, day: dt.date) -> str | None:
        """book_until as the API writes it (ISO 8601)."""
        return self._deadline("book", self.booking_rule, day)[1]

    def cancel_until_text(self, day: dt.date) -> str | None:
        return self._deadline("cancel", self.cancellation_rule, day)[1]

    def _deadline(self, kind: str, rule: Rule, day: dt.date) -> tuple[dt.datetime | None, str | None]:
        key = (kind, day)
        found = self._deadlines.get(key)
        if found is None:
            moment = deadline(rule, day, self.tz, self.is_working_day)
            found = self._deadlines[key] = (moment, iso(moment))
        return found

    @property
    def cancellation_never(self) -> bool:
        return isinstance(self.cancellation_rule, Never)

    def local_today(self, now: dt.datetime) -> dt.date:
        return now.astimezone(self.tz).date()


def load(session: Session, activities: Iterable[Activity]) -> dict[str, ActivityDays]:
    """ActivityDays of each activity, with their closures (one query)."""
    activities = list(activities)
    closures: dict[str, list[Closure]] = {a.id: [] for a in activities}
    if activities:
        rows = session.scalars(select(Closure).where(Closure.activity_id.in_(list(closures)))).all()
        for closure in rows:
            closures[closure.activity_id].append(closure)
    return {a.id: ActivityDays.of(a, closures[a.id]) for a in activities}


def load_one(session: Session, activity: Activity) -> ActivityDays:
    return load(session, [activity])[activity.id]


def iso(moment: dt.datetime | None) -> str | None:
    return moment.isoformat() if moment is not None else None

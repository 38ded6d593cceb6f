"""Carts: each account's days to book or cancel, for any of its children and activities, until it
validates them (validation.py). Plain functions over a session; the children (ChildInfo) come from
communes' access check. One item per account, child, activity and day: adding a day again, with
either action, is ignored (remove the item first to change its action)."""

from __future__ import annotations

import datetime as dt
from collections import defaultdict
from typing import Any

from sqlalchemy import delete, func, select
from sqlalchemy.orm import Session

from services.booking import fields, views
from services.booking.access import ChildInfo
from services.booking.calendar import DayFacts
from services.booking.days import load_one
from services.booking.exceptions import CartTooLarge
from services.booking.models import BOOK, CANCEL, Activity, CartItem
from services.common import clock
from services.common.db import insert_for, new_id
from services.common.errors import NotFound, ValidationFailed

MAX_CART_ITEMS = 500


def _activity_for(session: Session, child: ChildInfo, activity_id: Any) -> Activity:
    """The activity, if it is one of the child's commune (NotFound otherwise)."""
    activity = session.get(Activity, fields.identifier(activity_id))
    if activity is None or activity.commune_id != child.commune_id:
        raise NotFound()
    return activity


def _add(
    session: Session,
    account_id: str,
    child: ChildInfo,
    activity: Activity,
    wanted: list[dt.date],
    action: str,
    now: dt.datetime,
) -> dict[str, Any]:
    count = session.scalar(
        select(func.count()).select_from(CartItem).where(CartItem.account_id == account_id)
    )
    if int(count or 0) + len(wanted) > MAX_CART_ITEMS:
        raise CartTooLarge(details={"max_items": MAX_CART_ITEMS})
    ids = [new_id() for _ in wanted]
    if wanted:
        session.execute(
            insert_for(session, CartItem)
            .values(
                [
                    {
                        "id": item_id,
                        "account_id": account_id,
                        "child_id": child.id,
                        "activity_id": activity.id,
                        "date": day,
                        "action": action,
                        "created_at": now,
                    }
                    for item_id, day in zip(ids, wanted, strict=True)
                ]
            )
            .on_conflict_do_nothing(index_elements=["account_id", "child_id", "activity_id", "date"])
        )
    added = session.scalars(
        select(CartItem).where(CartItem.id.in_(ids)).order_by(CartItem.date, CartItem.id)
    ).all()
    if not added:
        return {"items": []}
    facts = DayFacts(session, child, [activity], added[0].date, added[-1].date)
    return {
        "items": [
            views.cart_item(item, facts.describe(activity.id, item.date, now)["state"]) for item in added
        ]
    }


def add_items(
    session: Session,
    account_id: str,
    child: ChildInfo,
    activity_id: Any,
    dates: Any = None,
    period: Any = None,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Days to book: explicit `dates` (kept as given: validation rejects those the activity does not
    run), and/or a `period` {"from", "to", "weekdays"} kept to the activity's scheduled days.
    Returns {"items": [the items added]} (days already in the cart are ignored)."""
    if dates is None and period is None:
        raise ValidationFailed(details={"fields": {"dates": [fields.MESSAGES["dates_or_period"]]}})
    activity = _activity_for(session, child, activity_id)
    wanted = set(fields.dates(dates)) if dates is not None else set()
    if period is not None:
        rules = load_one(session, activity)
        wanted.update(day for day in fields.period(period) if rules.scheduled(day))
    return _add(session, account_id, child, activity, sorted(wanted), BOOK, now or clock.now())


def add_cancellations(
    session: Session,
    account_id: str,
    child: ChildInfo,
    activity_id: Any,
    dates: Any,
    now: dt.datetime | None = None,
) -> dict[str, Any]:
    """Days to cancel (booked or waitlisted ones; validation rejects the others)."""
    activity = _activity_for(session, child, activity_id)
    return _add(session, account_id, child, activity, fields.dates(dates), CANCEL, now or clock.now())


def remove_item(session: Session, account_id: str, item_id: Any) -> None:
    """Another account's item, or an unknown one: NotFound."""
    if not isinstance(item_id, str):
        raise NotFound()
    removed = session.execute(
        delete(CartItem)
        .where(CartItem.id == item_id, CartItem.account_id == account_id)
        .execution_options(synchronize_session=False)
    ).rowcount
    if removed != 1:
        raise NotFound()


def items(session: Session, account_id: str) -> list[CartItem]:
    """The account's cart, in the order items were added."""
    return list(
        session.scalars(
            select(CartItem)
            .where(CartItem.account_id == account_id)
            .order_by(CartItem.created_at, CartItem.date, CartItem.id)
        ).all()
    )


def child_ids(session: Session, account_id: str) -> list[str]:
    return sorted(
        set(session.scalars(select(CartItem.child_id).where(CartItem.account_id == account_id)).all())
    )


def view(
    session: Session, account_id: str, children: dict[str, ChildInfo | None], now: dt.datetime
) -> dict[str, Any]:
    """{"items": [...]}, each with the day's current state for its child (a child the account may
    no longer act for shows as not eligible)."""
    rows = items(session, account_id)
    by_child: dict[str, list[CartItem]] = defaultdict(list)
    for row in rows:
        by_child[row.child_id].append(row)
    states: dict[str, str] = {}
    for child_id, child_items in by_child.items():
        activity_ids = {item.activity_id for item in child_items}
        activities = session.scalars(select(Activity).where(Activity.id.in_(activity_ids))).all()
        first = min(item.date for item in child_items)
        last = max(item.date for item in child_items)
        child = children.get(child_id)
        facts = DayFacts(session, child, activities, first, last)
        for item in child_items:
            states[item.id] = facts.describe(item.activity_id, item.date, now)["state"]
    return {"items": [views.cart_item(row, states[row.id]) for row in rows]}

"""Who may do what in booking. Authorization is decided here, from the caller the gateway put in the
context, and from communes (which owns families and children) over RPC:
- staff of a commune (`agent:<commune_id>` role, or platform admin): manage its activities and
  closures; anyone else gets NotFound (never a hint that the commune or activity exists);
- a parent sees the activities of the communes its account is linked to (communes'
  `list_memberships`, answered for the caller in context);
- calendars, carts and bookings of a child: whoever communes' `check_child_access` allows (a parent
  linked to the child's family, or an agent of its commune); anyone else gets NotFound;
- a roster's names: communes' `roster_children`, one call for all the day's children.
The RPC helpers here take the communes proxy; the rules elsewhere take the ChildInfo they return."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable
from dataclasses import dataclass, field
from typing import Any

from services.common.context import (  # noqa: F401 - the shared rules, re-exported for callers
    ADMIN,
    AGENT,
    Caller,
    require_account,
    staff_role,
)
from services.common.errors import NotFound


@dataclass(frozen=True)
class ChildInfo:
    """What booking knows of a child, from communes' check_child_access (never stored)."""

    id: str
    family_id: str | None
    commune_id: str
    birth_date: dt.date | None = None
    class_name: str | None = None
    # for the emails events enable (never the last name); a label, not part of the child's identity
    first_name: str | None = field(default=None, compare=False)


def is_staff(caller: Caller, commune_id: Any) -> bool:
    return caller.is_admin or (isinstance(commune_id, str) and caller.is_agent_of(commune_id))


def child_info(child_id: str, answer: Any) -> ChildInfo | None:
    """A check_child_access answer as a ChildInfo; None when access is refused."""
    if not isinstance(answer, dict) or answer.get("allowed") is not True or not answer.get("commune_id"):
        return None
    child = answer.get("child") or {}
    birth = child.get("birth_date")
    return ChildInfo(
        id=child_id,
        family_id=answer.get("family_id"),
        commune_id=answer["commune_id"],
        birth_date=dt.date.fromisoformat(birth) if isinstance(birth, str) else None,
        class_name=child.get("class_name"),
        first_name=child.get("first_name"),
    )


def _checked(communes: Any, cache: Any, caller: Caller, account_id: str, child_id: str) -> ChildInfo | None:
    """communes' answer for this caller and child; allowed answers are kept in `cache` (a TtlCache,
    CHILD_ACCESS_CACHE_SECONDS) so that a parent's calendar and cart do not ask communes on every
    request. Refusals are never cached: a new link works at once. Access is never withdrawn in
    communes (no unlinking); a child's class or birth date edited by an agent shows within the TTL."""
    key = (account_id, tuple(caller.roles), child_id)
    cached = cache.get(key) if cache is not None else None
    if cached is not None:
        return cached
    info = child_info(child_id, communes.check_child_access(account_id, child_id))
    if info is not None and cache is not None:
        cache.put(key, info)
    return info


def child(communes: Any, caller: Caller, child_id: Any, cache: Any = None) -> ChildInfo:
    """The child, if the caller may act for it (NotFound otherwise)."""
    account_id = require_account(caller)
    if not isinstance(child_id, str) or not 0 < len(child_id) <= 64:
        raise NotFound()
    info = _checked(communes, cache, caller, account_id, child_id)
    if info is None:
        raise NotFound()
    return info


def children(
    communes: Any, caller: Caller, child_ids: Iterable[str], cache: Any = None
) -> dict[str, ChildInfo | None]:
    """Each child's info, or None where the caller lost access (e.g. unlinked since)."""
    account_id = require_account(caller)
    return {
        child_id: _checked(communes, cache, caller, account_id, child_id)
        for child_id in sorted(set(child_ids))
    }


def may_list_activities(communes: Any, caller: Caller, commune_id: Any) -> bool:
    """Staff of the commune, or a parent linked to one of its families."""
    require_account(caller)
    if is_staff(caller, commune_id):
        return True
    if not isinstance(commune_id, str):
        return False
    return any(entry.get("id") == commune_id for entry in communes.list_memberships() or ())


def staff_child(communes: Any, caller: Caller, commune_id: Any, child_id: Any) -> tuple[str, ChildInfo]:
    """(role, child) for an agent (or admin) acting for a family of this commune: the child must
    belong to the commune (NotFound otherwise, whether it exists or not). Agents are answered by
    communes like parents (with the child's first name, class and birth date); an admin is not
    recorded as an agent there, so it gets the child's commune and family only (no name)."""
    role = staff_role(caller, commune_id)
    if not isinstance(child_id, str) or not 0 < len(child_id) <= 64:
        raise NotFound()
    answer = communes.check_child_access(caller.account_id, child_id)
    info = child_info(child_id, answer)
    if info is None and role == ADMIN and isinstance(answer, dict) and answer.get("commune_id"):
        info = ChildInfo(id=child_id, family_id=answer.get("family_id"), commune_id=answer["commune_id"])
    if info is None or info.commune_id != commune_id:
        raise NotFound()
    return role, info


ROSTER_BATCH = 1000  # communes' roster_children takes at most this many ids per call


def roster_children(communes: Any, commune_id: str, child_ids: Iterable[str]) -> dict[str, dict[str, Any]]:
    """Names, class and school of these children of the commune, in ONE call to communes'
    `roster_children` (answered for the agent or admin in the context the RPC carries; audited
    there); a roster beyond ROSTER_BATCH children takes one call per batch. Children communes does
    not return (another commune's, deleted since) are absent; no children, no call."""
    wanted = sorted(set(child_ids))
    names: dict[str, dict[str, Any]] = {}
    for start in range(0, len(wanted), ROSTER_BATCH):
        answer = communes.roster_children(commune_id, wanted[start : start + ROSTER_BATCH])
        if isinstance(answer, dict):
            names.update((k, v) for k, v in answer.items() if isinstance(v, dict))
    return names

"""Who may do what in billing, and the questions asked of communes over RPC (outside transactions):
- staff of a commune (agent role or platform admin, from the token's roles): tariffs, payment
  settings, refunds, its payments; anyone else gets NotFound;
- a parent: quotes and payments for the children communes' `check_child_access` lets it act for
  (answered for the account in context), its own payments, its family account (`list_memberships`);
- the quotient familial: communes' `get_family_billing_profile`, which answers internal callers
  only: it is asked through `InternalRpc`, a proxy that does not pass the caller on."""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from services.common.context import ACCOUNT_KEY, CLIENT_IP_KEY, ROLES_KEY, SESSION_KEY, Caller
from services.common.errors import NotFound
from services.common.rpc import ServiceRpc

_CALLER_KEYS = (ACCOUNT_KEY, ROLES_KEY, SESSION_KEY, CLIENT_IP_KEY)


class _WithoutCaller:
    """A worker context seen by an outgoing RPC without the caller's identity."""

    def __init__(self, worker_ctx: Any) -> None:
        self._worker_ctx = worker_ctx

    @property
    def container(self) -> Any:
        return self._worker_ctx.container

    @property
    def context_data(self) -> dict[str, Any]:
        data = dict(self._worker_ctx.context_data)
        for key in _CALLER_KEYS:
            data.pop(key, None)
        return data


class InternalRpc(ServiceRpc):
    """RPCs billing makes as itself (an internal caller), whoever called billing."""

    def get_dependency(self, worker_ctx: Any) -> Any:
        return super().get_dependency(_WithoutCaller(worker_ctx))


def is_staff(caller: Caller, commune_id: Any) -> bool:
    return bool(caller.account_id) and (
        caller.is_admin or (isinstance(commune_id, str) and caller.is_agent_of(commune_id))
    )


def children(communes: Any, account_id: str, child_ids: Iterable[str]) -> dict[str, tuple[str, str]]:
    """child_id -> (commune_id, family_id) for the children this account may act for."""
    found: dict[str, tuple[str, str]] = {}
    for child_id in sorted({c for c in child_ids if isinstance(c, str) and 0 < len(c) <= 64}):
        answer = communes.check_child_access(account_id, child_id)
        if (
            isinstance(answer, dict)
            and answer.get("allowed") is True
            and answer.get("commune_id")
            and answer.get("family_id")
        ):
            found[child_id] = (answer["commune_id"], answer["family_id"])
    return found


def quotients(internal_communes: Any, family_ids: Iterable[str]) -> dict[str, int | None]:
    """family_id -> quotient familial (None: unknown, priced at the highest band)."""
    found: dict[str, int | None] = {}
    for family_id in sorted(set(family_ids)):
        profile = internal_communes.get_family_billing_profile(family_id)
        value = profile.get("quotient_familial") if isinstance(profile, dict) else None
        found[family_id] = value if isinstance(value, int) and not isinstance(value, bool) else None
    return found


def family_in(communes: Any, commune_id: Any) -> str:
    """The caller's family in this commune (communes' list_memberships); NotFound if none."""
    if not isinstance(commune_id, str):
        raise NotFound()
    for entry in communes.list_memberships() or ():
        if isinstance(entry, dict) and entry.get("id") == commune_id:
            family = entry.get("family") or {}
            if isinstance(family.get("id"), str):
                return family["id"]
    raise NotFound()

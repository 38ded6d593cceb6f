"""A short-lived cache of each account's commune memberships, for `/api/v1/me` (asked on every page
of the portal). It is dropped for an account as soon as communes says that account joined a family
(the `family_linked` event reaches every gateway instance), and at once by the instance that served
the redemption; other changes (a renamed family) show within MEMBERSHIP_CACHE_SECONDS."""

from __future__ import annotations

import time
from typing import Any

from nameko.events import BROADCAST, event_handler
from nameko.extensions import DependencyProvider

MAX_ENTRIES = 50_000


class MembershipCache(DependencyProvider):
    def setup(self) -> None:
        self.ttl = float(self.container.config.get("MEMBERSHIP_CACHE_SECONDS", 30) or 0)
        self.entries: dict[str, tuple[float, Any]] = {}

    def get_dependency(self, worker_ctx: Any) -> MembershipCache:
        return self

    def get(self, account_id: str) -> Any | None:
        entry = self.entries.get(account_id)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, account_id: str, memberships: Any) -> None:
        if self.ttl <= 0:
            return
        if len(self.entries) >= MAX_ENTRIES:
            self.entries.clear()  # crude but bounded: memory stays small under any load
        self.entries[account_id] = (time.monotonic() + self.ttl, memberships)

    def drop(self, account_id: str) -> None:
        self.entries.pop(account_id, None)


class MembershipEvents:
    """Every gateway instance hears of new links (broadcast: one queue per instance)."""

    @event_handler("communes", "family_linked", handler_type=BROADCAST, reliable_delivery=False)
    def on_family_linked(self, payload: dict[str, Any]) -> None:
        account_id = payload.get("account_id")
        if isinstance(account_id, str):
            self.membership_cache.drop(account_id)

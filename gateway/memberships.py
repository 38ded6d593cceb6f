"""A short-lived cache of each account's commune memberships, for `/api/v1/me` (asked on every page
of the portal). It is dropped for an account as soon as communes says that account joined a family
(the `family_linked` event reaches every gateway instance), and at once by the instance that served
the redemption; other changes (a renamed family) show within MEMBERSHIP_CACHE_SECONDS."""

from __future__ import annotations

from typing import Any

from nameko.events import BROADCAST, event_handler

from services.common.ttl_cache import TtlCache


class MembershipCache(TtlCache):
    """account id -> its memberships, for MEMBERSHIP_CACHE_SECONDS."""

    def __init__(self) -> None:
        super().__init__("MEMBERSHIP_CACHE_SECONDS", 30)


class MembershipEvents:
    """Every gateway instance hears of new links (broadcast: one queue per instance)."""

    @event_handler("communes", "family_linked", handler_type=BROADCAST, reliable_delivery=False)
    def on_family_linked(self, payload: dict[str, Any]) -> None:
        account_id = payload.get("account_id")
        if isinstance(account_id, str):
            self.membership_cache.drop(account_id)

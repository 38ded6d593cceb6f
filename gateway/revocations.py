"""Revoked login sessions, so that every authenticated route refuses their access tokens at once (not
only `/api/v1/me`, which asks identity). Access tokens are checked here without an RPC per request.

Each gateway process keeps the ids of sessions revoked within the last access-token lifetime, each
until its `until` (after which none of its tokens can be valid anyway). The list is loaded once, on
first use, from `identity.recent_revocations()` (what was revoked before this process started), then
kept current by identity's `session_revoked` event (broadcast: every instance hears it). If identity
cannot answer that first load, the request gets 503 and the next one tries again: a gateway that does
not know what was revoked does not accept tokens."""

from __future__ import annotations

import datetime as dt
import heapq
import logging
import time
from collections.abc import Callable
from typing import Any

import eventlet.semaphore
from nameko.events import BROADCAST, event_handler
from nameko.extensions import DependencyProvider

from services.common.errors import ServiceUnavailable
from services.identity.exceptions import SessionRevoked

log = logging.getLogger(__name__)

MAX_ENTRIES = 200_000
DEFAULT_ACCESS_TTL_SECONDS = 600  # identity's ACCESS_TOKEN_TTL default
# tokens are accepted up to 30 s past `exp` (services/identity/keys.py) and clocks drift a little
EXPIRY_MARGIN_SECONDS = 60.0


def _epoch(value: Any) -> float | None:
    """`until` as a POSIX time: ISO 8601 (what identity sends) or a number; None if unreadable."""
    if isinstance(value, int | float) and not isinstance(value, bool):
        return float(value)
    if isinstance(value, str) and len(value) <= 64:
        try:
            parsed = dt.datetime.fromisoformat(value)
        except ValueError:
            return None
        return (parsed if parsed.tzinfo else parsed.replace(tzinfo=dt.UTC)).timestamp()
    return None


class RevocationList(DependencyProvider):
    """Per process (like MembershipCache): session id -> the time until which it stays refused."""

    def setup(self) -> None:
        configured = self.container.config.get("ACCESS_TOKEN_TTL")
        self.access_ttl = float(configured) if configured not in (None, "") else DEFAULT_ACCESS_TTL_SECONDS
        self.reset()

    def reset(self) -> None:
        self.entries: dict[str, float] = {}
        self._expiries: list[tuple[float, str]] = []  # a heap, for pruning in expiry order
        self.loaded = False
        self._loading = eventlet.semaphore.Semaphore(1)

    def get_dependency(self, worker_ctx: Any) -> RevocationList:
        return self

    def add(self, session_id: Any, until: Any) -> None:
        """Refuse `session_id` until `until` (ISO 8601 or POSIX seconds). Bounded: when full, the
        entries closest to expiry go first."""
        expires = _epoch(until)
        if not isinstance(session_id, str) or not session_id or len(session_id) > 64 or expires is None:
            return
        expires += EXPIRY_MARGIN_SECONDS
        now = time.time()
        self.prune(now)
        if expires <= now or self.entries.get(session_id, 0.0) >= expires:
            return
        while len(self.entries) >= MAX_ENTRIES and self._expiries:
            self._pop()
        self.entries[session_id] = expires
        heapq.heappush(self._expiries, (expires, session_id))

    def revoke_now(self, session_id: str | None) -> None:
        """This instance revoked it (logout): refuse it at once, before identity's event arrives (which
        carries identity's own `until`; the later of the two wins)."""
        self.add(session_id, time.time() + self.access_ttl)

    def prune(self, now: float | None = None) -> None:
        now = time.time() if now is None else now
        while self._expiries and self._expiries[0][0] <= now:
            self._pop()

    def _pop(self) -> None:
        expires, session_id = heapq.heappop(self._expiries)
        if self.entries.get(session_id) == expires:  # else superseded by a later `until`
            del self.entries[session_id]

    def is_revoked(self, session_id: str | None) -> bool:
        if not session_id:
            return False
        expires = self.entries.get(session_id)
        if expires is None:
            return False
        if expires <= time.time():
            self.prune()
            return False
        return True

    def ensure_loaded(self, fetch: Callable[[], list[dict[str, Any]]]) -> None:
        """Load what identity revoked recently, once per process (one load at a time: a burst of first
        requests waits for it). Raises ServiceUnavailable if identity cannot answer: retried next time."""
        if self.loaded:
            return
        with self._loading:
            if self.loaded:
                return
            try:
                revoked = fetch()
            except Exception as exc:  # noqa: BLE001 - whatever the cause, tokens cannot be checked
                log.warning("cannot load the recent session revocations: %r", exc)
                raise ServiceUnavailable(details={"service": "identity"}) from None
            for item in revoked or ():
                if isinstance(item, dict):
                    self.add(item.get("session_id"), item.get("until"))
            self.loaded = True

    def check(self, session_id: str | None, fetch: Callable[[], list[dict[str, Any]]]) -> None:
        """Raise SessionRevoked (401) if the session was revoked."""
        self.ensure_loaded(fetch)
        if self.is_revoked(session_id):
            raise SessionRevoked()


class RevocationEvents:
    """Every gateway instance hears of revoked sessions (broadcast: one queue per instance)."""

    @event_handler("identity", "session_revoked", handler_type=BROADCAST, reliable_delivery=False)
    def on_session_revoked(self, payload: dict[str, Any]) -> None:
        if isinstance(payload, dict):
            self.revocations.add(payload.get("session_id"), payload.get("until"))

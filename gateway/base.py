"""What every route group shares: dependencies and the request helpers."""

from __future__ import annotations

from typing import Any

from nameko.dependency_providers import Config
from werkzeug.wrappers import Request

from gateway.auth import Authenticator
from gateway.memberships import MembershipCache
from gateway.revocations import RevocationList
from services.common.context import Caller, ContextWriter
from services.common.rpc import ServiceRpc


def client_ip(request: Request, trusted_proxies: set[str]) -> str | None:
    """The peer address; behind a trusted proxy, the right-most X-Forwarded-For hop it added."""
    address = request.remote_addr
    if address in trusted_proxies:
        hops = [h.strip() for h in request.headers.get("X-Forwarded-For", "").split(",") if h.strip()]
        for hop in reversed(hops):
            if hop not in trusted_proxies:
                return hop
    return address


class GatewayBase:
    config = Config()
    identity = ServiceRpc("identity")
    notify = ServiceRpc("notify")
    communes = ServiceRpc("communes")
    booking = ServiceRpc("booking")
    billing = ServiceRpc("billing")
    authenticator = Authenticator()
    attach_caller = ContextWriter()
    membership_cache = MembershipCache()
    revocations = RevocationList()

    def memberships(self, account_id: str) -> Any:
        """The caller's communes (cached briefly, see gateway/memberships.py)."""
        cached = self.membership_cache.get(account_id)
        if cached is None:
            cached = self.communes.list_memberships()
            self.membership_cache.put(account_id, cached)
        return cached

    def client_ip(self, request: Request) -> str | None:
        trusted = {p.strip() for p in str(self.config.get("TRUSTED_PROXIES") or "").split(",") if p.strip()}
        return client_ip(request, trusted)

    def anonymous(self, request: Request) -> Caller:
        """An unauthenticated caller: only the client address travels to the services."""
        caller = Caller(client_ip=self.client_ip(request))
        self.attach_caller(caller)
        return caller

    def authenticate(self, request: Request) -> Caller:
        """Verify the Bearer token and that its session is not revoked; pass the caller's identity to
        the services it calls."""
        verifier = self.authenticator(self.client_ip(request))
        caller = verifier.caller(request.headers.get("Authorization"), self.identity.jwks)
        # a revoked session (logout, reset, reuse) is refused on every route, not only /me; checked
        # before attaching the caller, so the first load asks identity as an internal caller
        self.revocations.check(caller.session_id, self.identity.recent_revocations)
        self.attach_caller(caller)
        return caller

    def public_url(self) -> str:
        return str(self.config.get("PUBLIC_URL") or "http://localhost:8000").rstrip("/")

    def setting(self, key: str, default: Any) -> Any:
        value = self.config.get(key)
        return default if value in (None, "") else value

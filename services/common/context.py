"""The caller's identity, carried in nameko context data from the gateway to the owning service.

Only the gateway faces the Internet and it builds this from a verified access token; context data
is never filled from client headers (nameko's WebServer gives an empty context).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from nameko.extensions import DependencyProvider

from services.common.errors import Forbidden, NotFound, Unauthenticated

ADMIN = "admin"
AGENT = "agent"

ACCOUNT_KEY = "account_id"
ROLES_KEY = "roles"
SESSION_KEY = "session_id"
CLIENT_IP_KEY = "client_ip"


@dataclass(frozen=True)
class Caller:
    account_id: str | None = None
    roles: tuple[str, ...] = field(default_factory=tuple)
    session_id: str | None = None
    client_ip: str | None = None

    @property
    def is_admin(self) -> bool:
        return "admin" in self.roles

    def is_agent_of(self, commune_id: str) -> bool:
        return f"agent:{commune_id}" in self.roles

    def as_context(self) -> dict[str, Any]:
        data = {
            ACCOUNT_KEY: self.account_id,
            ROLES_KEY: list(self.roles),
            SESSION_KEY: self.session_id,
            CLIENT_IP_KEY: self.client_ip,
        }
        return {key: value for key, value in data.items() if value is not None}


def require_account(caller: Caller) -> str:
    if not caller.account_id:
        raise Unauthenticated()
    return caller.account_id


def staff_role(caller: Caller, commune_id: Any) -> str:
    """`admin` or `agent` if the caller may act inside this commune; NotFound otherwise (never a
    hint that the commune's data exists)."""
    require_account(caller)
    if caller.is_admin:
        return ADMIN
    if isinstance(commune_id, str) and caller.is_agent_of(commune_id):
        return AGENT
    raise NotFound()


def require_internal(caller: Caller, *, admin_too: bool = False) -> None:
    """RPCs for other services: they call with no account in context (the gateway always attaches
    the caller of a public request). `admin_too` also lets platform admins through."""
    if caller.account_id is None or (admin_too and caller.is_admin):
        return
    raise Forbidden()


def caller_from_context(data: dict[str, Any]) -> Caller:
    return Caller(
        account_id=data.get(ACCOUNT_KEY),
        roles=tuple(data.get(ROLES_KEY) or ()),
        session_id=data.get(SESSION_KEY),
        client_ip=data.get(CLIENT_IP_KEY),
    )


class CallerProvider(DependencyProvider):
    """Inject `self.caller`: who is calling this RPC (empty for internal callers)."""

    def get_dependency(self, worker_ctx: Any) -> Caller:
        return caller_from_context(worker_ctx.data)


class ContextWriter(DependencyProvider):
    """Gateway side: lets a request handler attach the verified caller to its outgoing RPCs."""

    def get_dependency(self, worker_ctx: Any) -> Any:
        def attach(caller: Caller) -> None:
            worker_ctx.data.update(caller.as_context())

        return attach

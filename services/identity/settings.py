"""Identity's settings, read once from the service config (`${VAR:default}` in config.yml)."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any


@dataclass(frozen=True)
class IdentitySettings:
    issuer: str = "http://localhost:8000"
    public_url: str = "http://localhost:8000"
    access_ttl: dt.timedelta = dt.timedelta(minutes=10)
    refresh_ttl: dt.timedelta = dt.timedelta(days=30)
    verify_ttl: dt.timedelta = dt.timedelta(hours=48)
    reset_ttl: dt.timedelta = dt.timedelta(hours=1)
    sso_session_ttl: dt.timedelta = dt.timedelta(hours=12)
    audience: str = "portal-api"

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> IdentitySettings:
        def seconds(key: str, default: dt.timedelta) -> dt.timedelta:
            value = config.get(key)
            return dt.timedelta(seconds=int(value)) if value not in (None, "") else default

        base = cls()
        public_url = str(config.get("PUBLIC_URL") or base.public_url).rstrip("/")
        return cls(
            issuer=str(config.get("OIDC_ISSUER") or public_url).rstrip("/"),
            public_url=public_url,
            access_ttl=seconds("ACCESS_TOKEN_TTL", base.access_ttl),
            refresh_ttl=seconds("REFRESH_TOKEN_TTL", base.refresh_ttl),
            verify_ttl=seconds("VERIFY_TOKEN_TTL", base.verify_ttl),
            reset_ttl=seconds("RESET_TOKEN_TTL", base.reset_ttl),
            sso_session_ttl=seconds("SSO_SESSION_TTL", base.sso_session_ttl),
        )

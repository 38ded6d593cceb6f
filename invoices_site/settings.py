"""The invoices site's settings, read once from its config.yml (see the comments there)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from services.common import urls
from services.common.config import is_production, required_secret


def url_origin(url: str) -> str | None:
    """scheme://host:port of an http(s) URL (default port made explicit), None for anything else."""
    found = urls.origin(url)
    return None if found is None else f"{found[0]}://{found[1]}:{found[2]}"


LOCAL_SESSION_SECRET = "local-invoices-session-secret"  # noqa: S105 (the local default, refused in production)


@dataclass(frozen=True)
class SiteSettings:
    public_url: str = "http://localhost:8001"
    gateway_url: str = "http://localhost:8000"
    issuer: str = "http://localhost:8000"
    gateway_public_url: str = "http://localhost:8000"  # PUBLIC_URL: where browsers reach the gateway
    client_id: str = "invoices"
    client_secret: str | None = field(default=None, repr=False)
    session_secret: str = field(default=LOCAL_SESSION_SECRET, repr=False)
    session_max_age: int = 43200
    api_timeout: float = 10.0
    source_url: str | None = None

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> SiteSettings:
        public_url = str(config.get("INVOICES_PUBLIC_URL") or cls.public_url).rstrip("/")
        issuer = str(config.get("OIDC_ISSUER") or config.get("PUBLIC_URL") or cls.issuer).rstrip("/")
        if is_production(config) and not (
            public_url.startswith("https://") and issuer.startswith("https://")
        ):
            raise RuntimeError("INVOICES_PUBLIC_URL and the OIDC issuer must be https URLs in production")
        return cls(
            public_url=public_url,
            gateway_url=str(config.get("GATEWAY_URL") or cls.gateway_url).rstrip("/"),
            issuer=issuer,
            gateway_public_url=str(config.get("PUBLIC_URL") or cls.gateway_public_url).rstrip("/"),
            client_id=str(config.get("OIDC_CLIENT_ID") or cls.client_id),
            client_secret=str(config.get("OIDC_CLIENT_SECRET") or "") or None,
            session_secret=required_secret(config, "SESSION_SECRET", LOCAL_SESSION_SECRET),
            session_max_age=int(config.get("SESSION_MAX_AGE") or cls.session_max_age),
            api_timeout=float(config.get("API_TIMEOUT_SECONDS") or cls.api_timeout),
            source_url=str(config.get("SOURCE_URL") or "") or None,
        )

    @property
    def redirect_uri(self) -> str:
        return self.public_url + "/auth/callback"

    @property
    def post_logout_redirect_uri(self) -> str:
        return self.public_url + "/"

    @property
    def gateway_origins(self) -> frozenset[str]:
        """The origins (scheme://host:port) of the gateway as browsers and this site reach it."""
        return frozenset(
            origin
            for origin in map(url_origin, (self.gateway_public_url, self.issuer, self.gateway_url))
            if origin is not None
        )

    @property
    def secure_cookies(self) -> bool:
        return self.public_url.startswith("https://")

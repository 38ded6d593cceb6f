"""The OpenID provider's registered clients, from configuration: the portal and the invoices site.

Both are first-party. A client without a secret is public (token endpoint auth method `none`); a
secret makes it confidential (`client_secret_basic` or `client_secret_post`). PKCE (S256) is required
of every client either way. Redirect URIs are matched exactly, character for character.
"""

from __future__ import annotations

import secrets
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from authlib.oauth2.rfc6749 import ClientMixin, list_to_scope, scope_to_list

from services.common.config import is_production

SCOPES = ("openid", "email", "profile")
PUBLIC_AUTH_METHODS = ("none",)
SECRET_AUTH_METHODS = ("client_secret_basic", "client_secret_post")

# client id -> (redirect URIs key, post-logout redirect URIs key, optional client secret key)
CLIENT_KEYS: dict[str, tuple[str, str, str]] = {
    "portal": ("OIDC_PORTAL_REDIRECT_URIS", "OIDC_PORTAL_POST_LOGOUT_URIS", "OIDC_PORTAL_CLIENT_SECRET"),
    "invoices": (
        "OIDC_INVOICES_REDIRECT_URIS",
        "OIDC_INVOICES_POST_LOGOUT_URIS",
        "OIDC_INVOICES_CLIENT_SECRET",
    ),
}


@dataclass(frozen=True)
class OidcClient(ClientMixin):
    client_id: str
    redirect_uris: tuple[str, ...]
    post_logout_redirect_uris: tuple[str, ...] = ()
    client_secret: str | None = field(default=None, repr=False)
    scope: str = " ".join(SCOPES)

    @property
    def is_public(self) -> bool:
        return not self.client_secret

    @property
    def token_endpoint_auth_methods(self) -> tuple[str, ...]:
        return PUBLIC_AUTH_METHODS if self.is_public else SECRET_AUTH_METHODS

    @property
    def client_metadata(self) -> dict[str, Any]:
        """What Authlib's RP-initiated logout endpoint reads."""
        return {"post_logout_redirect_uris": list(self.post_logout_redirect_uris)}

    @property
    def origins(self) -> frozenset[str]:
        """Origins of the redirect URIs: the browsers' origins allowed to call the token endpoint."""
        return frozenset(origin_of(uri) for uri in self.redirect_uris)

    # --- authlib ClientMixin ---------------------------------------------------------------------

    def get_client_id(self) -> str:
        return self.client_id

    def get_default_redirect_uri(self) -> str | None:
        return None  # OpenID Connect requires redirect_uri in every authorization request

    def get_allowed_scope(self, scope: str | None) -> str:
        allowed = set(scope_to_list(self.scope))
        return list_to_scope([s for s in scope_to_list(scope or "") if s in allowed])

    def check_redirect_uri(self, redirect_uri: str) -> bool:
        return redirect_uri_matches(redirect_uri, self.redirect_uris)

    def check_post_logout_redirect_uri(self, uri: str) -> bool:
        return redirect_uri_matches(uri, self.post_logout_redirect_uris)

    def check_client_secret(self, client_secret: str) -> bool:
        if not self.client_secret or not isinstance(client_secret, str):
            return False
        return secrets.compare_digest(self.client_secret.encode(), client_secret.encode())

    def check_endpoint_auth_method(self, method: str, endpoint: str) -> bool:
        if endpoint == "token":
            return method in self.token_endpoint_auth_methods
        return True

    def check_response_type(self, response_type: str) -> bool:
        return response_type == "code"

    def check_grant_type(self, grant_type: str) -> bool:
        return grant_type == "authorization_code"


def redirect_uri_matches(candidate: object, registered: tuple[str, ...]) -> bool:
    """Exact match against a registered URI: no prefix, case, trailing-slash or query leniency."""
    return isinstance(candidate, str) and any(
        secrets.compare_digest(candidate.encode(), uri.encode()) for uri in registered
    )


def origin_of(uri: str) -> str:
    parts = urlsplit(uri)
    return f"{parts.scheme}://{parts.netloc}"


def split_uris(value: object) -> tuple[str, ...]:
    """A comma-separated config value as a tuple of URIs (blanks dropped)."""
    if value is None:
        return ()
    items = value if isinstance(value, list | tuple) else str(value).split(",")
    return tuple(str(item).strip() for item in items if str(item).strip())


def check_uri(uri: str, production: bool) -> None:
    parts = urlsplit(uri)
    if parts.scheme not in ("http", "https") or not parts.netloc or parts.fragment:
        raise RuntimeError(f"invalid OIDC redirect URI {uri!r}: absolute http(s) URI without fragment")
    if production and parts.scheme != "https":
        raise RuntimeError(f"OIDC redirect URI {uri!r} must use https in production")


def load_clients(config: dict[str, Any]) -> dict[str, OidcClient]:
    """The registered clients, by client id, from the identity service's config."""
    production = is_production(config)
    clients = {}
    for client_id, (redirects_key, logout_key, secret_key) in CLIENT_KEYS.items():
        redirect_uris = split_uris(config.get(redirects_key))
        if not redirect_uris:
            continue  # a client without redirect URIs is not registered
        post_logout = split_uris(config.get(logout_key))
        for uri in redirect_uris + post_logout:
            check_uri(uri, production)
        secret = str(config.get(secret_key) or "") or None
        clients[client_id] = OidcClient(
            client_id=client_id,
            redirect_uris=redirect_uris,
            post_logout_redirect_uris=post_logout,
            client_secret=secret,
        )
    return clients

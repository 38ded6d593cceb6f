"""The identity provider seen from this server: discovery, JWKS and the token endpoint, fetched
through the gateway at GATEWAY_URL (the browser uses the public issuer URLs, this server may reach
the gateway by another address, e.g. inside a cluster). Discovery and keys are cached briefly; an
unknown key id refetches the keys once (the provider rotated its key)."""

from __future__ import annotations

import threading
import time
from typing import Any
from urllib.parse import urlsplit

import requests
from joserfc.jwk import KeySet

from invoices_site.settings import SiteSettings

DISCOVERY_PATH = "/.well-known/openid-configuration"
CACHE_SECONDS = 300


class ProviderUnavailable(Exception):
    """The provider did not answer, or answered something unusable (details for the log only)."""


class TokenRefused(Exception):
    """The token endpoint refused the code (expired, spent, wrong verifier)."""


class ProviderClient:
    def __init__(self, settings: SiteSettings, http: requests.Session) -> None:
        self.settings = settings
        self.http = http
        self._lock = threading.Lock()
        self._discovery: tuple[float, dict[str, Any]] | None = None
        self._keys: tuple[float, KeySet] | None = None

    def server_url(self, public_endpoint: str) -> str:
        """A discovered endpoint, reached through GATEWAY_URL from this server."""
        parts = urlsplit(public_endpoint)
        return self.settings.gateway_url + parts.path + (f"?{parts.query}" if parts.query else "")

    def _get_json(self, url: str) -> dict[str, Any]:
        try:
            response = self.http.get(url, timeout=self.settings.api_timeout)
        except requests.RequestException as exc:
            raise ProviderUnavailable(type(exc).__name__) from None
        if response.status_code != 200:
            raise ProviderUnavailable(f"HTTP {response.status_code} from {urlsplit(url).path}")
        try:
            body = response.json()
        except ValueError:
            raise ProviderUnavailable("not JSON") from None
        if not isinstance(body, dict):
            raise ProviderUnavailable("not a JSON object")
        return body

    def discovery(self) -> dict[str, Any]:
        with self._lock:
            cached = self._discovery
        if cached and time.monotonic() - cached[0] < CACHE_SECONDS:
            return cached[1]
        document = self._get_json(self.settings.gateway_url + DISCOVERY_PATH)
        # a document for another issuer would send the browser, and our checks, elsewhere
        if document.get("issuer") != self.settings.issuer:
            raise ProviderUnavailable("discovery issuer differs from the configured issuer")
        for name in ("authorization_endpoint", "token_endpoint", "jwks_uri", "end_session_endpoint"):
            if not isinstance(document.get(name), str):
                raise ProviderUnavailable(f"discovery lacks {name}")
        with self._lock:
            self._discovery = (time.monotonic(), document)
        return document

    def key_set(self, kid: str | None = None) -> KeySet:
        with self._lock:
            cached = self._keys
        fresh = cached and time.monotonic() - cached[0] < CACHE_SECONDS
        if cached and fresh and (kid is None or _has_kid(cached[1], kid)):
            return cached[1]
        jwks = self._get_json(self.server_url(self.discovery()["jwks_uri"]))
        try:
            keys = KeySet.import_key_set(jwks)
        except Exception:  # noqa: BLE001 - any malformed JWKS is the provider's failure
            raise ProviderUnavailable("malformed JWKS") from None
        with self._lock:
            self._keys = (time.monotonic(), keys)
        return keys

    def exchange(self, form: dict[str, str]) -> dict[str, Any]:
        """Spend the authorization code; the token response, or TokenRefused / ProviderUnavailable."""
        url = self.server_url(self.discovery()["token_endpoint"])
        secret = self.settings.client_secret
        auth = (self.settings.client_id, secret) if secret else None
        try:
            response = self.http.post(url, data=form, auth=auth, timeout=self.settings.api_timeout)
        except requests.RequestException as exc:
            raise ProviderUnavailable(type(exc).__name__) from None
        if response.status_code in (400, 401):
            raise TokenRefused(_oauth_error(response))
        if response.status_code != 200:
            raise ProviderUnavailable(f"token endpoint HTTP {response.status_code}")
        try:
            tokens = response.json()
        except ValueError:
            raise ProviderUnavailable("token response not JSON") from None
        if not isinstance(tokens, dict) or not tokens.get("access_token") or not tokens.get("id_token"):
            raise ProviderUnavailable("token response without access_token or id_token")
        if str(tokens.get("token_type", "")).lower() != "bearer":
            raise ProviderUnavailable("token type is not Bearer")
        return tokens


def _has_kid(keys: KeySet, kid: str) -> bool:
    return any(key.kid == kid for key in keys.keys)


def _oauth_error(response: requests.Response) -> str:
    try:
        error = response.json().get("error")
    except (ValueError, AttributeError):
        error = None
    return str(error or f"HTTP {response.status_code}")[:60]

"""The gateway's invoice API, called from this server with the parent's access token (a Bearer
token issued by the provider's token endpoint, which the gateway accepts like the portal's)."""

from __future__ import annotations

import logging
import re
from typing import Any

import requests

from invoices_site.settings import SiteSettings

log = logging.getLogger(__name__)

INVOICES = "/api/v1/invoices"
ID_PATTERN = re.compile(r"^[A-Za-z0-9-]{1,64}$")
UNAVAILABLE = "Le service des factures ne répond pas pour le moment. Réessayez dans quelques minutes."
UNEXPECTED = "Une erreur inattendue s'est produite. Réessayez plus tard."


class NeedsLogin(Exception):
    """The access token was refused (expired or revoked): sign in again through the provider."""


class ApiError(Exception):
    """An answer to show the parent: HTTP status and a French message."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(code)
        self.status = status
        self.code = code
        self.message = message


def valid_id(value: str) -> bool:
    return bool(ID_PATTERN.match(value))


class InvoiceApi:
    def __init__(self, settings: SiteSettings, http: requests.Session, access_token: str) -> None:
        self.settings = settings
        self.http = http
        self.headers = {"Authorization": f"Bearer {access_token}", "Accept-Language": "fr"}

    def _call(self, method: str, path: str, **kwargs: Any) -> requests.Response:
        kwargs.setdefault("timeout", self.settings.api_timeout)
        headers = {**self.headers, **kwargs.pop("headers", {})}
        try:
            response = self.http.request(method, self.settings.gateway_url + path, headers=headers, **kwargs)
        except requests.RequestException as exc:
            log.warning("gateway unreachable for %s %s: %s", method, path, type(exc).__name__)
            raise ApiError(503, "UNAVAILABLE", UNAVAILABLE) from None
        if response.status_code == 401:
            response.close()
            raise NeedsLogin()
        if response.status_code >= 400:
            raise _api_error(response, method, path)
        return response

    def _json(self, method: str, path: str, **kwargs: Any) -> Any:
        response = self._call(method, path, **kwargs)
        try:
            return response.json()
        except ValueError:
            log.warning("gateway answered %s %s with something else than JSON", method, path)
            raise ApiError(502, "BAD_GATEWAY", UNEXPECTED) from None

    def list_invoices(self) -> list[dict[str, Any]]:
        body = self._json("GET", INVOICES)
        items = body.get("items", body) if isinstance(body, dict) else body
        if not isinstance(items, list):
            raise ApiError(502, "BAD_GATEWAY", UNEXPECTED)
        return [item for item in items if isinstance(item, dict)]

    def get_invoice(self, invoice_id: str) -> dict[str, Any]:
        body = self._json("GET", f"{INVOICES}/{invoice_id}")
        if not isinstance(body, dict):
            raise ApiError(502, "BAD_GATEWAY", UNEXPECTED)
        return body

    def open_pdf(self, invoice_id: str) -> requests.Response:
        """The PDF as a streamed response (the caller closes it once sent)."""
        response = self._call("GET", f"{INVOICES}/{invoice_id}/pdf", stream=True)
        if not response.headers.get("Content-Type", "").startswith("application/pdf"):
            response.close()
            raise ApiError(502, "BAD_GATEWAY", UNEXPECTED)
        return response

    def create_payment(self, invoice_id: str, idempotency_key: str) -> dict[str, Any]:
        body = self._json(
            "POST",
            f"{INVOICES}/{invoice_id}/payments",
            json={},
            headers={"Idempotency-Key": idempotency_key},
        )
        if not isinstance(body, dict):
            raise ApiError(502, "BAD_GATEWAY", UNEXPECTED)
        return body


def _api_error(response: requests.Response, method: str, path: str) -> ApiError:
    """The gateway's `{"error", "message"}` (French, meant for people) or a generic message."""
    try:
        body = response.json()
    except ValueError:
        body = None
    response.close()
    code = body.get("error") if isinstance(body, dict) else None
    message = body.get("message") if isinstance(body, dict) else None
    status = response.status_code
    if status >= 500 or not isinstance(code, str) or not isinstance(message, str):
        log.warning("gateway answered %s %s with HTTP %s", method, path, status)
        return ApiError(
            502 if status < 500 else status, "BAD_GATEWAY", UNAVAILABLE if status >= 502 else UNEXPECTED
        )
    if status == 404 and path != INVOICES:
        message = "Cette facture est introuvable."
    return ApiError(status, code, message)

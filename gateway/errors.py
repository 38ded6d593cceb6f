"""Errors the gateway itself raises, and how any error becomes `{"error": CODE, "message": ...}`."""

from __future__ import annotations

import json
import logging
from typing import Any

from nameko.exceptions import RemoteError
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from services.common.errors import ServiceError

log = logging.getLogger(__name__)

SECURITY_HEADERS = {
    "X-Content-Type-Options": "nosniff",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


class InvalidJson(ServiceError):
    code = "INVALID_JSON"
    status = 400
    default_message = "Le corps de la requête doit être un objet JSON valide."


class PayloadTooLarge(ServiceError):
    code = "PAYLOAD_TOO_LARGE"
    status = 413
    default_message = "Le corps de la requête est trop volumineux."


class DocumentUnavailable(ServiceError):
    """A service answered a file the gateway cannot send (e.g. a PDF that is not base64)."""

    code = "DOCUMENT_UNAVAILABLE"
    status = 502
    default_message = "Le document n'a pas pu être produit. Réessayez dans quelques instants."


_HTTP_CODES = {
    404: ("NOT_FOUND", "Cette adresse n'existe pas."),
    405: ("METHOD_NOT_ALLOWED", "Méthode non autorisée pour cette adresse."),
    413: ("PAYLOAD_TOO_LARGE", "Le corps de la requête est trop volumineux."),
}


def json_response(status: int, payload: Any, headers: dict[str, str] | None = None) -> Response:
    body = "" if payload is None else json.dumps(payload, ensure_ascii=False)
    response = Response(body, status=status, mimetype="application/json" if payload is not None else None)
    for name, value in {**SECURITY_HEADERS, **(headers or {})}.items():
        response.headers[name] = value
    return response


def error_response(exc: BaseException) -> Response:
    """Map any exception to a JSON error; unexpected ones are logged, never shown."""
    if isinstance(exc, ServiceError):
        body: dict[str, Any] = {"error": exc.code, "message": exc.message}
        headers = {}
        fields = exc.details.get("fields") if isinstance(exc.details, dict) else None
        if fields:
            body["fields"] = fields
        retry_after = exc.details.get("retry_after") if isinstance(exc.details, dict) else None
        if retry_after:
            headers["Retry-After"] = str(int(retry_after))
            body["retry_after"] = int(retry_after)
        return json_response(exc.status, body, headers)
    if isinstance(exc, HTTPException):
        code, message = _HTTP_CODES.get(exc.code or 500, ("HTTP_ERROR", exc.description or ""))
        headers = {}
        if exc.code == 405 and getattr(exc, "valid_methods", None):
            headers["Allow"] = ", ".join(exc.valid_methods)
        return json_response(exc.code or 500, {"error": code, "message": message}, headers)
    if isinstance(exc, RemoteError):
        log.error("unexpected error in a service: %s", exc.exc_type)
    else:
        log.error("unexpected error in the gateway", exc_info=exc)
    return json_response(500, {"error": "INTERNAL_ERROR", "message": "Une erreur inattendue s'est produite."})

"""Exceptions that cross RPC boundaries and reach clients as `{"error": CODE, "message": ...}`.

Every subclass is registered with nameko's exception registry, so that a caller which imports the
module (the gateway does) gets the same exception type back, with its code and HTTP status.
"""

from __future__ import annotations

from typing import Any

from nameko.exceptions import get_module_path, registry


class ServiceError(Exception):
    """An expected, client-facing error. `code` is stable; `message` is for people."""

    code = "ERROR"
    status = 400
    default_message = "La requête ne peut pas être traitée."

    def __init__(self, message: str | None = None, details: dict[str, Any] | None = None) -> None:
        self.message = message or self.default_message
        self.details = details or {}
        super().__init__(self.message, self.details)

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        registry[get_module_path(cls)] = cls

    def __str__(self) -> str:
        return self.message


registry[get_module_path(ServiceError)] = ServiceError


class ValidationFailed(ServiceError):
    code = "VALIDATION_ERROR"
    status = 400
    default_message = "Certains champs sont invalides."


class NotFound(ServiceError):
    code = "NOT_FOUND"
    status = 404
    default_message = "Ressource introuvable."


class Unauthenticated(ServiceError):
    code = "UNAUTHENTICATED"
    status = 401
    default_message = "Authentification requise."


class Forbidden(ServiceError):
    code = "FORBIDDEN"
    status = 403
    default_message = "Accès refusé."


class Conflict(ServiceError):
    code = "CONFLICT"
    status = 409
    default_message = "Conflit avec l'état actuel."


class ServiceUnavailable(ServiceError):
    code = "SERVICE_UNAVAILABLE"
    status = 503
    default_message = "Service momentanément indisponible. Réessayez dans quelques instants."


class ServiceTimeout(ServiceError):
    code = "SERVICE_TIMEOUT"
    status = 504
    default_message = "Le service n'a pas répondu à temps. Réessayez dans quelques instants."

"""Identity's client-facing errors (stable codes, French messages)."""

from services.common.errors import Conflict, Forbidden, ServiceError, Unauthenticated


class EmailTaken(Conflict):
    code = "EMAIL_TAKEN"
    default_message = "Un compte existe déjà avec cette adresse e-mail."


class WeakPassword(ServiceError):
    code = "WEAK_PASSWORD"
    status = 400
    default_message = "Ce mot de passe n'est pas accepté."


class InvalidToken(ServiceError):
    code = "INVALID_TOKEN"
    status = 400
    default_message = "Ce lien n'est pas valide ou a expiré."


class InvalidCredentials(Unauthenticated):
    code = "INVALID_CREDENTIALS"
    default_message = "Adresse e-mail ou mot de passe incorrect."


class EmailNotVerified(Forbidden):
    code = "EMAIL_NOT_VERIFIED"
    default_message = "Veuillez d'abord confirmer votre adresse e-mail."


class TooManyAttempts(ServiceError):
    code = "TOO_MANY_ATTEMPTS"
    status = 429
    default_message = "Trop de tentatives. Réessayez dans quelques instants."


class InvalidRefreshToken(Unauthenticated):
    code = "INVALID_REFRESH_TOKEN"
    default_message = "Session expirée : veuillez vous reconnecter."


class SessionRevoked(Unauthenticated):
    code = "SESSION_REVOKED"
    default_message = "Session expirée : veuillez vous reconnecter."


class AccountNotFound(ServiceError):
    code = "ACCOUNT_NOT_FOUND"
    status = 404
    default_message = "Compte introuvable."

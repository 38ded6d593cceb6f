"""Communes' client-facing errors (stable codes, French messages). The generic ones (NotFound,
Forbidden, ValidationFailed, Unauthenticated) come from services.common.errors."""

from services.common.errors import Conflict, NotFound, ServiceError


class InseeCodeTaken(Conflict):
    code = "INSEE_CODE_TAKEN"
    default_message = "Une commune existe déjà avec ce code INSEE."


class ReferenceTaken(Conflict):
    code = "REFERENCE_TAKEN"
    default_message = "Une famille de cette commune porte déjà ce numéro de dossier."


class InvalidCode(NotFound):
    code = "INVALID_CODE"
    default_message = "Ce code d'adhésion n'est pas valide. Vérifiez-le et réessayez."


class CodeAlreadyUsed(Conflict):
    code = "CODE_ALREADY_USED"
    default_message = "Ce code d'adhésion a déjà été utilisé. Demandez-en un nouveau à votre mairie."


class CodeExpired(ServiceError):
    code = "CODE_EXPIRED"
    status = 410
    default_message = "Ce code d'adhésion a expiré. Demandez-en un nouveau à votre mairie."


class AlreadyLinked(Conflict):
    code = "ALREADY_LINKED"
    default_message = "Votre compte est déjà rattaché à cette famille."


class TooManyAttempts(ServiceError):
    code = "TOO_MANY_ATTEMPTS"
    status = 429
    default_message = "Trop de tentatives. Réessayez plus tard."

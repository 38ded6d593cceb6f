"""booking's client-facing errors (stable codes, French messages). The generic ones (NotFound,
ValidationFailed, Unauthenticated) come from services.common.errors."""

from services.common.errors import Conflict, ServiceError


class CartEmpty(Conflict):
    code = "CART_EMPTY"
    default_message = "Votre panier est vide."


class CartTooLarge(Conflict):
    code = "CART_TOO_LARGE"
    default_message = "Votre panier est plein : validez-le avant d'ajouter d'autres jours."


class CapacityBelowBookings(Conflict):
    code = "CAPACITY_BELOW_BOOKINGS"
    default_message = (
        "La capacité ne peut pas descendre sous le nombre de places déjà réservées un jour donné."
    )


class IdempotencyKeyReused(ServiceError):
    code = "IDEMPOTENCY_KEY_REUSED"
    status = 422
    default_message = "Cette clé d'idempotence a déjà servi pour un autre panier."


class AlreadyDecided(Conflict):
    code = "ALREADY_DECIDED"
    default_message = "Cette demande d'annulation a déjà été traitée."


class NotBooked(Conflict):
    code = "NOT_BOOKED"
    default_message = "Cet enfant n'est pas inscrit à cette activité ce jour-là."

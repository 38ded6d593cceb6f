"""billing's client-facing errors (stable codes, French messages). The generic ones (NotFound,
ValidationFailed, Unauthenticated) come from services.common.errors."""

from services.common.errors import Conflict, ServiceError


class DemoProviderDisabled(ServiceError):
    code = "DEMO_PROVIDER_DISABLED"
    status = 400
    default_message = "Le paiement de démonstration n'est pas disponible sur cette plateforme."


class PaymentNotConfigured(Conflict):
    code = "PAYMENT_NOT_CONFIGURED"
    default_message = "Le paiement en ligne n'est pas encore configuré pour cette commune."


class RefundExceedsPaid(Conflict):
    code = "REFUND_EXCEEDS_PAID"
    default_message = "Le remboursement dépasserait le montant payé."


class PaymentNotPaid(Conflict):
    code = "PAYMENT_NOT_PAID"
    default_message = "Ce paiement n'a pas abouti : il n'y a rien à rembourser."


class InvalidSignatureError(ServiceError):
    code = "INVALID_SIGNATURE"
    status = 400
    default_message = "Signature de la notification invalide."


class InvoiceAlreadyPaid(Conflict):
    code = "INVOICE_ALREADY_PAID"
    default_message = "Cette facture est déjà payée."


class InvoiceNotPayable(Conflict):
    code = "INVOICE_NOT_PAYABLE"
    default_message = "Un avoir ne se paie pas : il est porté au crédit du compte famille."

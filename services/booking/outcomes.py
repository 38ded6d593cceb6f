"""What a validation did with each requested day, and why a day was refused. Shared by the service and
the API, so the strings are part of the contract: never rename one."""

from __future__ import annotations

# Outcomes of one day in a cart validation or a cancellation request.
CONFIRMED = "confirmed"
WAITLISTED = "waitlisted"
PENDING_PAYMENT = "pending_payment"
REQUESTED = "requested"  # a cancellation waiting for an agent's decision
CANCELLED = "cancelled"
REJECTED = "rejected"

OUTCOMES: tuple[str, ...] = (CONFIRMED, WAITLISTED, PENDING_PAYMENT, REQUESTED, CANCELLED, REJECTED)

# Reasons for a rejection.
FULL = "FULL"
DEADLINE_PASSED = "DEADLINE_PASSED"
CLOSED = "CLOSED"
NOT_ELIGIBLE = "NOT_ELIGIBLE"
ALREADY_BOOKED = "ALREADY_BOOKED"
NOT_BOOKED = "NOT_BOOKED"
CANCELLATION_NOT_ALLOWED = "CANCELLATION_NOT_ALLOWED"
NOT_SCHEDULED = "NOT_SCHEDULED"  # the date is outside the activity's period or weekdays

REASONS: tuple[str, ...] = (
    FULL,
    DEADLINE_PASSED,
    CLOSED,
    NOT_ELIGIBLE,
    ALREADY_BOOKED,
    NOT_BOOKED,
    CANCELLATION_NOT_ALLOWED,
    NOT_SCHEDULED,
)

"""Events notify publishes (through its outbox) and the events it consumes.

Published by "notify" (payloads hold no address nor body, only ids and the kind):
- message_sent: {event_id, message_id, kind, source_event_id}
- message_failed: {event_id, message_id, kind, source_event_id} (gave up: attempts exhausted, refused
  for good by the mail server, or the link or code it carried expired before it could be delivered)

Consumed from "identity" (names mirror services/identity/events.py; a unit test keeps them equal):
- email_verification_requested / password_reset_requested:
  {event_id, account_id, email, locale, token, expires_at, link}
- password_changed: {event_id, account_id, email, locale}

Consumed from "communes" (the fields notify reads are checked in delivery.py; others are ignored):
- adhesion_code_issued: {event_id, family_id, commune_id, commune_name, family_name, email, code,
  expires_at, locale}. `code` is the secret in its display form `XXXX-XXXX-XXXX` (A-Z, 0-9),
  `expires_at` ISO 8601 (required: the email says until when the code works; not sent after that).
- agent_invited: {event_id, commune_id, commune_name, email, locale, link} (+ optional expires_at)

Consumed from "booking" (no address in them: notify asks identity's `contact(account_id)` or
communes' `family_contact(family_id)` when it handles the event; checks in booking.py):
- cart_validated: {event_id, account_id, idempotency_key, results, lines: [{child_first_name,
  activity_name, date, action (book|cancel), outcome, reason}]} -> one summary to the account
- booking_promoted: {event_id, booking_id, child_id, activity_id, date, commune_id, family_id,
  account_id, status (confirmed|pending_payment), hold_expires_at (required when pending_payment),
  child_first_name, activity_name} -> "a place became available", to the account
- cancellation_decided: {event_id, request_id, booking_id, child_id, activity_id, date, commune_id,
  family_id, account_id, decision (approved|rejected), reason (free text or null), billing_mode,
  child_first_name, activity_name} -> to the account
- booking_changed_by_agent: {event_id, commune_id, family_id, child_id, child_first_name,
  activity_name, lines: [{date, action, outcome, reason}]} -> to the family's contact address
Consumed from "billing" (to the account that paid: identity's `contact(account_id)`; checks in
billing.py; amounts in integer cents):
- payment_succeeded: {event_id, payment_id, commune_id, family_id, account_id, amount_cents,
  total_cents, booking_ids} -> a receipt (amount, credit used, number of days, payment id)
- payment_failed: {event_id, payment_id, commune_id, family_id, account_id, booking_ids, expires_at
  (optional: the holds' expiry; the email says until when the days stay held, and is not sent after)}
- refund_issued: {event_id, refund_id, payment_id, commune_id, family_id, account_id, amount_cents,
  reason (cancellation|place_lost|agent), booking_ids} -> the amount and why
- credit_granted: {event_id, commune_id, family_id, account_id, amount_cents, booking_id} -> the
  credit (avoir) on the family's account
- invoice_issued: {event_id, invoice_id, number, commune_id, family_id, month, kind (invoice |
  credit_note), total_cents, amount_due_cents, due_date} -> to the family's contact address
  (communes' `family_contact`): number, month, amount, due date, link to the invoices site
Outcomes: confirmed, waitlisted, pending_payment, requested, cancelled, rejected; reasons (or null):
FULL, DEADLINE_PASSED, CLOSED, NOT_ELIGIBLE, ALREADY_BOOKED, NOT_BOOKED, CANCELLATION_NOT_ALLOWED,
NOT_SCHEDULED.
"""

MESSAGE_SENT = "message_sent"
MESSAGE_FAILED = "message_failed"

IDENTITY = "identity"
EMAIL_VERIFICATION_REQUESTED = "email_verification_requested"
PASSWORD_RESET_REQUESTED = "password_reset_requested"
PASSWORD_CHANGED = "password_changed"

COMMUNES = "communes"
ADHESION_CODE_ISSUED = "adhesion_code_issued"
AGENT_INVITED = "agent_invited"

BOOKING = "booking"
CART_VALIDATED = "cart_validated"
BOOKING_PROMOTED = "booking_promoted"
CANCELLATION_DECIDED = "cancellation_decided"
BOOKING_CHANGED_BY_AGENT = "booking_changed_by_agent"

BILLING = "billing"
PAYMENT_SUCCEEDED = "payment_succeeded"
PAYMENT_FAILED = "payment_failed"
REFUND_ISSUED = "refund_issued"
CREDIT_GRANTED = "credit_granted"
INVOICE_ISSUED = "invoice_issued"

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

"""Events notify publishes (through its outbox) and the events it consumes.

Published by "notify" (payloads hold no address nor body, only ids and the kind):
- message_sent: {event_id, message_id, kind, source_event_id}
- message_failed: {event_id, message_id, kind, source_event_id} (gave up: attempts exhausted, refused
  for good by the mail server, or the link it carried expired before it could be delivered)

Consumed from "identity" (names mirror services/identity/events.py; a unit test keeps them equal):
- email_verification_requested / password_reset_requested:
  {event_id, account_id, email, locale, token, expires_at, link}
- password_changed: {event_id, account_id, email, locale}
"""

MESSAGE_SENT = "message_sent"
MESSAGE_FAILED = "message_failed"

IDENTITY = "identity"
EMAIL_VERIFICATION_REQUESTED = "email_verification_requested"
PASSWORD_RESET_REQUESTED = "password_reset_requested"
PASSWORD_CHANGED = "password_changed"

"""Events communes publishes (through its outbox) and the events it consumes. Every payload has
`event_id`.

Published by "communes":
- adhesion_code_issued: {family_id, commune_id, commune_name, family_name, email, code, expires_at,
  locale} (notify emails the code to the family's contact address; `code` is the display form
  XXXX-XXXX-XXXX and `expires_at` ISO 8601 UTC)
- agent_invited: {commune_id, commune_name, email, locale, link} (notify emails the invitation: the
  person creates an account with this address; on `account_verified` the agent role is granted)
- family_linked: {account_id, family_id, commune_id}

Consumed from "identity" (names mirror services/identity/events.py):
- account_verified: {account_id, email, locale}
"""

ADHESION_CODE_ISSUED = "adhesion_code_issued"
AGENT_INVITED = "agent_invited"
FAMILY_LINKED = "family_linked"

IDENTITY = "identity"
ACCOUNT_VERIFIED = "account_verified"

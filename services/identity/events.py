"""Events identity publishes (through its outbox). Payloads are dicts; every one has `event_id`.

- account_registered: {account_id, locale}
- email_verification_requested: {account_id, email, locale, token, expires_at, link}
- password_reset_requested: {account_id, email, locale, token, expires_at, link}
- password_changed: {account_id, email, locale}
- account_verified: {account_id, email, locale} (the email is proven: communes grants pending
  agent invitations on it)
- session_revoked: {session_id, account_id, until} (logout, password reset, refresh-token reuse, OIDC
  logout or code replay; one per session; `until` is ISO 8601 UTC, revocation time + the access-token
  lifetime: gateways refuse the session's access tokens until then)
"""

ACCOUNT_REGISTERED = "account_registered"
EMAIL_VERIFICATION_REQUESTED = "email_verification_requested"
PASSWORD_RESET_REQUESTED = "password_reset_requested"
PASSWORD_CHANGED = "password_changed"
ACCOUNT_VERIFIED = "account_verified"
SESSION_REVOKED = "session_revoked"

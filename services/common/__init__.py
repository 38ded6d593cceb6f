"""Code shared by every service: config, database, outbox/inbox, errors, health. No domain code."""

"""Ops commands for communes.

    python -m services.communes.cli create-commune --name N --insee 12345 [--timezone TZ]
        [--contact-email E] [--code-ttl-days D] [--agent-email E]

Creates the commune directly in communes' database (COMMUNES_DB_URI; no broker needed). Running it
again with the same INSEE code reuses that commune. With --agent-email:
- if identity's database is reachable too (IDENTITY_DB_URI set, or --identity-db-uri) and an
  account has that address, the agent role is granted at once in identity's database (through
  services.identity.accounts.grant_role) and recorded in communes': ops tooling is the one place
  allowed to touch both databases;
- otherwise a pending invitation is recorded, with its `agent_invited` event in the outbox (the
  running communes service publishes it and notify emails it). The role is granted when identity
  reports that address verified (`account_verified`), or by a later `add_agent`."""

from __future__ import annotations

import argparse
import os
import sys
from typing import Any

from sqlalchemy.orm import Session

from services.common.config import service_config
from services.common.db import db_uri, get_engine
from services.common.errors import ValidationFailed
from services.communes import communes, validation
from services.communes.settings import DEFAULT_CODE_TTL_DAYS, CommunesSettings


def create_commune(
    name: str,
    insee_code: str,
    timezone: str | None = None,
    contact_email: str | None = None,
    code_ttl_days: int | None = None,
    agent_email: str | None = None,
    uri: str | None = None,
    identity_uri: str | None = None,
) -> dict[str, Any]:
    """Returns {"commune_id", "created", "agent": None | "granted" | "invited" | "already invited",
    "account_id"}."""
    config = service_config("communes")
    uri = uri or db_uri(config, "communes")
    settings = CommunesSettings.from_config(config)
    if agent_email is not None:
        check = validation.Checker()
        agent_email = check.email("agent_email", agent_email)
        check.done()
    report: dict[str, Any] = {"agent": None, "account_id": None}
    with Session(get_engine(uri)) as session, session.begin():
        values = validation.commune_fields(
            name, insee_code, timezone, contact_email, code_ttl_days, DEFAULT_CODE_TTL_DAYS
        )
        commune = communes.commune_by_insee(session, values["insee_code"])
        report["created"] = commune is None
        if commune is None:
            commune = communes.create_commune(
                session, None, name, insee_code, timezone, contact_email, code_ttl_days
            )
        report["commune_id"] = commune.id
    if agent_email is None:
        return report
    account_id = _grant_in_identity(identity_uri, agent_email, report["commune_id"])
    with Session(get_engine(uri)) as session, session.begin():
        commune = communes.get_commune(session, report["commune_id"])
        if account_id is not None:
            communes.record_agent(session, commune.id, account_id, agent_email, None)
            report.update(agent="granted", account_id=account_id)
        else:
            created = communes.invite_agent(session, settings, commune, agent_email, None)
            report["agent"] = "invited" if created else "already invited"
    return report


def _grant_in_identity(identity_uri: str | None, email: str, commune_id: str) -> str | None:
    """The account id if identity's database is configured and has this address (role granted)."""
    if not identity_uri:
        return None
    from services.identity import accounts

    with Session(get_engine(identity_uri)) as session, session.begin():
        account = accounts.account_by_email(session, email)
        if account is None:
            return None
        accounts.grant_role(session, account.id, "agent", commune_id, None)
        return account.id


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.communes.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    create = commands.add_parser("create-commune", help="create a commune, optionally with its first agent")
    create.add_argument("--name", required=True)
    create.add_argument("--insee", required=True, help="5 characters: 5 digits, or 2A/2B and 3 digits")
    create.add_argument("--timezone", default=None, help="default Europe/Paris")
    create.add_argument("--contact-email", default=None)
    create.add_argument("--code-ttl-days", type=int, default=None, help="adhesion codes' validity (30)")
    create.add_argument("--agent-email", default=None, help="grant or invite this address as agent")
    create.add_argument(
        "--identity-db-uri",
        default=os.environ.get("IDENTITY_DB_URI") or None,
        help="identity's database, to grant the role at once (default: IDENTITY_DB_URI if set)",
    )
    args = parser.parse_args(argv)
    try:
        report = create_commune(
            args.name,
            args.insee,
            args.timezone,
            args.contact_email,
            args.code_ttl_days,
            args.agent_email,
            identity_uri=args.identity_db_uri,
        )
    except ValidationFailed as exc:
        for field, messages in exc.details.get("fields", {}).items():
            print(f"refused: {field}: {' '.join(messages)}", file=sys.stderr)
        return 2
    state = "created" if report["created"] else "already existed (reused)"
    print(f"commune {report['commune_id']} {state}")
    if report["agent"] == "granted":
        print(f"agent role granted to account {report['account_id']}")
    elif report["agent"]:
        print(f"agent {report['agent']}: the role is granted once that address is verified")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

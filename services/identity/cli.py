"""Ops commands for identity. `python -m services.identity.cli create-admin --email E` (password
from ADMIN_PASSWORD, never from the command line, which other users can read in `ps`)."""

from __future__ import annotations

import argparse
import os
import sys

from sqlalchemy.orm import Session

from services.common.config import service_config
from services.common.db import db_uri, get_engine
from services.identity import accounts
from services.identity.exceptions import WeakPassword


def create_admin(email: str, password: str, uri: str | None = None) -> tuple[str, bool]:
    uri = uri or db_uri(service_config("identity"), "identity")
    with Session(get_engine(uri)) as session, session.begin():
        account, created = accounts.create_admin(session, email, password)
        return account.id, created


def main(argv: list[str]) -> int:
    parser = argparse.ArgumentParser(prog="python -m services.identity.cli")
    commands = parser.add_subparsers(dest="command", required=True)
    admin = commands.add_parser(
        "create-admin", help="create a verified platform admin, or promote an account"
    )
    admin.add_argument("--email", required=True)
    args = parser.parse_args(argv)
    password = os.environ.get("ADMIN_PASSWORD", "")
    try:
        account_id, created = create_admin(args.email, password)
    except WeakPassword as exc:
        print(f"refused: {exc.message}", file=sys.stderr)
        return 2
    if created:
        print(f"admin account created: {account_id}")
    else:
        print(f"existing account promoted to admin (its password is unchanged): {account_id}")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

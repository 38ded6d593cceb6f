"""Alembic, per service: `python -m services.common.migrate <service> [revision]` upgrades that
service's database (URI from its config.yml / environment) to head."""

from __future__ import annotations

import sys
from pathlib import Path

from alembic import command
from alembic.config import Config as AlembicConfig

from services.common.config import REPO_ROOT, service_config
from services.common.db import db_uri

SERVICES_WITH_DB = ("identity", "notify", "communes", "booking", "billing")


def alembic_config(service: str, uri: str) -> AlembicConfig:
    cfg = AlembicConfig()
    cfg.set_main_option("script_location", str(REPO_ROOT / "services" / service / "migrations"))
    cfg.set_main_option("sqlalchemy.url", uri.replace("%", "%%"))
    cfg.attributes["service"] = service
    return cfg


def ensure_sqlite_folder(uri: str) -> None:
    if uri.startswith("sqlite:///") and not uri.startswith("sqlite:///:memory:"):
        Path(uri.removeprefix("sqlite:///")).parent.mkdir(parents=True, exist_ok=True)


def upgrade(service: str, uri: str | None = None, revision: str = "head") -> None:
    uri = uri or db_uri(service_config(service), service)
    ensure_sqlite_folder(uri)
    command.upgrade(alembic_config(service, uri), revision)


def main(argv: list[str]) -> int:
    services = argv[:1] or list(SERVICES_WITH_DB)
    for service in services:
        upgrade(service)
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

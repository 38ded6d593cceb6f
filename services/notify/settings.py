"""Notify's settings, read once from the service config (`${VAR:default}` in config.yml)."""

from __future__ import annotations

from dataclasses import dataclass
from email.headerregistry import Address
from email.utils import parseaddr
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from services.common.config import REPO_ROOT, is_production

DEFAULT_MAIL_FROM = "Portail Famille <no-reply@portail-famille.local>"
DEFAULT_PUBLIC_URL = "http://localhost:8000"
DEFAULT_INVOICES_SITE_URL = "http://localhost:8001/"


@dataclass(frozen=True)
class NotifySettings:
    mail_dir: Path = REPO_ROOT / "var" / "mail"
    smtp_url: str = ""
    mail_from: str = DEFAULT_MAIL_FROM
    public_url: str = DEFAULT_PUBLIC_URL  # the portal, as the emails link to it (no trailing slash)
    poll_seconds: float = 1.0
    max_attempts: int = 10
    retry_base_seconds: float = 30.0
    retry_max_seconds: float = 3600.0
    claim_seconds: float = 300.0
    requeue_delay_seconds: float = 1.0
    invoices_url: str = DEFAULT_INVOICES_SITE_URL  # the invoices site, as invoice emails link to it

    @property
    def from_address(self) -> Address:
        """MAIL_FROM parsed: `Name <addr@domain>` or a bare address."""
        name, addr = parseaddr(self.mail_from)
        if "@" not in addr:
            raise ValueError("MAIL_FROM must hold an address such as 'Name <no-reply@example.org>'")
        username, domain = addr.rsplit("@", 1)
        return Address(display_name=name, username=username, domain=domain)

    @property
    def portal_url(self) -> str:
        """The portal's home page, where families and agents create their account."""
        return f"{self.public_url}/"

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> NotifySettings:
        def number(key: str, default: float) -> float:
            value = config.get(key)
            return float(value) if value not in (None, "") else default

        base = cls()
        mail_dir = Path(str(config.get("MAIL_DIR") or "var/mail"))
        smtp_url = str(config.get("SMTP_URL") or "").strip()
        if is_production(config) and not smtp_url:
            raise RuntimeError("SMTP_URL must be set in production (emails would only be written to files)")
        settings = cls(
            mail_dir=mail_dir if mail_dir.is_absolute() else REPO_ROOT / mail_dir,
            smtp_url=smtp_url,
            mail_from=str(config.get("MAIL_FROM") or DEFAULT_MAIL_FROM),
            public_url=str(config.get("PUBLIC_URL") or DEFAULT_PUBLIC_URL).strip().rstrip("/"),
            poll_seconds=number("NOTIFY_POLL_SECONDS", base.poll_seconds),
            max_attempts=max(1, int(number("NOTIFY_MAX_ATTEMPTS", base.max_attempts))),
            retry_base_seconds=number("NOTIFY_RETRY_BASE_SECONDS", base.retry_base_seconds),
            retry_max_seconds=number("NOTIFY_RETRY_MAX_SECONDS", base.retry_max_seconds),
            claim_seconds=number("NOTIFY_CLAIM_SECONDS", base.claim_seconds),
            requeue_delay_seconds=number("NOTIFY_REQUEUE_DELAY_SECONDS", base.requeue_delay_seconds),
            invoices_url=str(config.get("INVOICES_SITE_URL") or DEFAULT_INVOICES_SITE_URL).strip(),
        )
        settings.from_address  # noqa: B018 - fail at start-up on a malformed MAIL_FROM
        parts = urlsplit(settings.public_url)
        if parts.scheme not in ("http", "https") or not parts.netloc or parts.query or parts.fragment:
            raise ValueError("PUBLIC_URL must be the portal's address, such as 'https://portail.example.org'")
        return settings

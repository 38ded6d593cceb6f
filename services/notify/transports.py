"""Where emails go: `.eml` files in MAIL_DIR (the local default) or an SMTP server (SMTP_URL).

A transport raises `DeliveryError` with a reason fit for logs and the database: an exception type
and an SMTP code, never the server's text (it may echo addresses). `permanent` errors (the server
refused the recipient or the message for good, 5xx) are not retried.
"""

from __future__ import annotations

import os
import smtplib
import ssl
import tempfile
from dataclasses import dataclass, field
from email.message import EmailMessage
from email.policy import SMTP as SMTP_POLICY
from email.policy import SMTPUTF8 as SMTPUTF8_POLICY
from pathlib import Path
from typing import Protocol
from urllib.parse import parse_qs, unquote, urlsplit

from services.notify.settings import NotifySettings

DEFAULT_SMTP_TIMEOUT = 30.0
_TRUE = {"1", "true", "yes", "on"}
_FALSE = {"0", "false", "no", "off", ""}


class DeliveryError(Exception):
    def __init__(self, reason: str, permanent: bool = False) -> None:
        super().__init__(reason)
        self.reason = reason[:200]
        self.permanent = permanent


class Transport(Protocol):
    name: str

    def send(self, message: EmailMessage, message_id: str) -> None: ...


class FileTransport:
    """Writes each email as an RFC 5322 file `<message id>.eml`, atomically: a temporary file in the
    same folder, flushed to disk, then renamed over the final name. A re-send after a crash
    overwrites the same file instead of adding a second one."""

    name = "file"

    def __init__(self, folder: Path) -> None:
        self.folder = Path(folder)

    def path_for(self, message_id: str) -> Path:
        if not message_id or any(c in message_id for c in "/\\") or message_id.startswith("."):
            raise ValueError("unsafe message id for a file name")
        return self.folder / f"{message_id}.eml"

    def send(self, message: EmailMessage, message_id: str) -> None:
        target = self.path_for(message_id)
        # CRLF line ends, as RFC 5322 says; raw UTF-8 only for an internationalised address (RFC 6532)
        data = message.as_bytes(policy=SMTP_POLICY if str(message["To"]).isascii() else SMTPUTF8_POLICY)
        try:
            self.folder.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(dir=self.folder, prefix=f".{message_id}.", suffix=".tmp")
            try:
                with os.fdopen(fd, "wb") as handle:
                    handle.write(data)
                    handle.flush()
                    os.fsync(handle.fileno())
                os.chmod(tmp, 0o640)
                os.replace(tmp, target)
            except BaseException:
                Path(tmp).unlink(missing_ok=True)
                raise
            _fsync_folder(self.folder)
        except OSError as exc:
            raise DeliveryError(f"{type(exc).__name__} errno={exc.errno}") from None


def _fsync_folder(folder: Path) -> None:
    """Make the rename itself durable (POSIX); harmless where folders cannot be opened."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


@dataclass(frozen=True)
class SmtpSettings:
    host: str
    port: int
    ssl: bool = False  # smtps://: TLS from the first byte
    starttls: bool = False
    username: str | None = None
    password: str | None = field(default=None, repr=False)
    timeout: float = DEFAULT_SMTP_TIMEOUT
    helo: str | None = None


def parse_smtp_url(url: str) -> SmtpSettings:
    """`smtp://[user:pass@]host[:port][?starttls=true&timeout=10&helo=name]` or `smtps://...`.

    Ports default to 25 (smtp), 587 (smtp with starttls) and 465 (smtps). User and password are
    percent-decoded (write `@` as `%40`)."""
    parts = urlsplit(url.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("smtp", "smtps"):
        raise ValueError("SMTP_URL must start with smtp:// or smtps://")
    if not parts.hostname:
        raise ValueError("SMTP_URL has no host")
    query = {key.lower(): values[-1] for key, values in parse_qs(parts.query, keep_blank_values=True).items()}
    unknown = set(query) - {"starttls", "timeout", "helo"}
    if unknown:
        raise ValueError(f"SMTP_URL has unknown options: {', '.join(sorted(unknown))}")
    starttls_value = query.get("starttls", "false").lower()
    if starttls_value not in _TRUE | _FALSE:
        raise ValueError("SMTP_URL starttls must be true or false")
    use_ssl = scheme == "smtps"
    starttls = starttls_value in _TRUE
    if use_ssl and starttls:
        raise ValueError("SMTP_URL: smtps:// is already TLS; starttls applies to smtp:// only")
    try:
        port = parts.port
        timeout = float(query.get("timeout") or DEFAULT_SMTP_TIMEOUT)
    except ValueError as exc:
        raise ValueError("SMTP_URL has an invalid port or timeout") from exc
    if timeout <= 0:
        raise ValueError("SMTP_URL timeout must be positive")
    if port is None:
        port = 465 if use_ssl else 587 if starttls else 25
    return SmtpSettings(
        host=parts.hostname,
        port=port,
        ssl=use_ssl,
        starttls=starttls,
        username=unquote(parts.username) if parts.username else None,
        password=unquote(parts.password) if parts.password is not None else None,
        timeout=timeout,
        helo=query.get("helo") or None,
    )


def _smtp_reason(exc: smtplib.SMTPResponseException) -> DeliveryError:
    code = int(exc.smtp_code)
    # 5xx is final, except authentication: that is our configuration, fixed by an operator
    permanent = code >= 500 and not isinstance(exc, smtplib.SMTPAuthenticationError)
    return DeliveryError(f"{type(exc).__name__} {code}", permanent=permanent)


class SmtpTransport:
    """One connection per message (emails here are few; no idle connection to keep alive)."""

    name = "smtp"

    def __init__(self, settings: SmtpSettings, envelope_from: str) -> None:
        self.settings = settings
        self.envelope_from = envelope_from

    def _tls_context(self) -> ssl.SSLContext:
        return ssl.create_default_context()

    def _connect(self) -> smtplib.SMTP:
        s = self.settings
        if s.ssl:
            return smtplib.SMTP_SSL(
                s.host, s.port, local_hostname=s.helo, timeout=s.timeout, context=self._tls_context()
            )
        return smtplib.SMTP(s.host, s.port, local_hostname=s.helo, timeout=s.timeout)

    def send(self, message: EmailMessage, message_id: str) -> None:
        s = self.settings
        recipients = [str(address.addr_spec) for address in message["To"].addresses]
        try:
            with self._connect() as smtp:
                if s.starttls:
                    smtp.starttls(context=self._tls_context())
                if s.username:
                    smtp.login(s.username, s.password or "")
                smtp.send_message(message, from_addr=self.envelope_from, to_addrs=recipients)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = sorted({int(code) for code, _ in exc.recipients.values()})
            permanent = all(code >= 500 for code in codes)
            raise DeliveryError(
                f"SMTPRecipientsRefused {','.join(map(str, codes))}", permanent=permanent
            ) from None
        except smtplib.SMTPResponseException as exc:
            raise _smtp_reason(exc) from None
        except (smtplib.SMTPException, OSError) as exc:  # refused, reset, timeout, TLS, no STARTTLS
            raise DeliveryError(type(exc).__name__) from None


def build_transport(settings: NotifySettings) -> Transport:
    if settings.smtp_url:
        return SmtpTransport(parse_smtp_url(settings.smtp_url), settings.from_address.addr_spec)
    return FileTransport(settings.mail_dir)

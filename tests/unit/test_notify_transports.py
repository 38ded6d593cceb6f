import datetime as dt
import email
import os
import socket
from email import policy

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import AuthResult
from sqlalchemy.orm import sessionmaker

from services.common import clock
from services.common.db import get_engine
from services.common.migrate import upgrade
from services.notify import delivery, events
from services.notify.models import PENDING, SENT, OutgoingMessage
from services.notify.settings import NotifySettings
from services.notify.transports import (
    DeliveryError,
    FileTransport,
    SmtpSettings,
    SmtpTransport,
    build_transport,
    parse_smtp_url,
)

T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
SETTINGS = NotifySettings(mail_from="Portail Famille <no-reply@portail.test>")


def make_email(message_id="m-1", body="Bonjour\n", to="parent@example.org"):
    row = OutgoingMessage(
        id=message_id,
        to_address=to,
        subject="Sujet é",
        text_body=body,
        html_body=f"<p>{body}</p>",
        locale="fr",
        created_at=T0,
    )
    return delivery.build_email(row, SETTINGS)


# ------------------------------------------------------------------ files


def test_file_transport_writes_one_parseable_eml_per_message(tmp_path):
    transport = FileTransport(tmp_path / "mail")
    transport.send(make_email("m-1"), "m-1")
    files = list((tmp_path / "mail").iterdir())
    assert [f.name for f in files] == ["m-1.eml"]
    parsed = email.message_from_bytes(files[0].read_bytes(), policy=policy.default)
    assert parsed["Message-ID"] == "<m-1@portail.test>"
    assert parsed.get_body(("plain",)).get_content().replace("\r\n", "\n") == "Bonjour\n"


def test_file_transport_overwrites_on_resend_and_leaves_no_temp_file(tmp_path):
    transport = FileTransport(tmp_path)
    transport.send(make_email("m-1", "first\n"), "m-1")
    transport.send(make_email("m-1", "second\n"), "m-1")
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-1.eml"]
    parsed = email.message_from_bytes((tmp_path / "m-1.eml").read_bytes(), policy=policy.default)
    assert parsed.get_body(("plain",)).get_content().replace("\r\n", "\n") == "second\n"


def test_file_transport_never_leaves_a_half_written_file(tmp_path, monkeypatch):
    transport = FileTransport(tmp_path)
    transport.send(make_email("m-1", "complete\n"), "m-1")
    before = (tmp_path / "m-1.eml").read_bytes()

    def crash(src, dst):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(DeliveryError) as info:
        transport.send(make_email("m-1", "new content\n"), "m-1")
    assert not info.value.permanent and info.value.reason == "OSError errno=28"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m-1.eml"]  # temp file removed
    assert (tmp_path / "m-1.eml").read_bytes() == before


def test_file_transport_keeps_an_internationalised_address_readable(tmp_path):
    FileTransport(tmp_path).send(make_email("m-1", to="élise@exämple.fr"), "m-1")
    parsed = email.message_from_bytes((tmp_path / "m-1.eml").read_bytes(), policy=policy.default)
    assert parsed["To"] == "élise@exämple.fr"


@pytest.mark.parametrize("bad", ["", "../etc/passwd", "a/b", ".hidden"])
def test_file_transport_refuses_unsafe_names(tmp_path, bad):
    with pytest.raises(ValueError):
        FileTransport(tmp_path).path_for(bad)


def test_transport_follows_config(tmp_path):
    assert isinstance(build_transport(NotifySettings(mail_dir=tmp_path)), FileTransport)
    smtp = build_transport(NotifySettings(smtp_url="smtp://localhost:1025"))
    assert isinstance(smtp, SmtpTransport) and smtp.envelope_from == "no-reply@portail-famille.local"


def test_relative_mail_dir_is_under_the_repository_and_production_needs_smtp():
    from services.common.config import REPO_ROOT

    assert NotifySettings.from_config({"MAIL_DIR": "var/mail"}).mail_dir == REPO_ROOT / "var" / "mail"
    assert NotifySettings.from_config({"MAIL_DIR": "/srv/mail"}).mail_dir.as_posix() == "/srv/mail"
    with pytest.raises(RuntimeError):
        NotifySettings.from_config({"ENVIRONMENT": "production", "SMTP_URL": ""})
    with pytest.raises(ValueError):
        NotifySettings.from_config({"MAIL_FROM": "nobody"})


# ------------------------------------------------------------------ SMTP URLs


@pytest.mark.parametrize(
    "url, expected",
    [
        ("smtp://localhost:1025", SmtpSettings("localhost", 1025)),
        ("smtp://mail.example.org", SmtpSettings("mail.example.org", 25)),
        (
            "smtp://user:p%40ss%3Aword@host:587?starttls=true",
            SmtpSettings("host", 587, starttls=True, username="user", password="p@ss:word"),
        ),
        ("smtp://host?starttls=yes", SmtpSettings("host", 587, starttls=True)),
        ("smtps://host:465", SmtpSettings("host", 465, ssl=True)),
        ("SMTPS://u@host", SmtpSettings("host", 465, ssl=True, username="u")),
        (
            "smtp://host:2525?timeout=5&helo=portal.example.org",
            SmtpSettings("host", 2525, timeout=5, helo="portal.example.org"),
        ),
    ],
)
def test_parse_smtp_url(url, expected):
    assert parse_smtp_url(url) == expected


@pytest.mark.parametrize(
    "url",
    [
        "http://host",
        "smtp://",
        "smtp://host:notaport",
        "smtp://host?starttls=maybe",
        "smtps://host?starttls=true",
        "smtp://host?verify=false",
        "smtp://host?timeout=0",
    ],
)
def test_parse_smtp_url_refuses_nonsense(url):
    with pytest.raises(ValueError):
        parse_smtp_url(url)


def test_smtp_password_is_not_in_repr():
    assert "s3cret" not in repr(parse_smtp_url("smtp://user:s3cret@host"))


# ------------------------------------------------------------------ SMTP against a real server


class Recorder:
    """aiosmtpd handler: keeps what it accepts; answers `fail_next` (code, text) to the next DATA."""

    def __init__(self):
        self.received = []
        self.fail_next = []

    async def handle_RCPT(self, server, session, envelope, address, rcpt_options):
        if address.startswith("unknown@"):
            return "550 5.1.1 <unknown@example.org>: mailbox unavailable"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server, session, envelope):
        if self.fail_next:
            return self.fail_next.pop(0)
        self.received.append(envelope)
        return "250 Message accepted"


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def smtp_server():
    handler = Recorder()
    controller = Controller(handler, hostname="127.0.0.1", port=free_port())
    controller.start()
    yield handler, controller.port
    controller.stop()


def test_smtp_transport_delivers(smtp_server):
    handler, port = smtp_server
    transport = build_transport(
        NotifySettings(smtp_url=f"smtp://127.0.0.1:{port}?timeout=5", mail_from=SETTINGS.mail_from)
    )
    transport.send(make_email("m-1"), "m-1")
    [envelope] = handler.received
    assert envelope.mail_from == "no-reply@portail.test"
    assert envelope.rcpt_tos == ["parent@example.org"]
    parsed = email.message_from_bytes(envelope.original_content, policy=policy.default)
    assert parsed["Message-ID"] == "<m-1@portail.test>"
    assert parsed["Subject"] == "Sujet é"


def test_smtp_transport_logs_in_with_the_url_credentials():
    handler = Recorder()
    seen = []

    def authenticator(server, session, envelope, mechanism, auth_data):
        seen.append((auth_data.login, auth_data.password))
        return AuthResult(success=auth_data.password == b"p@ss", handled=False)

    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=free_port(),
        authenticator=authenticator,
        auth_require_tls=False,
        auth_exclude_mechanism=["LOGIN"],
    )
    controller.start()
    try:
        good = SmtpTransport(
            parse_smtp_url(f"smtp://parent-app:p%40ss@127.0.0.1:{controller.port}"), "a@b.fr"
        )
        good.send(make_email(), "m-1")
        bad = SmtpTransport(parse_smtp_url(f"smtp://parent-app:wrong@127.0.0.1:{controller.port}"), "a@b.fr")
        with pytest.raises(DeliveryError) as info:
            bad.send(make_email(), "m-2")
    finally:
        controller.stop()
    assert len(handler.received) == 1
    assert seen[0] == (b"parent-app", b"p@ss")
    assert info.value.reason == "SMTPAuthenticationError 535" and not info.value.permanent


def test_smtp_refusals_are_classified_without_personal_data(smtp_server):
    handler, port = smtp_server
    transport = SmtpTransport(parse_smtp_url(f"smtp://127.0.0.1:{port}"), "no-reply@portail.test")
    with pytest.raises(DeliveryError) as info:
        transport.send(make_email(to="unknown@example.org"), "m-1")
    assert info.value.permanent and info.value.reason == "SMTPRecipientsRefused 550"
    handler.fail_next.append("554 5.6.0 message refused for parent@example.org")
    with pytest.raises(DeliveryError) as info:
        transport.send(make_email(), "m-2")
    assert info.value.permanent and info.value.reason == "SMTPDataError 554"
    assert handler.received == []


def test_smtp_server_down_is_a_transient_failure():
    transport = SmtpTransport(parse_smtp_url(f"smtp://127.0.0.1:{free_port()}?timeout=2"), "a@b.fr")
    with pytest.raises(DeliveryError) as info:
        transport.send(make_email(), "m-1")
    assert not info.value.permanent and info.value.reason == "ConnectionRefusedError"


def test_a_failed_smtp_attempt_is_retried_after_backoff(smtp_server, tmp_path):
    """The whole cycle on a real server: 451 on the first try, scheduled retry, then delivered."""
    handler, port = smtp_server
    handler.fail_next.append("451 4.3.0 Try again later")
    settings = NotifySettings(
        smtp_url=f"smtp://127.0.0.1:{port}",
        mail_from=SETTINGS.mail_from,
        retry_base_seconds=60,
        max_attempts=3,
    )
    transport = build_transport(settings)
    uri = f"sqlite:///{tmp_path / 'notify.db'}"
    upgrade("notify", uri)
    sessions = sessionmaker(bind=get_engine(uri), expire_on_commit=False)
    clock.set_now(T0)
    with sessions() as session, session.begin():
        message = delivery.accept_event(
            session,
            events.PASSWORD_CHANGED,
            {
                "event_id": "6c8c4e3e-0000-4000-8000-000000000001",
                "email": "parent@example.org",
                "locale": "en",
            },
        )

    def attempt():
        with sessions() as session, session.begin():
            claim = delivery.claim_next(session, settings, skip_locked=False)
        if claim is None:
            return None
        try:
            transport.send(delivery.build_email(claim, settings), claim.id)
        except DeliveryError as exc:
            with sessions() as session, session.begin():
                return delivery.record_failure(session, claim, settings, exc.reason, exc.permanent)
        with sessions() as session, session.begin():
            delivery.record_sent(session, claim)
        return SENT

    assert attempt() == PENDING
    assert handler.received == []
    assert attempt() is None  # not due yet
    clock.advance(dt.timedelta(seconds=60))
    assert attempt() == SENT
    [envelope] = handler.received
    assert b"Your password was changed" in envelope.original_content
    with sessions() as session:
        row = session.get(OutgoingMessage, message.id)
        assert (row.status, row.attempts, row.last_error) == (SENT, 2, None)

import datetime as dt
import email
import logging
import uuid
from email import policy
from email.utils import parsedate_to_datetime
from urllib.parse import parse_qs, urlsplit

import pytest
from alembic.autogenerate import compare_metadata
from alembic.migration import MigrationContext
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from services.common import clock
from services.common.db import WorkerDb, get_engine
from services.common.migrate import upgrade
from services.notify import delivery, events, inbound
from services.notify.models import FAILED, PENDING, SENT, Base, OutboxEvent, OutgoingMessage
from services.notify.rendering import render
from services.notify.settings import NotifySettings

T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)


@pytest.fixture
def settings(tmp_path):
    return NotifySettings(
        mail_dir=tmp_path / "mail",
        mail_from="Portail Famille <no-reply@portail.test>",
        max_attempts=3,
        retry_base_seconds=10,
        retry_max_seconds=25,
        claim_seconds=60,
        requeue_delay_seconds=0,
    )


@pytest.fixture
def engine(tmp_path):
    uri = f"sqlite:///{tmp_path / 'notify.db'}"
    upgrade("notify", uri)
    return get_engine(uri)


@pytest.fixture
def sessions(engine):
    return sessionmaker(bind=engine, expire_on_commit=False)


CODE = "K7QM-3XPD-9WTR"


def adhesion_payload(**changes):
    payload = {
        "event_id": str(uuid.uuid4()),
        "family_id": str(uuid.uuid4()),
        "commune_id": str(uuid.uuid4()),
        "commune_name": "Saint-Étienne",
        "family_name": "Martin",
        "email": "famille.martin@example.org",
        "code": CODE,
        "expires_at": (T0 + dt.timedelta(days=30)).isoformat(),
        "locale": "fr",
    }
    payload.update(changes)
    return {key: value for key, value in payload.items() if value is not ...}  # `...`: leave the key out


def invitation_payload(**changes):
    payload = {
        "event_id": str(uuid.uuid4()),
        "commune_id": str(uuid.uuid4()),
        "commune_name": "Saint-Étienne",
        "email": "agent@mairie.example.fr",
        "locale": "fr",
        "link": f"https://portal.test/account/invitation?token={uuid.uuid4().hex}",
    }
    payload.update(changes)
    return {key: value for key, value in payload.items() if value is not ...}


def verification_payload(**changes):
    token = uuid.uuid4().hex
    payload = {
        "event_id": str(uuid.uuid4()),
        "account_id": str(uuid.uuid4()),
        "email": "parent@example.org",
        "locale": "fr",
        "token": token,
        "expires_at": (T0 + dt.timedelta(hours=48)).isoformat(),
        "link": f"https://portal.test/account/verify-email?token={token}",
    }
    payload.update(changes)
    return payload


# ------------------------------------------------------------------ backoff


def test_retry_delay_doubles_then_caps():
    delays = [delivery.retry_delay(n, 30, 3600).total_seconds() for n in range(1, 10)]
    assert delays == [30, 60, 120, 240, 480, 960, 1920, 3600, 3600]
    assert delivery.retry_delay(10_000, 30, 3600).total_seconds() == 3600
    with pytest.raises(ValueError):
        delivery.retry_delay(0, 30, 3600)


def test_after_failure_retries_then_gives_up(settings):
    assert delivery.after_failure(1, T0, settings) == (PENDING, T0 + dt.timedelta(seconds=10))
    assert delivery.after_failure(2, T0, settings) == (PENDING, T0 + dt.timedelta(seconds=20))
    assert delivery.after_failure(3, T0, settings) == (FAILED, None)  # max_attempts = 3
    assert delivery.after_failure(1, T0, settings, permanent=True) == (FAILED, None)


# ------------------------------------------------------------------ events -> requests


def test_request_from_verification_event():
    payload = verification_payload(locale="en")
    request = delivery.request_from_event(events.EMAIL_VERIFICATION_REQUESTED, payload)
    assert request.kind == delivery.VERIFY_EMAIL
    assert request.source_event_id == payload["event_id"]
    assert request.to.addr_spec == "parent@example.org"
    assert request.locale == "en"
    assert request.context["link"] == payload["link"]
    assert request.expires_at == T0 + dt.timedelta(hours=48)
    changed = delivery.request_from_event(
        events.PASSWORD_CHANGED, {"event_id": "e1", "email": "a@b.fr", "locale": "xx"}
    )
    assert (changed.kind, changed.locale, changed.context) == (delivery.PASSWORD_CHANGED, "fr", {})


@pytest.mark.parametrize(
    "changes",
    [
        {"email": None},
        {"email": "not-an-address"},
        {"email": "a@b.fr\r\nBcc: victim@example.org"},
        {"email": "a@b.fr, c@d.fr"},
        {"event_id": ""},
        {"event_id": "x" * 37},
        {"link": "javascript:alert(1)"},
        {"link": "https://portal.test/a b"},
        {"expires_at": "tomorrow"},
    ],
)
def test_events_that_can_never_be_sent_are_refused(changes):
    with pytest.raises(delivery.InvalidPayload) as info:
        delivery.request_from_event(events.PASSWORD_RESET_REQUESTED, verification_payload(**changes))
    assert "victim" not in str(info.value) and "@" not in str(info.value)


def test_unknown_event_type_is_refused():
    with pytest.raises(delivery.InvalidPayload):
        delivery.request_from_event("account_registered", verification_payload())


# ------------------------------------------------------------------ events from communes -> requests


def test_request_from_adhesion_code_event():
    payload = adhesion_payload(locale="en")
    request = delivery.request_from_event(
        events.ADHESION_CODE_ISSUED, payload, "https://portail.example.org/"
    )
    assert request.kind == delivery.ADHESION_CODE
    assert request.source_event_id == payload["event_id"]
    assert request.to.addr_spec == "famille.martin@example.org"
    assert request.locale == "en"
    assert request.expires_at == T0 + dt.timedelta(days=30)
    assert request.context == {
        "code": CODE,
        "commune_name": "Saint-Étienne",
        "family_name": "Martin",
        "expires_at": T0 + dt.timedelta(days=30),
        "portal_url": "https://portail.example.org/",
    }
    without_family = delivery.request_from_event(
        events.ADHESION_CODE_ISSUED, adhesion_payload(family_name=...)
    )
    assert without_family.context["family_name"] is None and without_family.locale == "fr"
    naive = delivery.request_from_event(
        events.ADHESION_CODE_ISSUED, adhesion_payload(expires_at="2026-04-01T10:00")
    )
    assert naive.expires_at == dt.datetime(2026, 4, 1, 10, 0, tzinfo=dt.UTC)  # no offset: UTC


def test_request_from_agent_invitation_event():
    payload = invitation_payload(locale="en-GB")
    request = delivery.request_from_event(events.AGENT_INVITED, payload)
    assert request.kind == delivery.AGENT_INVITATION
    assert request.source_event_id == payload["event_id"]
    assert request.to.addr_spec == "agent@mairie.example.fr"
    assert request.locale == "en"
    assert request.expires_at is None
    assert request.context == {
        "link": payload["link"],
        "commune_name": "Saint-Étienne",
        "email": "agent@mairie.example.fr",
        "expires_at": None,
    }
    deadline = (T0 + dt.timedelta(days=7)).isoformat()
    with_deadline = delivery.request_from_event(events.AGENT_INVITED, invitation_payload(expires_at=deadline))
    assert with_deadline.expires_at == with_deadline.context["expires_at"] == T0 + dt.timedelta(days=7)


@pytest.mark.parametrize(
    "changes",
    [
        {"code": ...},
        {"code": None},
        {"code": ""},
        {"code": 123456789012},
        {"code": "k7qm-3xpd-9wtr"},
        {"code": "K7QM3XPD9WTR"},
        {"code": "K7QM-3XPD-9WT"},
        {"code": "K7QM-3XPD-9WTR-AAAA"},
        {"code": " K7QM-3XPD-9WTR"},
        {"code": "K7QM-3XPD-9WTR\n"},
        {"code": "K7QM-3XPD-<b>R"},
        {"email": ...},
        {"email": "not-an-address"},
        {"email": "a@b.fr\r\nBcc: victim@example.org"},
        {"email": "a@b.fr, c@d.fr"},
        {"commune_name": ...},
        {"commune_name": "  "},
        {"commune_name": "Lyon\nCliquez ici : https://evil.example"},
        {"commune_name": "x" * 201},
        {"family_name": "Martin\r\nBcc: x"},
        {"family_name": 42},
        {"expires_at": ...},
        {"expires_at": ""},
        {"expires_at": "in a month"},
        {"event_id": ""},
        {"event_id": "x" * 37},
    ],
)
def test_adhesion_code_events_that_can_never_be_sent_are_refused(changes):
    with pytest.raises(delivery.InvalidPayload) as info:
        delivery.request_from_event(events.ADHESION_CODE_ISSUED, adhesion_payload(**changes))
    field = next(iter(changes))
    assert field in str(info.value)  # names the field...
    assert CODE not in str(info.value) and "3XPD" not in str(info.value)  # ...never the secret
    assert "@" not in str(info.value) and "Lyon" not in str(info.value)


@pytest.mark.parametrize(
    "changes",
    [
        {"link": ...},
        {"link": ""},
        {"link": "javascript:alert(1)"},
        {"link": "ftp://portal.test/invitation"},
        {"link": "https:///no-host"},
        {"link": "https://portal.test/a b"},
        {"link": "https://portal.test/a\nb"},
        {"email": "agent.mairie.fr"},
        {"email": "agent@localhost"},
        {"email": None},
        {"commune_name": ...},
        {"commune_name": "Lyon\r\nBcc: x"},
        {"expires_at": "soon"},
    ],
)
def test_agent_invitation_events_that_can_never_be_sent_are_refused(changes):
    with pytest.raises(delivery.InvalidPayload) as info:
        delivery.request_from_event(events.AGENT_INVITED, invitation_payload(**changes))
    assert next(iter(changes)) in str(info.value)
    assert "token" not in str(info.value) and "@" not in str(info.value)


def test_names_may_hold_any_printable_letters():
    name = "L'Haÿ-les-Roses\u00a0(Val-de-Marne)"  # apostrophe, diaeresis, no-break space
    request = delivery.request_from_event(events.AGENT_INVITED, invitation_payload(commune_name=name))
    assert request.context["commune_name"] == name


def test_an_adhesion_code_event_delivered_twice_queues_one_message_linking_to_the_portal(sessions):
    clock.set_now(T0)
    payload = adhesion_payload()
    db = WorkerDb(sessions)
    settings = NotifySettings(public_url="https://portail.example.org", requeue_delay_seconds=0)
    first = inbound.handle_event(db, settings, events.ADHESION_CODE_ISSUED, payload)
    second = inbound.handle_event(db, settings, events.ADHESION_CODE_ISSUED, payload)
    assert first is not None and second is None
    with sessions() as session:
        [row] = delivery.messages_for_source(session, payload["event_id"])
        assert row.id == first and row.kind == delivery.ADHESION_CODE
        assert (row.status, row.expires_at, row.to_address) == (
            PENDING,
            T0 + dt.timedelta(days=30),
            payload["email"],
        )
        assert CODE in row.text_body and CODE in row.html_body
        assert "https://portail.example.org/" in row.text_body
        assert 'href="https://portail.example.org/"' in row.html_body
        assert "Saint-Étienne" in row.subject


def test_an_agent_invitation_is_queued_once(sessions):
    clock.set_now(T0)
    payload = invitation_payload()
    db = WorkerDb(sessions)
    first = inbound.handle_event(db, NotifySettings(), events.AGENT_INVITED, payload)
    assert first is not None
    assert inbound.handle_event(db, NotifySettings(), events.AGENT_INVITED, payload) is None
    with sessions() as session:
        [row] = delivery.messages_for_source(session, payload["event_id"])
        assert row.kind == delivery.AGENT_INVITATION and row.expires_at is None
        assert payload["link"] in row.text_body


def test_the_adhesion_code_never_reaches_the_logs(sessions, tmp_path, caplog):
    """Queued, dropped as invalid, or failed on the database: the code is in no log line."""
    caplog.set_level(logging.DEBUG)
    clock.set_now(T0)
    db = WorkerDb(sessions)
    settings = NotifySettings(requeue_delay_seconds=0)
    assert inbound.handle_event(db, settings, events.ADHESION_CODE_ISSUED, adhesion_payload()) is not None
    assert (
        inbound.handle_event(db, settings, events.ADHESION_CODE_ISSUED, adhesion_payload(email="x")) is None
    )
    assert (
        inbound.handle_event(db, settings, events.ADHESION_CODE_ISSUED, adhesion_payload(commune_name=...))
        is None
    )
    broken = WorkerDb(sessionmaker(bind=get_engine(f"sqlite:///{tmp_path / 'no-tables.db'}")))
    with pytest.raises(inbound.RetryLater) as info:
        inbound.handle_event(broken, settings, events.ADHESION_CODE_ISSUED, adhesion_payload())
    assert CODE not in str(info.value)
    with sessions() as session, session.begin():  # the sender's side: claimed, then failed for good
        claim = delivery.claim_next(session, NotifySettings(), skip_locked=False)
    with sessions() as session, session.begin():
        delivery.record_failure(session, claim, NotifySettings(), "SMTPRecipientsRefused 550", True)
    assert "queued message" in caplog.text and "dropped event" in caplog.text and "not stored" in caplog.text
    for secret in (CODE, CODE.replace("-", ""), "3XPD"):
        assert secret not in caplog.text
    assert "famille.martin@example.org" not in caplog.text


def test_an_adhesion_code_that_expired_before_delivery_is_not_sent(sessions, settings):
    clock.set_now(T0)
    payload = adhesion_payload(expires_at=(T0 + dt.timedelta(minutes=5)).isoformat())
    with sessions() as session, session.begin():
        message_id = delivery.accept_event(session, events.ADHESION_CODE_ISSUED, payload).id
    clock.advance(dt.timedelta(minutes=5))
    with sessions() as session, session.begin():
        assert delivery.claim_next(session, settings, skip_locked=False) is None
    with sessions() as session:
        row = session.get(OutgoingMessage, message_id)
        assert (row.status, row.last_error, row.attempts) == (FAILED, "expired", 0)
    [(event_type, announced)] = _outbox(sessions)
    assert event_type == events.MESSAGE_FAILED and announced["kind"] == delivery.ADHESION_CODE
    assert CODE not in str(announced)


def test_an_adhesion_code_still_valid_is_claimed(sessions, settings):
    clock.set_now(T0)
    with sessions() as session, session.begin():
        message_id = delivery.accept_event(session, events.ADHESION_CODE_ISSUED, adhesion_payload()).id
    clock.advance(dt.timedelta(days=29))  # e.g. retries for a long mail server outage
    with sessions() as session, session.begin():
        claim = delivery.claim_next(session, settings, skip_locked=False)
    assert claim is not None and claim.id == message_id


# ------------------------------------------------------------------ settings


def test_public_url_comes_from_the_config():
    config = {"PUBLIC_URL": "https://portail.example.org/"}
    assert NotifySettings.from_config(config).public_url == "https://portail.example.org"
    assert NotifySettings.from_config(config).portal_url == "https://portail.example.org/"
    assert NotifySettings.from_config({}).portal_url == "http://localhost:8000/"
    for wrong in ("portail.example.org", "javascript:alert(1)", "https://portail.example.org/?a=1"):
        with pytest.raises(ValueError):
            NotifySettings.from_config({"PUBLIC_URL": wrong})


# ------------------------------------------------------------------ the RFC 5322 message


def test_built_email_is_parseable_multipart_with_all_headers(settings):
    clock.set_now(T0)
    payload = verification_payload()
    request = delivery.request_from_event(events.EMAIL_VERIFICATION_REQUESTED, payload)
    rendered_row = OutgoingMessage(id=str(uuid.uuid4()), created_at=T0)
    parts = render(request.kind, request.locale, request.context)
    rendered_row.to_address = "parent@example.org"
    rendered_row.subject, rendered_row.text_body, rendered_row.html_body = (
        parts.subject,
        parts.text,
        parts.html,
    )
    rendered_row.locale = "fr"

    raw = delivery.build_email(rendered_row, settings).as_bytes(policy=policy.SMTP)
    parsed = email.message_from_bytes(raw, policy=policy.default)
    assert parsed["To"] == "parent@example.org"
    assert parsed["From"] == "Portail Famille <no-reply@portail.test>"
    assert parsed["Subject"] == "Confirmez votre adresse e-mail"
    assert parsedate_to_datetime(parsed["Date"]) == T0
    assert parsed["Message-ID"] == f"<{rendered_row.id}@portail.test>"
    assert parsed["Content-Language"] == "fr"
    assert parsed["Auto-Submitted"] == "auto-generated"
    assert parsed.get_content_type() == "multipart/alternative"
    assert [p.get_content_type() for p in parsed.iter_parts()] == ["text/plain", "text/html"]
    text = parsed.get_body(("plain",)).get_content()
    html = parsed.get_body(("html",)).get_content()
    assert payload["link"] in text and payload["link"] in html
    link = next(word for word in text.split() if word.startswith("https://"))
    assert parse_qs(urlsplit(link).query)["token"] == [payload["token"]]
    assert b"\r\n" in raw and b"\n" not in raw.replace(b"\r\n", b"")
    # the raw file shows the link whole (8bit text part): grep and copy-paste work on it
    assert payload["link"].encode() in raw


def test_non_ascii_subject_is_encoded(settings):
    row = OutgoingMessage(
        id="m1",
        created_at=T0,
        to_address="elise@example.org",
        subject="Réinitialisation de votre mot de passe",
        text_body="é\n",
        html_body="<p>é</p>\n",
        locale="fr",
    )
    raw = delivery.build_email(row, settings).as_bytes(policy=policy.SMTP)
    assert b"=?utf-8?" in raw
    assert email.message_from_bytes(raw, policy=policy.default)["Subject"] == row.subject


@pytest.mark.parametrize("transport_policy", [policy.SMTP, policy.SMTPUTF8])
@pytest.mark.parametrize(
    "commune_name", ["Saint-Étienne", "Lyon", "Communauté de communes du Val d'Oise", "É" * 90]
)
@pytest.mark.parametrize("lang", ["fr", "en"])
@pytest.mark.parametrize("kind", [delivery.ADHESION_CODE, delivery.AGENT_INVITATION])
def test_long_subjects_survive_folding_exactly(settings, kind, lang, commune_name, transport_policy):
    """Folded over several lines, a subject reads back the same: no space lost, none doubled."""
    context = {
        "code": CODE,
        "commune_name": commune_name,
        "family_name": None,
        "expires_at": T0,
        "portal_url": "https://portal.test/",
        "link": "https://portal.test/x",
        "email": "a@b.fr",
    }
    subject = render(kind, lang, context).subject
    row = OutgoingMessage(
        id="m1", created_at=T0, to_address="a@b.fr", subject=subject, text_body="x\n", html_body="<p>x</p>\n"
    )
    row.locale = lang
    raw = delivery.build_email(row, settings).as_bytes(policy=transport_policy)
    head = raw.split(b"\r\n\r\n", 1)[0]
    assert all(len(line) <= 78 for line in head.split(b"\r\n"))
    assert email.message_from_bytes(raw, policy=policy.default)["Subject"] == subject


def test_subjects_fit_their_column_with_the_longest_commune_name():
    longest = "x" * 200  # the most a payload may carry
    for kind in (delivery.ADHESION_CODE, delivery.AGENT_INVITATION):
        for lang in ("fr", "en"):
            context = {
                "code": CODE,
                "commune_name": longest,
                "family_name": "y" * 200,
                "expires_at": T0,
                "portal_url": "https://portal.test/",
                "link": "https://portal.test/x",
                "email": "a@b.fr",
            }
            assert len(render(kind, lang, context).subject) <= OutgoingMessage.subject.type.length


# ------------------------------------------------------------------ queue, claim, outcome (SQLite)


def test_an_event_delivered_twice_queues_one_message(engine, sessions):
    clock.set_now(T0)
    payload = verification_payload()
    db = WorkerDb(sessions)
    settings = NotifySettings()
    first = inbound.handle_event(db, settings, events.EMAIL_VERIFICATION_REQUESTED, payload)
    second = inbound.handle_event(db, settings, events.EMAIL_VERIFICATION_REQUESTED, payload)
    assert first is not None and second is None
    with sessions() as session:
        count = session.scalar(
            select(func.count())
            .select_from(OutgoingMessage)
            .where(OutgoingMessage.source_event_id == payload["event_id"])
        )
        assert count == 1
        row = session.get(OutgoingMessage, first)
        assert (row.status, row.attempts, row.next_attempt_at) == (PENDING, 0, T0)


def test_an_invalid_event_is_dropped_not_requeued(sessions):
    db = WorkerDb(sessions)
    payload = verification_payload(email="broken")
    assert inbound.handle_event(db, NotifySettings(), events.PASSWORD_RESET_REQUESTED, payload) is None


def test_a_database_failure_asks_for_redelivery(tmp_path):
    broken = sessionmaker(bind=get_engine(f"sqlite:///{tmp_path / 'no-tables.db'}"))
    settings = NotifySettings(requeue_delay_seconds=0)
    with pytest.raises(inbound.RetryLater) as info:
        inbound.handle_event(
            WorkerDb(broken), settings, events.EMAIL_VERIFICATION_REQUESTED, verification_payload()
        )
    assert "parent@example.org" not in str(info.value)


def _queue(sessions, **changes):
    with sessions() as session, session.begin():
        return delivery.accept_event(
            session, events.PASSWORD_RESET_REQUESTED, verification_payload(**changes)
        ).id


def _outbox(sessions):
    with sessions() as session:
        return [(row.event_type, row.payload) for row in session.scalars(select(OutboxEvent)).all()]


def test_claim_send_and_record(sessions, settings):
    clock.set_now(T0)
    message_id = _queue(sessions)
    with sessions() as session, session.begin():
        claim = delivery.claim_next(session, settings, skip_locked=False)
    assert claim.id == message_id and claim.attempt == 1
    with sessions() as session, session.begin():  # claimed: not due for anyone else
        assert delivery.claim_next(session, settings, skip_locked=False) is None
    with sessions() as session, session.begin():
        assert delivery.record_sent(session, claim)
    with sessions() as session:
        row = session.get(OutgoingMessage, message_id)
        assert (row.status, row.attempts, row.sent_at, row.next_attempt_at) == (SENT, 1, T0, None)
    [(event_type, payload)] = _outbox(sessions)
    assert event_type == events.MESSAGE_SENT
    assert set(payload) == {"event_id", "message_id", "kind", "source_event_id"}
    assert payload["message_id"] == message_id and payload["kind"] == delivery.RESET_PASSWORD


def test_failures_back_off_then_fail_for_good(sessions, settings):
    clock.set_now(T0)
    message_id = _queue(sessions)
    for attempt, expected in [(1, PENDING), (2, PENDING), (3, FAILED)]:
        with sessions() as session, session.begin():
            claim = delivery.claim_next(session, settings, skip_locked=False)
        assert claim is not None and claim.attempt == attempt
        with sessions() as session, session.begin():
            assert (
                delivery.record_failure(session, claim, settings, "ConnectionRefusedError", False) == expected
            )
        with sessions() as session:
            row = session.get(OutgoingMessage, message_id)
            assert row.last_error == "ConnectionRefusedError"
        if expected == PENDING:
            wait = delivery.retry_delay(attempt, settings.retry_base_seconds, settings.retry_max_seconds)
            assert row.next_attempt_at == clock.now() + wait
            with sessions() as session, session.begin():  # not due before its time
                assert delivery.claim_next(session, settings, skip_locked=False) is None
            clock.advance(wait)
    assert row.status == FAILED and row.attempts == 3 and row.next_attempt_at is None
    assert [event_type for event_type, _ in _outbox(sessions)] == [events.MESSAGE_FAILED]


def test_a_permanent_refusal_is_not_retried(sessions, settings):
    clock.set_now(T0)
    _queue(sessions)
    with sessions() as session, session.begin():
        claim = delivery.claim_next(session, settings, skip_locked=False)
    with sessions() as session, session.begin():
        assert delivery.record_failure(session, claim, settings, "SMTPRecipientsRefused 550", True) == FAILED


def test_a_lost_claim_records_nothing(sessions, settings):
    clock.set_now(T0)
    message_id = _queue(sessions)
    with sessions() as session, session.begin():
        stale = delivery.claim_next(session, settings, skip_locked=False)
    clock.advance(dt.timedelta(seconds=settings.claim_seconds + 1))  # the lease ran out...
    with sessions() as session, session.begin():
        fresh = delivery.claim_next(session, settings, skip_locked=False)  # ...another sender took it
    assert fresh.id == message_id and fresh.attempt == 2
    with sessions() as session, session.begin():
        assert not delivery.record_sent(session, stale)
        assert delivery.record_failure(session, stale, settings, "x", True) is None
        assert delivery.record_sent(session, fresh)
    assert [event_type for event_type, _ in _outbox(sessions)] == [events.MESSAGE_SENT]


def test_a_link_that_expired_before_delivery_is_not_sent(sessions, settings):
    clock.set_now(T0)
    message_id = _queue(sessions, expires_at=(T0 + dt.timedelta(minutes=5)).isoformat())
    clock.advance(dt.timedelta(minutes=5))
    with sessions() as session, session.begin():
        assert delivery.claim_next(session, settings, skip_locked=False) is None
    with sessions() as session:
        row = session.get(OutgoingMessage, message_id)
        assert (row.status, row.last_error, row.attempts) == (FAILED, "expired", 0)
    assert [event_type for event_type, _ in _outbox(sessions)] == [events.MESSAGE_FAILED]


def test_migrations_match_the_models(engine):
    with engine.connect() as connection:
        diff = compare_metadata(MigrationContext.configure(connection), Base.metadata)
    assert diff == []


def test_message_ids_sort_in_creation_order():
    import uuid as uuid_module

    from services.notify.models import time_ordered_id

    ids = [time_ordered_id() for _ in range(5000)]  # many within one millisecond
    assert ids == sorted(ids) and len(set(ids)) == len(ids)
    parsed_id = uuid_module.UUID(ids[0])
    assert parsed_id.version == 7 and parsed_id.variant == uuid_module.RFC_4122

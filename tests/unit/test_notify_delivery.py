import datetime as dt
import email
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

"""notify against the real PostgreSQL and RabbitMQ: identity's events in, emails out (files or a real
SMTP server), exactly once, across redeliveries, restarts and mail server outages."""

import datetime as dt
import email
import uuid
from email import policy
from urllib.parse import parse_qs, urlsplit

import eventlet
import pytest
from nameko.events import event_handler
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_hook, entrypoint_waiter
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.common.db import get_engine
from services.common.errors import Forbidden, ValidationFailed
from services.notify.models import OutgoingMessage
from services.notify.service import NotifyService

pytestmark = pytest.mark.integration

VERIFY = "email_verification_requested"
RESET = "password_reset_requested"
CHANGED = "password_changed"


def identity_event(event_type, locale="fr", email_address=None):
    token = uuid.uuid4().hex + "_-x"
    path = "/account/verify-email" if event_type == VERIFY else "/account/reset-password"
    payload = {
        "event_id": str(uuid.uuid4()),
        "account_id": str(uuid.uuid4()),
        "email": email_address or f"parent-{uuid.uuid4().hex[:8]}@example.org",
        "locale": locale,
    }
    if event_type != CHANGED:
        expires = dt.datetime.now(dt.UTC) + dt.timedelta(hours=1)
        payload.update(
            token=token, expires_at=expires.isoformat(), link=f"http://portal.test{path}?token={token}"
        )
    return payload


def wait_for(predicate, timeout=10.0, interval=0.05):
    deadline = eventlet.hubs.get_hub().clock() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if eventlet.hubs.get_hub().clock() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        eventlet.sleep(interval)


def message_status(container, event_id):
    with entrypoint_hook(container, "message_status") as status:
        return status(event_id)


def wait_status(container, event_id, status="sent", timeout=10.0):
    return wait_for(lambda: _has_status(container, event_id, status), timeout)


def _has_status(container, event_id, status):
    found = message_status(container, event_id)
    return found if found and found["status"] == status else None


def eml_files(mail_dir):
    if not mail_dir.exists():
        return []
    return sorted(p for p in mail_dir.iterdir() if p.suffix == ".eml")


def parsed(path):
    return email.message_from_bytes(path.read_bytes(), policy=policy.default)


def bodies(message):
    return message.get_body(("plain",)).get_content(), message.get_body(("html",)).get_content()


def emails_holding(mail_dir, needle):
    return [p for p in eml_files(mail_dir) if any(needle in body for body in bodies(parsed(p)))]


def rows_for(db_uri, event_id):
    with Session(get_engine(db_uri)) as session:
        return session.scalar(
            select(func.count())
            .select_from(OutgoingMessage)
            .where(OutgoingMessage.source_event_id == event_id)
        )


def received_ids(recorder):
    return [message["Message-ID"] for message in recorder.messages()]


class SentListener:
    """Stands for any service that reacts to notify's events."""

    name = "notify_test_listener"

    @event_handler("notify", "message_sent")
    def on_sent(self, payload):
        return payload


def test_verification_event_gives_one_email_with_the_link(container_factory, notify_config):
    listener = container_factory(SentListener, notify_config)
    listener.start()
    container = container_factory(NotifyService, notify_config)
    container.start()
    payload = identity_event(VERIFY)
    mail_dir = notify_config["MAIL_DIR"]

    def is_ours(worker_ctx, result, exc_info):
        return worker_ctx.args[0]["source_event_id"] == payload["event_id"]

    with entrypoint_waiter(listener, "on_sent", callback=is_ours, timeout=10) as sent:
        event_dispatcher(notify_config)("identity", VERIFY, payload)
    status = message_status(container, payload["event_id"])
    assert status["status"] == "sent" and status["attempts"] == 1 and status["kind"] == "verify_email"
    assert "@" not in str(status)  # no address, no body

    announced = sent.get()
    assert announced["message_id"] == status["message_id"] and announced["kind"] == "verify_email"
    assert set(announced) == {"event_id", "message_id", "kind", "source_event_id"}

    from pathlib import Path

    [path] = eml_files(Path(mail_dir))
    assert path.name == f"{status['message_id']}.eml"
    message = parsed(path)
    assert message["To"] == payload["email"]
    assert message["From"] == "Portail Famille <no-reply@portail.test>"
    assert message["Subject"] == "Confirmez votre adresse e-mail"
    assert message["Message-ID"] == f"<{status['message_id']}@portail.test>"
    assert message["Date"]
    text, html = bodies(message)
    assert payload["link"] in text and payload["link"] in html
    link = next(word for word in text.split() if word.startswith("http://portal.test/"))
    assert parse_qs(urlsplit(link).query)["token"] == [payload["token"]]


def test_the_same_event_delivered_twice_gives_one_email(
    container_factory, notify_config, notify_db_uri, tmp_path
):
    container = container_factory(NotifyService, notify_config)
    container.start()
    payload = identity_event(RESET, locale="en")
    dispatch = event_dispatcher(notify_config)
    with entrypoint_waiter(container, "on_password_reset_requested"):
        dispatch("identity", RESET, payload)
    with entrypoint_waiter(container, "on_password_reset_requested"):
        dispatch("identity", RESET, payload)  # a redelivery: same event id
    wait_status(container, payload["event_id"])
    with entrypoint_waiter(container, "on_password_reset_requested"):
        dispatch("identity", RESET, payload)  # and once more, after it was sent
    eventlet.sleep(0.5)  # several sender rounds

    mails = emails_holding(tmp_path / "mail", payload["link"])
    assert len(mails) == 1
    assert parsed(mails[0])["Subject"] == "Reset your password"
    assert rows_for(notify_db_uri, payload["event_id"]) == 1
    assert message_status(container, payload["event_id"])["attempts"] == 1


def test_events_waiting_while_notify_is_down_are_each_sent_once(
    container_factory, notify_config, notify_db_uri, smtp_recorder
):
    smtp_recorder.start()
    config = {**notify_config, "SMTP_URL": smtp_recorder.url}
    first = container_factory(NotifyService, config)
    first.start()  # declares notify's durable queues...
    first.kill()  # ...then dies: nobody consumes

    events = [
        (VERIFY, identity_event(VERIFY)),
        (RESET, identity_event(RESET)),
        (CHANGED, identity_event(CHANGED)),
    ]
    dispatch = event_dispatcher(config)
    for event_type, payload in events:
        dispatch("identity", event_type, payload)
    eventlet.sleep(0.3)
    assert all(rows_for(notify_db_uri, payload["event_id"]) == 0 for _, payload in events)  # still queued

    second = container_factory(NotifyService, config)
    second.start()
    statuses = [wait_status(second, payload["event_id"]) for _, payload in events]
    eventlet.sleep(0.5)  # room for a duplicate to show up

    ids = received_ids(smtp_recorder)
    for status in statuses:
        assert ids.count(f"<{status['message_id']}@portail.test>") == 1
        assert status["attempts"] == 1
    assert [s["kind"] for s in statuses] == ["verify_email", "reset_password", "password_changed"]
    for _, payload in events:
        assert rows_for(notify_db_uri, payload["event_id"]) == 1


def test_a_mail_server_that_is_down_gets_the_message_later(container_factory, notify_config, smtp_recorder):
    config = {**notify_config, "SMTP_URL": smtp_recorder.url}  # nothing listens there yet
    container = container_factory(NotifyService, config)
    container.start()
    payload = identity_event(RESET)
    event_dispatcher(config)("identity", RESET, payload)

    def failed_twice():
        status = message_status(container, payload["event_id"])
        return status if status and status["attempts"] >= 2 else None

    status = wait_for(failed_twice)
    assert status["status"] == "pending"
    assert status["last_error"] == "ConnectionRefusedError"
    assert smtp_recorder.received == []

    smtp_recorder.start()
    status = wait_status(container, payload["event_id"])
    assert status["attempts"] >= 3 and status["last_error"] is None
    [message] = smtp_recorder.messages()
    assert message["Message-ID"] == f"<{status['message_id']}@portail.test>"
    assert payload["link"] in bodies(message)[0]
    assert [e.rcpt_tos for e in smtp_recorder.received] == [[payload["email"]]]


def test_two_instances_share_the_work_without_sending_twice(
    container_factory, notify_config, notify_db_uri, smtp_recorder
):
    smtp_recorder.start()
    config = {**notify_config, "SMTP_URL": smtp_recorder.url}
    instances = [container_factory(NotifyService, config) for _ in range(2)]
    for instance in instances:
        instance.start()
    payloads = [identity_event(CHANGED) for _ in range(20)]
    dispatch = event_dispatcher(config)
    for payload in payloads:
        dispatch("identity", CHANGED, payload)
    statuses = [wait_status(instances[0], payload["event_id"]) for payload in payloads]
    eventlet.sleep(0.5)
    ids = received_ids(smtp_recorder)
    for status in statuses:
        assert ids.count(f"<{status['message_id']}@portail.test>") == 1
        assert status["attempts"] == 1


def test_send_test_is_for_admins_and_internal_callers(container_factory, notify_config, tmp_path):
    container = container_factory(NotifyService, notify_config)
    container.start()
    parent = {"account_id": str(uuid.uuid4()), "roles": []}
    admin = {"account_id": str(uuid.uuid4()), "roles": ["admin"]}

    with entrypoint_hook(container, "send_test", context_data=parent) as send_test:
        with pytest.raises(Forbidden):
            send_test("someone@example.org")
    with entrypoint_hook(container, "message_status", context_data=parent) as status:
        with pytest.raises(Forbidden):
            status(str(uuid.uuid4()))
    with entrypoint_hook(container, "send_test", context_data=admin) as send_test:
        with pytest.raises(ValidationFailed) as info:
            send_test("not an address")
        assert info.value.details == {"to": "Adresse e-mail invalide."}
        queued = send_test("admin@example.org", "en")
    with entrypoint_hook(container, "send_test") as send_test:  # internal caller: no account
        internal = send_test("ops@example.org")

    for request, subject in [
        (queued, "Portail Famille test message"),
        (internal, "Message de test du Portail Famille"),
    ]:
        status = wait_status(container, request["source_event_id"])
        message = parsed(tmp_path / "mail" / f"{status['message_id']}.eml")
        assert message["Subject"] == subject
    assert message_status(container, str(uuid.uuid4())) is None
    with entrypoint_hook(container, "health") as health:
        assert health() == {"service": "notify", "database": "ok", "transport": "file"}


def test_a_queued_message_goes_out_at_once_not_at_the_next_poll(container_factory, notify_config, tmp_path):
    config = {**notify_config, "NOTIFY_POLL_SECONDS": 30, "max_workers": 4}
    container = container_factory(NotifyService, config)
    container.start()
    eventlet.sleep(0.2)  # the sender's first round has passed: it now waits for a wake-up
    payload = identity_event(CHANGED, locale="en")
    started = eventlet.hubs.get_hub().clock()
    event_dispatcher(config)("identity", CHANGED, payload)
    status = wait_status(container, payload["event_id"], timeout=5)
    assert eventlet.hubs.get_hub().clock() - started < 5
    message = parsed(tmp_path / "mail" / f"{status['message_id']}.eml")
    assert message["Subject"] == "Your password was changed"


def test_an_event_that_cannot_be_stored_yet_is_redelivered(
    container_factory, notify_config, pg_databases, tmp_path
):
    """The database is not ready (no tables yet): the handler fails, the event goes back to the
    queue instead of being lost, and is handled once the database is there."""
    from services.common.migrate import upgrade

    late_uri = pg_databases.create("notify_late")
    config = {**notify_config, "DB_URIS": {"notify": late_uri}}
    container = container_factory(NotifyService, config)
    container.start()
    payload = identity_event(VERIFY)
    event_dispatcher(config)("identity", VERIFY, payload)
    eventlet.sleep(0.5)  # several failed deliveries
    assert eml_files(tmp_path / "mail") == []

    upgrade("notify", late_uri)
    status = wait_status(container, payload["event_id"])
    assert status["attempts"] == 1
    assert len(emails_holding(tmp_path / "mail", payload["link"])) == 1

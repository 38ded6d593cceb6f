"""notify against the real PostgreSQL and RabbitMQ: the communes service's events (adhesion codes,
agent invitations) in, one email each out, however often an event is delivered."""

import datetime as dt
import email
import logging
import uuid
from email import policy
from zoneinfo import ZoneInfo

import eventlet
import pytest
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_hook, entrypoint_waiter
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.common.db import get_engine
from services.notify.models import OutgoingMessage
from services.notify.service import NotifyService

pytestmark = pytest.mark.integration

COMMUNES = "communes"
ADHESION = "adhesion_code_issued"
INVITED = "agent_invited"
PUBLIC_URL = "http://portal.test"


@pytest.fixture
def config(notify_config):
    return {**notify_config, "PUBLIC_URL": PUBLIC_URL}


def adhesion_event(locale="fr", code="K7QM-3XPD-9WTR", **changes):
    expires = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(days=30)
    payload = {
        "event_id": str(uuid.uuid4()),
        "family_id": str(uuid.uuid4()),
        "commune_id": str(uuid.uuid4()),
        "commune_name": "Saint-Étienne",
        "family_name": "Martin",
        "email": f"famille-{uuid.uuid4().hex[:8]}@example.org",
        "code": code,
        "expires_at": expires.isoformat(),
        "locale": locale,
    }
    payload.update(changes)
    return payload


def invitation_event(locale="fr", **changes):
    token = uuid.uuid4().hex
    payload = {
        "event_id": str(uuid.uuid4()),
        "commune_id": str(uuid.uuid4()),
        "commune_name": "Saint-Étienne",
        "email": f"agent-{uuid.uuid4().hex[:8]}@mairie.example.fr",
        "locale": locale,
        "link": f"{PUBLIC_URL}/account/invitation?token={token}",
    }
    payload.update(changes)
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


def wait_sent(container, event_id):
    def sent():
        found = message_status(container, event_id)
        return found if found and found["status"] == "sent" else None

    return wait_for(sent)


def eml_files(mail_dir):
    return sorted(p for p in mail_dir.iterdir() if p.suffix == ".eml") if mail_dir.exists() else []


def parsed(path):
    return email.message_from_bytes(path.read_bytes(), policy=policy.default)


def bodies(message):
    """(text, html) with the file's CRLF line ends read back as \\n."""
    parts = (message.get_body(("plain",)), message.get_body(("html",)))
    return tuple(part.get_content().replace("\r\n", "\n") for part in parts)


def emails_holding(mail_dir, needle):
    return [p for p in eml_files(mail_dir) if any(needle in body for body in bodies(parsed(p)))]


def rows_for(db_uri, event_id):
    with Session(get_engine(db_uri)) as session:
        return session.scalar(
            select(func.count())
            .select_from(OutgoingMessage)
            .where(OutgoingMessage.source_event_id == event_id)
        )


def test_adhesion_code_event_gives_one_email_with_the_code(container_factory, config, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    container = container_factory(NotifyService, config)
    container.start()
    payload = adhesion_event()
    event_dispatcher(config)(COMMUNES, ADHESION, payload)
    status = wait_sent(container, payload["event_id"])
    assert status["kind"] == "adhesion_code" and status["attempts"] == 1 and status["locale"] == "fr"

    [path] = eml_files(tmp_path / "mail")
    assert path.name == f"{status['message_id']}.eml"
    message = parsed(path)
    assert message["To"] == payload["email"]
    assert message["Subject"] == "Votre code d'adhésion au Portail Famille (Saint-Étienne)"
    assert message["Content-Language"] == "fr"
    text, html = bodies(message)
    assert "\n    K7QM-3XPD-9WTR\n" in text
    assert "monospace" in html and ">K7QM-3XPD-9WTR</span>" in html
    assert f"{PUBLIC_URL}/" in text and f'href="{PUBLIC_URL}/"' in html
    paris = dt.datetime.fromisoformat(payload["expires_at"]).astimezone(ZoneInfo("Europe/Paris"))
    deadline = f"valable jusqu'au {paris:%d/%m/%Y} à {paris:%H}h{paris:%M} (heure de Paris)"
    assert deadline in text and deadline in html
    assert "K7QM-3XPD-9WTR" not in caplog.text and payload["email"] not in caplog.text


def test_agent_invitation_event_gives_one_email_with_the_link(container_factory, config, tmp_path):
    container = container_factory(NotifyService, config)
    container.start()
    payload = invitation_event(locale="en")
    event_dispatcher(config)(COMMUNES, INVITED, payload)
    status = wait_sent(container, payload["event_id"])
    assert status["kind"] == "agent_invitation" and status["attempts"] == 1

    [path] = eml_files(tmp_path / "mail")
    message = parsed(path)
    assert message["To"] == payload["email"]
    assert message["Subject"] == "Invitation to join the Portail Famille as a staff member (Saint-Étienne)"
    text, html = bodies(message)
    assert f"\n{payload['link']}\n" in text
    assert f'href="{payload["link"]}"' in html
    assert payload["email"] in text and "staff member of Saint-Étienne" in text


def test_the_same_communes_event_delivered_twice_gives_one_email(
    container_factory, config, notify_db_uri, tmp_path
):
    container = container_factory(NotifyService, config)
    container.start()
    code = "Z9Y8-X7W6-V5T4"
    adhesion = adhesion_event(code=code, locale="en")
    invitation = invitation_event()
    dispatch = event_dispatcher(config)
    for handler, event_type, payload in [
        ("on_adhesion_code_issued", ADHESION, adhesion),
        ("on_agent_invited", INVITED, invitation),
    ]:
        with entrypoint_waiter(container, handler):
            dispatch(COMMUNES, event_type, payload)
        with entrypoint_waiter(container, handler):
            dispatch(COMMUNES, event_type, payload)  # a redelivery: same event id
        wait_sent(container, payload["event_id"])
        with entrypoint_waiter(container, handler):
            dispatch(COMMUNES, event_type, payload)  # and once more, after it was sent
    eventlet.sleep(0.5)  # several sender rounds

    [adhesion_mail] = emails_holding(tmp_path / "mail", code)
    assert parsed(adhesion_mail)["Subject"] == "Your Portail Famille membership code (Saint-Étienne)"
    assert len(emails_holding(tmp_path / "mail", invitation["link"])) == 1
    assert len(eml_files(tmp_path / "mail")) == 2
    for payload in (adhesion, invitation):
        assert rows_for(notify_db_uri, payload["event_id"]) == 1
        assert message_status(container, payload["event_id"])["attempts"] == 1


def test_an_undeliverable_communes_event_is_dropped_and_the_next_one_goes_out(
    container_factory, config, notify_db_uri, tmp_path, caplog
):
    """A code that is not XXXX-XXXX-XXXX or a link that is not http(s) can never be sent: the event
    is dropped (not requeued forever, not logged with its secret), and the queue moves on."""
    caplog.set_level(logging.INFO)
    container = container_factory(NotifyService, config)
    container.start()
    bad_code = adhesion_event(code="k7qm 3xpd 9wtr")
    bad_link = invitation_event(link="javascript:alert(1)")
    good = adhesion_event(code="AAAA-BBBB-CCCC")
    dispatch = event_dispatcher(config)
    with entrypoint_waiter(container, "on_adhesion_code_issued"):
        dispatch(COMMUNES, ADHESION, bad_code)
    with entrypoint_waiter(container, "on_agent_invited"):
        dispatch(COMMUNES, INVITED, bad_link)
    dispatch(COMMUNES, ADHESION, good)
    wait_sent(container, good["event_id"])
    eventlet.sleep(0.3)

    assert [parsed(p)["To"] for p in eml_files(tmp_path / "mail")] == [good["email"]]
    assert rows_for(notify_db_uri, bad_code["event_id"]) == rows_for(notify_db_uri, bad_link["event_id"]) == 0
    assert message_status(container, bad_code["event_id"]) is None
    assert (
        f"dropped event {bad_code['event_id']} (adhesion_code_issued): missing or invalid code" in caplog.text
    )
    assert f"dropped event {bad_link['event_id']} (agent_invited): missing or invalid link" in caplog.text
    assert "3xpd" not in caplog.text.lower() and "AAAA-BBBB-CCCC" not in caplog.text

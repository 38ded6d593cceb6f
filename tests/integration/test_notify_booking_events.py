"""notify against the real PostgreSQL and RabbitMQ, next to the real identity and communes services
(one vhost of their own): booking's events in (dispatched as service "booking"), the recipient's
address asked from identity (`contact`) or communes (`family_contact`) when the event is handled,
one email each out, however often an event is delivered, and none lost while identity is down."""

import datetime as dt
import email
import itertools
import logging
import uuid
from email import policy
from types import SimpleNamespace
from zoneinfo import ZoneInfo

import eventlet
import pytest
from nameko.standalone.events import event_dispatcher
from nameko.testing.services import entrypoint_hook, entrypoint_waiter
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.common.context import Caller
from services.common.db import get_engine
from services.communes.service import CommunesService
from services.identity import accounts
from services.identity.service import IdentityService
from services.identity.settings import IdentitySettings
from services.notify.models import OutgoingMessage
from services.notify.service import NotifyService

pytestmark = pytest.mark.integration

BOOKING = "booking"
PASSWORD = "correct horse battery"
ADMIN = Caller(account_id=str(uuid.uuid4()), roles=("admin",)).as_context()
_insee = itertools.count(60_000 + uuid.uuid4().int % 30_000)


@pytest.fixture
def vhost(rabbit_vhosts):
    """A fresh vhost per test: no durable queue (notify's events, identity's RPCs) outlives its test."""
    return rabbit_vhosts.amqp_uri("notify-booking")


@pytest.fixture
def configs(vhost, notify_config, identity_config, communes_config):
    return SimpleNamespace(
        notify={**notify_config, "AMQP_URI": vhost, "RPC_TIMEOUT_SECONDS": 5},
        identity={**identity_config, "AMQP_URI": vhost},
        communes={**communes_config, "AMQP_URI": vhost},
    )


@pytest.fixture
def platform(container_factory, configs):
    identity = container_factory(IdentityService, configs.identity)
    identity.start()
    communes = container_factory(CommunesService, configs.communes)
    communes.start()
    notify = container_factory(NotifyService, configs.notify)
    notify.start()
    return SimpleNamespace(identity=identity, communes=communes, notify=notify, config=configs.notify)


def call(container, method, *args, caller=None, **kwargs):
    with entrypoint_hook(container, method, context_data=caller) as hook:
        return hook(*args, **kwargs)


def new_email(label):
    return f"{label}-{uuid.uuid4().hex[:10]}@example.org"


def new_family(communes_container):
    commune = call(communes_container, "create_commune", "Nantes", f"{next(_insee):05d}", caller=ADMIN)
    address = new_email("famille")
    family = call(
        communes_container,
        "create_family",
        commune["id"],
        f"F-{uuid.uuid4().hex[:6]}",
        "Martin",
        address,
        caller=ADMIN,
    )
    return family, address


def ids():
    return str(uuid.uuid4())


def cart_event(account_id):
    return {
        "event_id": ids(),
        "account_id": account_id,
        "idempotency_key": ids(),
        "results": [],
        "lines": [
            {
                "child_first_name": "Léa",
                "activity_name": "Cantine",
                "date": "2026-12-07",
                "action": "book",
                "outcome": "confirmed",
                "reason": None,
            },
            {
                "child_first_name": "Léa",
                "activity_name": "Cantine",
                "date": "2026-12-08",
                "action": "book",
                "outcome": "rejected",
                "reason": "FULL",
            },
            {
                "child_first_name": "Tom",
                "activity_name": "Garderie",
                "date": "2026-12-09",
                "action": "book",
                "outcome": "waitlisted",
                "reason": None,
            },
        ],
    }


def promoted_event(account_id, hold_expires_at):
    return {
        "event_id": ids(),
        "booking_id": ids(),
        "child_id": ids(),
        "activity_id": ids(),
        "date": "2026-12-07",
        "commune_id": ids(),
        "family_id": ids(),
        "account_id": account_id,
        "status": "pending_payment",
        "hold_expires_at": hold_expires_at.isoformat(),
        "child_first_name": "Léa",
        "activity_name": "Cantine",
    }


def decided_event(account_id):
    return {
        "event_id": ids(),
        "request_id": ids(),
        "booking_id": ids(),
        "child_id": ids(),
        "activity_id": ids(),
        "date": "2026-12-07",
        "commune_id": ids(),
        "family_id": ids(),
        "account_id": account_id,
        "decision": "rejected",
        "reason": "Délai de prévenance dépassé",
        "billing_mode": "postpaid",
        "child_first_name": "Léa",
        "activity_name": "Cantine",
    }


def agent_event(family):
    return {
        "event_id": ids(),
        "commune_id": family["commune_id"],
        "family_id": family["id"],
        "child_id": ids(),
        "account_id": ids(),  # the agent who acted: never the recipient
        "child_first_name": "Léa",
        "activity_name": "Cantine",
        "activity_id": ids(),
        "lines": [
            {"date": "2026-12-07", "action": "book", "outcome": "confirmed", "reason": None},
            {"date": "2026-12-08", "action": "cancel", "outcome": "cancelled", "reason": None},
        ],
    }


def wait_for(predicate, timeout=15.0, interval=0.05):
    deadline = eventlet.hubs.get_hub().clock() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if eventlet.hubs.get_hub().clock() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        eventlet.sleep(interval)


def message_status(container, event_id):
    return call(container, "message_status", event_id)


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
    parts = (message.get_body(("plain",)), message.get_body(("html",)))
    return tuple(part.get_content().replace("\r\n", "\n") for part in parts)


def emails_to(mail_dir, address, subject):
    return [p for p in eml_files(mail_dir) if parsed(p)["To"] == address and parsed(p)["Subject"] == subject]


def the_email(mail_dir, status):
    path = mail_dir / f"{status['message_id']}.eml"
    assert path.is_file()
    return parsed(path)


def rows_for(db_uri, event_id):
    with Session(get_engine(db_uri)) as session:
        return session.scalar(
            select(func.count())
            .select_from(OutgoingMessage)
            .where(OutgoingMessage.source_event_id == event_id)
        )


def test_each_booking_event_gives_one_email_to_the_right_address(platform, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    mail = tmp_path / "mail"
    french = call(platform.identity, "register", new_email("parent"), PASSWORD, "fr")
    english = call(platform.identity, "register", new_email("parent"), PASSWORD, "en")
    family, family_address = new_family(platform.communes)
    hold = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=2)

    cart = cart_event(french["id"])
    promoted = promoted_event(english["id"], hold)
    decided = decided_event(french["id"])
    changed = agent_event(family)
    dispatch = event_dispatcher(platform.config)
    dispatch(BOOKING, "cart_validated", cart)
    dispatch(BOOKING, "booking_promoted", promoted)
    dispatch(BOOKING, "cancellation_decided", decided)
    dispatch(BOOKING, "booking_changed_by_agent", changed)

    # the cart's summary, in French, grouped by child then activity
    status = wait_sent(platform.notify, cart["event_id"])
    assert (status["kind"], status["locale"], status["attempts"]) == ("booking_summary", "fr", 1)
    message = the_email(mail, status)
    assert message["To"] == french["email"] and message["Content-Language"] == "fr"
    assert message["Subject"] == "Récapitulatif de vos réservations"
    text, html = bodies(message)
    assert "Léa\n  Cantine\n    - lundi 7 décembre 2026 (réservation) : confirmé\n" in text
    assert "    - mardi 8 décembre 2026 (réservation) : refusé : complet\n" in text
    assert "Tom\n  Garderie\n    - mercredi 9 décembre 2026 (réservation) : sur liste d'attente\n" in text
    assert "<td" in html and "refusé : complet</td>" in html and "lundi 7 décembre 2026" in html

    # a freed place, in English (the account's locale), with the payment deadline in Paris time
    status = wait_sent(platform.notify, promoted["event_id"])
    assert (status["kind"], status["locale"]) == ("place_freed", "en")
    message = the_email(mail, status)
    assert message["To"] == english["email"]
    assert message["Subject"] == "A place became available for Léa on Monday 7 December 2026"
    text, html = bodies(message)
    paris = hold.astimezone(ZoneInfo("Europe/Paris"))
    deadline = f"before {paris.day} {paris:%B} {paris.year}, {paris:%H:%M} (Paris time)"
    assert deadline in text and "Cantine" in html

    # the agent's decision on a cancellation request
    status = wait_sent(platform.notify, decided["event_id"])
    message = the_email(mail, status)
    assert message["To"] == french["email"] and status["kind"] == "cancellation_decision"
    assert message["Subject"] == "Annulation refusée pour Léa le lundi 7 décembre 2026"
    text, _ = bodies(message)
    assert "Motif : Délai de prévenance dépassé" in text and "La réservation est maintenue" in text

    # an agent's change: to the family's contact address from communes, not to the agent
    status = wait_sent(platform.notify, changed["event_id"])
    message = the_email(mail, status)
    assert message["To"] == family_address and status["locale"] == "fr"
    assert message["Subject"] == "Réservations de Léa modifiées par votre mairie"
    text, html = bodies(message)
    assert "  - mardi 8 décembre 2026 (annulation) : annulé\n" in text and "famille Martin" in html

    for address, subject, count in [
        (french["email"], "Récapitulatif de vos réservations", 1),
        (english["email"], "A place became available for Léa on Monday 7 December 2026", 1),
        (family_address, "Réservations de Léa modifiées par votre mairie", 1),
    ]:
        assert len(emails_to(mail, address, subject)) == count
    for address in (french["email"], english["email"], family_address, "Léa"):
        assert address not in caplog.text


def test_a_redelivered_booking_event_gives_one_email(platform, notify_db_uri, tmp_path):
    mail = tmp_path / "mail"
    account = call(platform.identity, "register", new_email("parent"), PASSWORD, "fr")
    family, family_address = new_family(platform.communes)
    cart = cart_event(account["id"])
    changed = agent_event(family)
    dispatch = event_dispatcher(platform.config)
    for handler, event_type, payload in [
        ("on_cart_validated", "cart_validated", cart),
        ("on_booking_changed_by_agent", "booking_changed_by_agent", changed),
    ]:
        with entrypoint_waiter(platform.notify, handler):
            dispatch(BOOKING, event_type, payload)
        with entrypoint_waiter(platform.notify, handler):
            dispatch(BOOKING, event_type, payload)  # a redelivery: same event id
        wait_sent(platform.notify, payload["event_id"])
        with entrypoint_waiter(platform.notify, handler):
            dispatch(BOOKING, event_type, payload)  # and once more, after it was sent
    eventlet.sleep(0.5)  # several sender rounds

    assert len(emails_to(mail, account["email"], "Récapitulatif de vos réservations")) == 1
    assert len(emails_to(mail, family_address, "Réservations de Léa modifiées par votre mairie")) == 1
    for payload in (cart, changed):
        assert rows_for(notify_db_uri, payload["event_id"]) == 1
        assert message_status(platform.notify, payload["event_id"])["attempts"] == 1


def test_an_unknown_account_or_family_is_dropped_with_ids_only(platform, notify_db_uri, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    nobody, no_family = ids(), {"id": ids(), "commune_id": ids()}
    lost_cart = cart_event(nobody)
    lost_change = agent_event(no_family)
    account = call(platform.identity, "register", new_email("parent"), PASSWORD, "fr")
    good = decided_event(account["id"])
    dispatch = event_dispatcher(platform.config)
    with entrypoint_waiter(platform.notify, "on_cart_validated"):
        dispatch(BOOKING, "cart_validated", lost_cart)
    with entrypoint_waiter(platform.notify, "on_booking_changed_by_agent"):
        dispatch(BOOKING, "booking_changed_by_agent", lost_change)
    dispatch(BOOKING, "cancellation_decided", good)
    wait_sent(platform.notify, good["event_id"])

    assert (
        rows_for(notify_db_uri, lost_cart["event_id"])
        == rows_for(notify_db_uri, lost_change["event_id"])
        == 0
    )
    assert f"dropped event {lost_cart['event_id']} (cart_validated): no account {nobody}" in caplog.text
    assert (
        f"dropped event {lost_change['event_id']} (booking_changed_by_agent): no family {no_family['id']}"
        in caplog.text
    )
    assert [
        parsed(p)["To"] for p in eml_files(tmp_path / "mail") if "Annulation" in parsed(p)["Subject"]
    ] == [account["email"]]


def test_while_identity_is_down_the_event_waits_and_its_email_goes_once_it_is_back(
    container_factory, configs, identity_db_uri, notify_db_uri, tmp_path, caplog
):
    caplog.set_level(logging.INFO)
    address = new_email("parent")
    with Session(get_engine(identity_db_uri)) as session, session.begin():
        settings = IdentitySettings(public_url="http://portal.test", issuer="http://portal.test")
        account_id = accounts.register(session, settings, address, PASSWORD, "fr").id
    notify = container_factory(NotifyService, configs.notify)
    notify.start()  # identity is not running: its `contact` cannot answer
    cart = cart_event(account_id)
    event_dispatcher(configs.notify)(BOOKING, "cart_validated", cart)
    wait_for(lambda: caplog.text.count(f"event {cart['event_id']} (cart_validated) not handled") >= 3)
    assert rows_for(notify_db_uri, cart["event_id"]) == 0  # requeued, not dropped

    identity = container_factory(IdentityService, configs.identity)
    identity.start()
    status = wait_sent(notify, cart["event_id"])
    assert status["kind"] == "booking_summary"
    [path] = emails_to(tmp_path / "mail", address, "Récapitulatif de vos réservations")
    assert path.name == f"{status['message_id']}.eml"
    assert rows_for(notify_db_uri, cart["event_id"]) == 1
    assert "SERVICE_UNAVAILABLE" in caplog.text and address not in caplog.text

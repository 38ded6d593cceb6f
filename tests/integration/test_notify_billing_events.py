"""notify against the real PostgreSQL and RabbitMQ, next to the real identity service (a vhost of
their own per test): billing's events in (dispatched as service "billing"), the payer's address and
language asked of identity (`contact`) when the event is handled, one email each out (a receipt, a
refund and why, a credit, a failed payment and until when the days stay held), however often an
event is delivered."""

import datetime as dt
import email
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

from services.common.db import get_engine
from services.identity.service import IdentityService
from services.notify.models import OutgoingMessage
from services.notify.service import NotifyService

pytestmark = pytest.mark.integration

BILLING = "billing"
PASSWORD = "correct horse battery"
NBSP = "\u00a0"


@pytest.fixture
def platform(container_factory, rabbit_vhosts, notify_config, identity_config):
    vhost = rabbit_vhosts.amqp_uri("notify-billing")  # no durable queue outlives its test
    config = {**notify_config, "AMQP_URI": vhost, "RPC_TIMEOUT_SECONDS": 5}
    identity = container_factory(IdentityService, {**identity_config, "AMQP_URI": vhost})
    identity.start()
    notify = container_factory(NotifyService, config)
    notify.start()
    return SimpleNamespace(identity=identity, notify=notify, config=config)


def call(container, method, *args, **kwargs):
    with entrypoint_hook(container, method) as hook:
        return hook(*args, **kwargs)


def register(platform, locale):
    return call(
        platform.identity, "register", f"parent-{uuid.uuid4().hex[:10]}@example.org", PASSWORD, locale
    )


def ids():
    return str(uuid.uuid4())


def base(account_id):
    return {"event_id": ids(), "commune_id": ids(), "family_id": ids(), "account_id": account_id}


def succeeded(account_id, payment_id):
    days = [ids(), ids(), ids()]
    return {
        **base(account_id),
        "payment_id": payment_id,
        "amount_cents": 123450,
        "total_cents": 124000,
        "booking_ids": days,
    }


def refunded(account_id, payment_id):
    return {
        **base(account_id),
        "refund_id": ids(),
        "payment_id": payment_id,
        "amount_cents": 450,
        "reason": "place_lost",
        "booking_ids": [ids()],
    }


def credited(account_id):
    return {**base(account_id), "amount_cents": 375, "booking_id": ids()}


def failed(account_id, payment_id, expires_at):
    return {**base(account_id), "payment_id": payment_id, "booking_ids": [ids()], "expires_at": expires_at}


def wait_for(predicate, timeout=15.0, interval=0.05):
    deadline = eventlet.hubs.get_hub().clock() + timeout
    while True:
        value = predicate()
        if value:
            return value
        if eventlet.hubs.get_hub().clock() > deadline:
            raise AssertionError(f"condition not met within {timeout} s")
        eventlet.sleep(interval)


def wait_sent(platform, event_id):
    def sent():
        found = call(platform.notify, "message_status", event_id)
        return found if found and found["status"] == "sent" else None

    return wait_for(sent)


def the_email(mail_dir, status):
    path = mail_dir / f"{status['message_id']}.eml"
    assert path.is_file()
    return email.message_from_bytes(path.read_bytes(), policy=policy.default)


def bodies(message):
    parts = (message.get_body(("plain",)), message.get_body(("html",)))
    return tuple(part.get_content().replace("\r\n", "\n") for part in parts)


def rows_for(db_uri, event_id):
    with Session(get_engine(db_uri)) as session:
        query = select(func.count()).select_from(OutgoingMessage)
        return session.scalar(query.where(OutgoingMessage.source_event_id == event_id))


def test_each_billing_event_gives_one_email_to_the_payer(platform, tmp_path, caplog):
    caplog.set_level(logging.INFO)
    mail = tmp_path / "mail"
    french, english = register(platform, "fr"), register(platform, "en")
    payment_id = ids()
    hold = dt.datetime.now(dt.UTC).replace(microsecond=0) + dt.timedelta(hours=2)
    receipt = succeeded(french["id"], payment_id)
    refund = refunded(french["id"], payment_id)
    credit = credited(french["id"])
    failure = failed(english["id"], ids(), hold.isoformat())
    dispatch = event_dispatcher(platform.config)
    dispatch(BILLING, "payment_succeeded", receipt)
    dispatch(BILLING, "refund_issued", refund)
    dispatch(BILLING, "credit_granted", credit)
    dispatch(BILLING, "payment_failed", failure)

    # the receipt: amount in euros (French format), credit used, number of days, payment id
    status = wait_sent(platform, receipt["event_id"])
    assert (status["kind"], status["locale"], status["attempts"]) == ("payment_receipt", "fr", 1)
    message = the_email(mail, status)
    assert message["To"] == french["email"] and message["Subject"] == "Paiement reçu : 1 234,50 €"
    text, html = bodies(message)
    assert f"votre paiement de 1\u202f234,50{NBSP}€ pour 3 jours de réservation." in text
    assert f"Votre avoir a réglé 5,50{NBSP}€ ; le total était de 1\u202f240,00{NBSP}€." in text
    assert f"Référence du paiement : {payment_id}" in text and payment_id in html

    # the refund of a day whose place was lost
    status = wait_sent(platform, refund["event_id"])
    message = the_email(mail, status)
    assert message["To"] == french["email"] and status["kind"] == "refund"
    assert message["Subject"] == "Remboursement de 4,50 €"
    text, html = bodies(message)
    assert "Motif : la place n'était plus disponible, vous êtes remboursé." in text
    assert f"Nous vous remboursons 4,50{NBSP}€" in text and payment_id in text

    # a credit (avoir) on the family account
    status = wait_sent(platform, credit["event_id"])
    message = the_email(mail, status)
    assert message["To"] == french["email"] and status["kind"] == "credit"
    assert message["Subject"] == "Un avoir de 3,75 € sur le compte de votre famille"
    assert f"un avoir de 3,75{NBSP}€ a été ajouté au compte de votre famille" in bodies(message)[0]

    # a failed payment, in English (the account's locale): held until the expiry, Paris time
    status = wait_sent(platform, failure["event_id"])
    assert (status["kind"], status["locale"]) == ("payment_failed", "en")
    message = the_email(mail, status)
    assert message["To"] == english["email"] and message["Subject"] == "Your payment did not go through"
    paris = hold.astimezone(ZoneInfo("Europe/Paris"))
    text, html = bodies(message)
    assert f"until {paris.day} {paris:%B} {paris.year}, {paris:%H:%M} (Paris time)" in text
    assert "pay again" in text and "Pay on the Portail Famille" in html

    for address in (french["email"], english["email"]):
        assert address not in caplog.text


def test_a_redelivered_billing_event_gives_one_email(platform, notify_db_uri, tmp_path):
    account = register(platform, "fr")
    receipt = succeeded(account["id"], ids())
    dispatch = event_dispatcher(platform.config)
    with entrypoint_waiter(platform.notify, "on_payment_succeeded"):
        dispatch(BILLING, "payment_succeeded", receipt)
    with entrypoint_waiter(platform.notify, "on_payment_succeeded"):
        dispatch(BILLING, "payment_succeeded", receipt)  # a redelivery: same event id
    wait_sent(platform, receipt["event_id"])
    with entrypoint_waiter(platform.notify, "on_payment_succeeded"):
        dispatch(BILLING, "payment_succeeded", receipt)  # and once more, after it was sent
    eventlet.sleep(0.5)  # several sender rounds

    assert rows_for(notify_db_uri, receipt["event_id"]) == 1
    assert call(platform.notify, "message_status", receipt["event_id"])["attempts"] == 1
    messages = [
        email.message_from_bytes(p.read_bytes(), policy=policy.default) for p in (tmp_path / "mail").iterdir()
    ]
    sent = [m for m in messages if m["To"] == account["email"] and m["Subject"].startswith("Paiement reçu")]
    assert len(sent) == 1


def test_a_malformed_billing_event_is_dropped_and_the_next_one_goes(platform, notify_db_uri, caplog):
    caplog.set_level(logging.INFO)
    account = register(platform, "fr")
    bad = {**succeeded(account["id"], ids()), "amount_cents": "12.50"}  # not integer cents
    good = credited(account["id"])
    dispatch = event_dispatcher(platform.config)
    with entrypoint_waiter(platform.notify, "on_payment_succeeded"):
        dispatch(BILLING, "payment_succeeded", bad)
    dispatch(BILLING, "credit_granted", good)
    wait_sent(platform, good["event_id"])
    assert rows_for(notify_db_uri, bad["event_id"]) == 0
    assert (
        f"dropped event {bad['event_id']} (payment_succeeded): missing or invalid amount_cents" in caplog.text
    )

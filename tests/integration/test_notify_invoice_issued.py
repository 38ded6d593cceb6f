"""notify against the real PostgreSQL and RabbitMQ, next to the real communes service (a vhost of
their own per test): billing's invoice_issued (dispatched as service "billing") becomes one email to
the family's contact address (communes' `family_contact`, asked when the event is handled), in
French, with the number, the month, the amount left to pay, the due date and the invoices site's
link, however often the event is delivered; a credit note says so."""

import uuid
from types import SimpleNamespace

import pytest
from nameko.standalone.events import event_dispatcher

from services.communes.service import CommunesService
from services.notify.service import NotifyService
from tests.integration.test_notify_booking_events import bodies, new_family, rows_for, the_email, wait_sent

pytestmark = pytest.mark.integration

INVOICES_SITE = "https://factures.example.org/"


@pytest.fixture
def platform(container_factory, rabbit_vhosts, notify_config, communes_config):
    vhost = rabbit_vhosts.amqp_uri("notify-invoice")  # no durable queue outlives its test
    config = {
        **notify_config,
        "AMQP_URI": vhost,
        "RPC_TIMEOUT_SECONDS": 5,
        "INVOICES_SITE_URL": INVOICES_SITE,
    }
    communes = container_factory(CommunesService, {**communes_config, "AMQP_URI": vhost})
    communes.start()
    notify = container_factory(NotifyService, config)
    notify.start()
    return SimpleNamespace(communes=communes, notify=notify, config=config)


def issued(family, kind="invoice", number="2026-000042"):
    return {
        "event_id": str(uuid.uuid4()),
        "invoice_id": str(uuid.uuid4()),
        "number": number,
        "commune_id": family["commune_id"],
        "family_id": family["id"],
        "month": "2026-03",
        "kind": kind,
        "total_cents": 12450,
        "credit_applied_cents": 1000 if kind == "invoice" else 0,
        "amount_due_cents": 11450 if kind == "invoice" else 0,
        "due_date": "2026-05-01",
    }


def test_an_issued_invoice_is_emailed_to_the_family_once(platform, tmp_path):
    mail = tmp_path / "mail"
    family, address = new_family(platform.communes)
    invoice, note = issued(family), issued(family, "credit_note", "2026-000043")
    dispatch = event_dispatcher(platform.config)
    dispatch("billing", "invoice_issued", invoice)
    dispatch("billing", "invoice_issued", invoice)  # redelivered: still one email
    dispatch("billing", "invoice_issued", note)

    status = wait_sent(platform.notify, invoice["event_id"])
    assert (status["kind"], status["locale"]) == ("invoice_issued", "fr")
    message = the_email(mail, status)
    assert message["To"] == address
    assert message["Subject"] == "Votre facture n° 2026-000042 (mars 2026)"
    text, html = bodies(message)
    assert (
        "124,50\u00a0€" in text and "Reste à payer : 114,50\u00a0€, avant le vendredi 1er mai 2026." in text
    )
    assert "10,00\u00a0€" in text  # the credit applied
    assert INVOICES_SITE in text and f'href="{INVOICES_SITE}"' in html

    status = wait_sent(platform.notify, note["event_id"])
    message = the_email(mail, status)
    assert message["Subject"] == "Un avoir n° 2026-000043 (mars 2026)"
    assert "porté au crédit de votre compte famille" in bodies(message)[0]
    assert rows_for(platform.config["DB_URIS"]["notify"], invoice["event_id"]) == 1

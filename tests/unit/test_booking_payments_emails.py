"""Billing's events in notify (the emails about payments), without a broker: amounts in euros, what
each event must carry, what each email says in French and English, and the handling on SQLite with
a stand-in for identity's `contact` (one email per event, however often it arrives)."""

import datetime as dt
import logging
import re
import uuid

import pytest
from sqlalchemy import select
from sqlalchemy.orm import sessionmaker

from services.common import clock
from services.common.db import WorkerDb, get_engine
from services.common.migrate import upgrade
from services.notify import billing, delivery, events, inbound
from services.notify.models import OutgoingMessage
from services.notify.rendering import LOCALES, TEMPLATES_DIR, euros, render
from services.notify.settings import NotifySettings

PORTAL = "https://portal.test/"
T0 = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)
HOLD = dt.datetime(2026, 11, 30, 9, 20, tzinfo=dt.UTC)  # 10h20 in Paris
PLACEHOLDER = re.compile(r"\{\{|\}\}|\{%|%\}|\{#|#\}")
NNBSP, NBSP = "\u202f", "\u00a0"


def ids():
    return str(uuid.uuid4())


def succeeded(**changes):
    payload = {
        "event_id": ids(),
        "payment_id": ids(),
        "commune_id": ids(),
        "family_id": ids(),
        "account_id": ids(),
        "amount_cents": 1250,
        "total_cents": 1450,
        "booking_ids": [ids(), ids(), ids()],
    }
    return {**payload, **changes}


def failed(**changes):
    payload = {
        "event_id": ids(),
        "payment_id": ids(),
        "commune_id": ids(),
        "family_id": ids(),
        "account_id": ids(),
        "booking_ids": [ids(), ids()],
        "expires_at": HOLD.isoformat(),
    }
    return {**payload, **changes}


def refunded(**changes):
    payload = {
        "event_id": ids(),
        "refund_id": ids(),
        "payment_id": ids(),
        "commune_id": ids(),
        "family_id": ids(),
        "account_id": ids(),
        "amount_cents": 450,
        "reason": "place_lost",
        "booking_ids": [ids()],
    }
    return {**payload, **changes}


def credited(**changes):
    payload = {
        "event_id": ids(),
        "commune_id": ids(),
        "family_id": ids(),
        "account_id": ids(),
        "amount_cents": 450,
        "booking_id": ids(),
    }
    return {**payload, **changes}


PAYLOADS = {
    events.PAYMENT_SUCCEEDED: succeeded,
    events.PAYMENT_FAILED: failed,
    events.REFUND_ISSUED: refunded,
    events.CREDIT_GRANTED: credited,
}


def notice(event_type, **changes):
    return billing.notice_from_event(event_type, PAYLOADS[event_type](**changes), PORTAL)


def rendered(event_type, lang, **changes):
    found = notice(event_type, **changes)
    return render(found.kind, lang, found.context)


# ------------------------------------------------------------------ amounts


@pytest.mark.parametrize(
    "cents, fr, en",
    [
        (0, f"0,00{NBSP}€", "€0.00"),
        (5, f"0,05{NBSP}€", "€0.05"),
        (1250, f"12,50{NBSP}€", "€12.50"),
        (123456, f"1{NNBSP}234,56{NBSP}€", "€1,234.56"),
        (100_000_000, f"1{NNBSP}000{NNBSP}000,00{NBSP}€", "€1,000,000.00"),
        (-250, f"-2,50{NBSP}€", "-€2.50"),
    ],
)
def test_euros_french_first(cents, fr, en):
    assert euros(cents, "fr") == fr
    assert euros(cents, "en") == en


# ------------------------------------------------------------------ what each event must carry


def test_consumed_event_names_and_kinds():
    assert set(billing.KIND_OF_BILLING_EVENT) == {
        "payment_succeeded",
        "payment_failed",
        "refund_issued",
        "credit_granted",
        "invoice_issued",
    }
    for kind in billing.KIND_OF_BILLING_EVENT.values():
        assert len(kind) <= OutgoingMessage.kind.type.length
        for lang in LOCALES:
            for suffix in (".subject.txt", ".txt", ".html"):
                assert (TEMPLATES_DIR / lang / f"{kind}{suffix}").is_file()


def test_every_billing_email_goes_to_the_account_that_paid():
    for event_type in PAYLOADS:
        payload = PAYLOADS[event_type]()
        found = billing.notice_from_event(event_type, payload, PORTAL)
        assert (found.recipient, found.recipient_id, found.event_id) == (
            "account",
            payload["account_id"],
            payload["event_id"],
        )


def test_receipt_reads_the_amount_the_credit_used_and_the_days():
    days = [ids(), ids()]
    found = notice(events.PAYMENT_SUCCEEDED, booking_ids=[*days, days[0]])
    assert found.kind == "payment_receipt" and found.expires_at is None
    context = found.context
    assert (context["amount_cents"], context["total_cents"], context["credit_used_cents"]) == (
        1250,
        1450,
        200,
    )
    assert context["days"] == 2  # distinct days


def test_a_failed_payment_email_expires_with_the_holds():
    found = notice(events.PAYMENT_FAILED)
    assert found.expires_at == HOLD and found.context["expires_at"] == HOLD
    without = notice(events.PAYMENT_FAILED, expires_at=None)
    assert without.expires_at is None and without.context["expires_at"] is None


@pytest.mark.parametrize(
    "event_type, changes, field",
    [
        (events.PAYMENT_SUCCEEDED, {"amount_cents": "12.50"}, "amount_cents"),
        (events.PAYMENT_SUCCEEDED, {"amount_cents": 12.5}, "amount_cents"),
        (events.PAYMENT_SUCCEEDED, {"amount_cents": True}, "amount_cents"),
        (events.PAYMENT_SUCCEEDED, {"amount_cents": -1}, "amount_cents"),
        (events.PAYMENT_SUCCEEDED, {"total_cents": 1000}, "total_cents"),  # less than the amount
        (events.PAYMENT_SUCCEEDED, {"booking_ids": []}, "booking_ids"),
        (events.PAYMENT_SUCCEEDED, {"booking_ids": [None]}, "booking_ids"),
        (events.PAYMENT_SUCCEEDED, {"payment_id": None}, "payment_id"),
        (events.PAYMENT_SUCCEEDED, {"account_id": ""}, "account_id"),
        (events.PAYMENT_SUCCEEDED, {"event_id": None}, "event_id"),
        (events.REFUND_ISSUED, {"reason": "goodwill"}, "reason"),
        (events.REFUND_ISSUED, {"amount_cents": 0}, "amount_cents"),
        (events.CREDIT_GRANTED, {"amount_cents": None}, "amount_cents"),
        (events.PAYMENT_FAILED, {"expires_at": "tomorrow"}, "expires_at"),
        (events.PAYMENT_FAILED, {"booking_ids": "b1"}, "booking_ids"),
    ],
)
def test_a_bad_field_is_named_never_quoted(event_type, changes, field):
    with pytest.raises(delivery.InvalidPayload, match=field) as raised:
        notice(event_type, **changes)
    for value in changes.values():
        if isinstance(value, str) and value:
            assert value not in str(raised.value).replace(field, "")


def test_unknown_events_and_non_objects_are_refused():
    with pytest.raises(delivery.InvalidPayload):
        billing.notice_from_event("invoice_issued", succeeded(), PORTAL)
    with pytest.raises(delivery.InvalidPayload):
        billing.notice_from_event(events.PAYMENT_SUCCEEDED, ["x"], PORTAL)


# ------------------------------------------------------------------ what each email says


@pytest.mark.parametrize("lang", LOCALES)
@pytest.mark.parametrize("event_type", list(PAYLOADS))
def test_every_billing_email_renders_fully(event_type, lang):
    result = rendered(event_type, lang)
    for part in (result.subject, result.text, result.html):
        assert part.strip() and not PLACEHOLDER.search(part) and "Undefined" not in part
    assert "\n" not in result.subject and len(result.subject) <= OutgoingMessage.subject.type.length
    assert f'<html lang="{lang}">' in result.html and PORTAL in result.text


def test_receipt_in_french_then_english():
    payment_id = ids()
    french = rendered(events.PAYMENT_SUCCEEDED, "fr", payment_id=payment_id)
    assert french.subject == "Paiement reçu : 12,50 €"
    assert f"votre paiement de 12,50{NBSP}€ pour 3 jours de réservation." in french.text
    assert f"Votre avoir a réglé 2,00{NBSP}€ ; le total était de 14,50{NBSP}€." in french.text
    assert f"Référence du paiement : {payment_id}" in french.text and payment_id in french.html
    english = rendered(events.PAYMENT_SUCCEEDED, "en", payment_id=payment_id)
    assert english.subject == "Payment received: €12.50"
    assert "your payment of €12.50 for 3 booked days." in english.text and payment_id in english.text


def test_a_receipt_without_credit_or_paid_by_credit_alone():
    plain = rendered(events.PAYMENT_SUCCEEDED, "fr", amount_cents=900, total_cents=900, booking_ids=[ids()])
    assert f"paiement de 9,00{NBSP}€ pour 1 jour de réservation." in plain.text and "avoir" not in plain.text
    by_credit = rendered(events.PAYMENT_SUCCEEDED, "fr", amount_cents=0, total_cents=450, booking_ids=[ids()])
    assert by_credit.subject == "Réservations réglées avec votre avoir"
    assert (
        f"Votre jour de réservation (4,50{NBSP}€) a été entièrement réglé avec votre avoir." in by_credit.text
    )


@pytest.mark.parametrize(
    "reason, fr, en",
    [
        (
            "place_lost",
            "la place n'était plus disponible, vous êtes remboursé",
            "the place was no longer available",
        ),
        ("cancellation", "annulation d'un jour déjà payé", "a day you had already paid for was cancelled"),
        ("agent", "remboursement décidé par votre mairie", "a refund decided by your town hall"),
    ],
)
def test_refund_says_how_much_and_why(reason, fr, en):
    french = rendered(events.REFUND_ISSUED, "fr", reason=reason)
    assert french.subject == "Remboursement de 4,50 €"
    assert f"Nous vous remboursons 4,50{NBSP}€" in french.text and f"Motif : {fr}" in french.text
    assert f"Motif&nbsp;: {fr}" in french.html
    english = rendered(events.REFUND_ISSUED, "en", reason=reason)
    assert english.subject == "Refund of €4.50" and f"Reason: {en}" in english.text


def test_credit_names_the_avoir_on_the_family_account():
    french = rendered(events.CREDIT_GRANTED, "fr", amount_cents=1234)
    assert french.subject == "Un avoir de 12,34 € sur le compte de votre famille"
    assert f"un avoir de 12,34{NBSP}€ a été ajouté au compte de votre famille" in french.text
    english = rendered(events.CREDIT_GRANTED, "en", amount_cents=1234)
    assert "a credit of €12.34 has been added to your family's account" in english.text


def test_failed_payment_says_until_when_the_days_stay_held():
    french = rendered(events.PAYMENT_FAILED, "fr")
    assert french.subject == "Votre paiement n'a pas abouti"
    assert "Vos réservations restent en attente de paiement jusqu'au 30/11/2026 à 10h20 (heure de Paris)" in (
        french.text
    )
    assert "payer de nouveau" in french.text
    english = rendered(events.PAYMENT_FAILED, "en", booking_ids=[ids()])
    assert "Your booking stays held for payment until 30 November 2026, 10:20 (Paris time)" in english.text
    vague = rendered(events.PAYMENT_FAILED, "fr", expires_at=None, booking_ids=[ids()])
    assert "Votre réservation reste en attente de paiement pendant un temps limité" in vague.text


# ------------------------------------------------------------------ handling (SQLite, stand-in identity)


class Identity:
    """Stands for identity's `contact`; counts the calls."""

    def __init__(self, accounts):
        self.accounts = accounts
        self.calls = []

    def contact(self, account_id):
        self.calls.append(account_id)
        return self.accounts.get(account_id)


@pytest.fixture
def db(tmp_path):
    uri = f"sqlite:///{tmp_path / 'notify.db'}"
    upgrade("notify", uri)
    return WorkerDb(sessionmaker(bind=get_engine(uri), expire_on_commit=False))


def handle(db, identity, event_type, payload):
    settings = NotifySettings(requeue_delay_seconds=0)
    return inbound.handle_booking_event(db, settings, identity, None, event_type, payload)


def stored(db, event_id):
    with db.transaction() as session:
        query = select(OutgoingMessage).where(OutgoingMessage.source_event_id == event_id)
        return list(session.scalars(query).all())


@pytest.mark.parametrize("event_type", list(PAYLOADS))
def test_each_billing_event_queues_one_email_to_the_payer(db, caplog, event_type):
    caplog.set_level(logging.INFO)
    clock.set_now(T0)
    payload = PAYLOADS[event_type]()
    identity = Identity({payload["account_id"]: {"email": "payer@example.org", "locale": "en"}})
    first = handle(db, identity, event_type, payload)
    again = handle(db, identity, event_type, payload)  # a redelivery: nobody asked, nothing queued
    assert first is not None and again is None
    assert identity.calls == [payload["account_id"]]
    [row] = stored(db, payload["event_id"])
    assert (row.id, row.kind, row.to_address, row.locale) == (
        first,
        billing.KIND_OF_BILLING_EVENT[event_type],
        "payer@example.org",
        "en",
    )
    assert "payer@example.org" not in caplog.text


def test_a_billing_event_for_an_unknown_account_is_dropped(db, caplog):
    payload = succeeded()
    assert handle(db, Identity({}), events.PAYMENT_SUCCEEDED, payload) is None
    assert stored(db, payload["event_id"]) == []
    assert f"no account {payload['account_id']}" in caplog.text

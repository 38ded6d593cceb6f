"""Booking's events in notify, without a broker: what each event must carry (validation), how each
email reads in French and English (dates, outcome labels, escaping), and the handling on SQLite with
stand-ins for identity's `contact` and communes' `family_contact` (redelivery, unknown recipient,
a service down)."""

import datetime as dt
import logging
import re
import uuid

import pytest
from markupsafe import escape
from sqlalchemy import func, select
from sqlalchemy.orm import sessionmaker

from services.common import clock
from services.common.db import WorkerDb, get_engine
from services.common.errors import Forbidden, ServiceTimeout, ServiceUnavailable
from services.common.migrate import upgrade
from services.notify import booking, delivery, events, inbound
from services.notify.models import OutgoingMessage
from services.notify.rendering import (
    OUTCOME_LABELS,
    REASON_LABELS,
    long_date,
    outcome_label,
    render,
)
from services.notify.settings import NotifySettings

T0 = dt.datetime(2026, 11, 30, 9, 0, tzinfo=dt.UTC)
HOLD = dt.datetime(2026, 12, 1, 13, 30, tzinfo=dt.UTC)  # 14h30 in Paris (winter)
PORTAL = "http://localhost:8000/"
HOSTILE = 'Léa <script>alert("x")</script> & Cie'
PLACEHOLDER = re.compile(r"\{\{|\}\}|\{%|%\}|\{#|#\}")

FR_OUTCOMES = {
    "confirmed": "confirmé",
    "waitlisted": "sur liste d'attente",
    "pending_payment": "en attente de paiement",
    "requested": "demande d'annulation transmise",
    "cancelled": "annulé",
    "rejected": "refusé",
}
FR_REASONS = {
    "FULL": "refusé : complet",
    "DEADLINE_PASSED": "refusé : date limite dépassée",
    "CLOSED": "refusé : fermé ce jour-là",
    "NOT_ELIGIBLE": "refusé : enfant non éligible",
    "ALREADY_BOOKED": "refusé : déjà réservé",
    "NOT_BOOKED": "refusé : aucune réservation à annuler",
    "CANCELLATION_NOT_ALLOWED": "refusé : annulation non autorisée",
    "NOT_SCHEDULED": "refusé : pas d'activité ce jour-là",
}
EN_REASONS = {
    "FULL": "refused: full",
    "DEADLINE_PASSED": "refused: deadline passed",
    "CLOSED": "refused: closed that day",
    "NOT_ELIGIBLE": "refused: child not eligible",
    "ALREADY_BOOKED": "refused: already booked",
    "NOT_BOOKED": "refused: no booking to cancel",
    "CANCELLATION_NOT_ALLOWED": "refused: cancellation not allowed",
    "NOT_SCHEDULED": "refused: no activity that day",
}


def ids():
    return str(uuid.uuid4())


def line(date="2026-12-07", action="book", outcome="confirmed", reason=None, **names):
    return {"date": date, "action": action, "outcome": outcome, "reason": reason, **names}


def named(child="Léa", activity="Cantine", **changes):
    return line(**{"child_first_name": child, "activity_name": activity, **changes})


def without_ellipsis(payload):
    return {key: value for key, value in payload.items() if value is not ...}  # `...`: leave the key out


def cart_payload(**changes):
    payload = {
        "event_id": ids(),
        "account_id": ids(),
        "idempotency_key": "cart-1",
        "results": [{"child_id": ids(), "activity_id": ids(), "date": "2026-12-07", "outcome": "confirmed"}],
        "lines": [named()],
    }
    payload.update(changes)
    return without_ellipsis(payload)


def promoted_payload(**changes):
    payload = {
        "event_id": ids(),
        "booking_id": ids(),
        "child_id": ids(),
        "activity_id": ids(),
        "date": "2026-12-07",
        "commune_id": ids(),
        "family_id": ids(),
        "account_id": ids(),
        "status": "pending_payment",
        "hold_expires_at": HOLD.isoformat(),
        "child_first_name": "Léa",
        "activity_name": "Cantine",
    }
    payload.update(changes)
    return without_ellipsis(payload)


def decided_payload(**changes):
    payload = {
        "event_id": ids(),
        "request_id": ids(),
        "booking_id": ids(),
        "child_id": ids(),
        "activity_id": ids(),
        "date": "2026-12-07",
        "commune_id": ids(),
        "family_id": ids(),
        "account_id": ids(),
        "decision": "approved",
        "reason": None,
        "billing_mode": "postpaid",
        "child_first_name": "Léa",
        "activity_name": "Cantine",
    }
    payload.update(changes)
    return without_ellipsis(payload)


def agent_payload(**changes):
    payload = {
        "event_id": ids(),
        "commune_id": ids(),
        "family_id": ids(),
        "child_id": ids(),
        "child_first_name": "Léa",
        "activity_name": "Cantine",
        "lines": [line(), line(date="2026-12-08", action="cancel", outcome="cancelled")],
    }
    payload.update(changes)
    return without_ellipsis(payload)


PAYLOADS = {
    events.CART_VALIDATED: cart_payload,
    events.BOOKING_PROMOTED: promoted_payload,
    events.CANCELLATION_DECIDED: decided_payload,
    events.BOOKING_CHANGED_BY_AGENT: agent_payload,
}


def notice(event_type, **changes):
    return booking.notice_from_event(event_type, PAYLOADS[event_type](**changes), PORTAL)


def rendered(event_type, lang="fr", family_name="Martin", **changes):
    found = notice(event_type, **changes)
    context = dict(found.context)
    if found.recipient == booking.FAMILY:
        context["family_name"] = family_name
    return render(found.kind, lang, context)


# ------------------------------------------------------------------ the contract with booking


def test_consumed_event_names_and_codes_match_booking():
    booking_events = pytest.importorskip("services.booking.events")
    outcomes = pytest.importorskip("services.booking.outcomes")
    assert events.BOOKING == "booking"
    assert events.CART_VALIDATED == booking_events.CART_VALIDATED
    assert events.BOOKING_PROMOTED == booking_events.BOOKING_PROMOTED
    for name in ("CANCELLATION_DECIDED", "BOOKING_CHANGED_BY_AGENT"):
        if hasattr(booking_events, name):  # being added to booking alongside
            assert getattr(events, name) == getattr(booking_events, name)
    assert set(booking.OUTCOMES) == set(outcomes.OUTCOMES)
    assert set(booking.REASONS) == set(outcomes.REASONS)


def test_every_outcome_and_reason_has_a_label_in_both_languages():
    for lang in ("fr", "en"):
        assert set(OUTCOME_LABELS[lang]) == set(booking.OUTCOMES)
        assert set(REASON_LABELS[lang]) == set(booking.REASONS)


def test_kinds_fit_their_column():
    for kind in booking.KIND_OF_BOOKING_EVENT.values():
        assert len(kind) <= OutgoingMessage.kind.type.length


# ------------------------------------------------------------------ validation


def test_cart_validated_reads_lines_grouped_by_child_then_activity():
    lines = [
        named(child="Léa", activity="Cantine", date="2026-12-08", outcome="rejected", reason="FULL"),
        named(child="Tom", activity="Garderie", date="2026-12-07"),
        named(child="Léa", activity="Garderie", date="2026-12-09", outcome="waitlisted"),
        named(child="Léa", activity="Cantine", date="2026-12-07"),
    ]
    found = notice(events.CART_VALIDATED, lines=lines)
    assert (found.kind, found.recipient, found.expires_at) == (booking.BOOKING_SUMMARY, booking.ACCOUNT, None)
    payload_account = found.recipient_id
    assert isinstance(payload_account, str) and payload_account
    children = found.context["children"]
    assert [c["first_name"] for c in children] == ["Léa", "Tom"]
    assert [a["name"] for a in children[0]["activities"]] == ["Cantine", "Garderie"]
    cantine = children[0]["activities"][0]["lines"]
    assert [(d["date"], d["outcome"], d["reason"]) for d in cantine] == [
        (dt.date(2026, 12, 7), "confirmed", None),
        (dt.date(2026, 12, 8), "rejected", "FULL"),
    ]
    assert found.context["outcomes"] == ["confirmed", "rejected", "waitlisted"]


def test_booking_promoted_to_pending_payment_expires_with_its_hold():
    found = notice(events.BOOKING_PROMOTED)
    assert (found.kind, found.recipient) == (booking.PLACE_FREED, booking.ACCOUNT)
    assert found.context["hold_expires_at"] == HOLD and found.expires_at == HOLD
    assert found.context["date"] == dt.date(2026, 12, 7) and found.context["portal_url"] == PORTAL
    confirmed = notice(events.BOOKING_PROMOTED, status="confirmed", hold_expires_at=None)
    assert confirmed.expires_at is None and confirmed.context["hold_expires_at"] is None


def test_cancellation_decided_keeps_the_agents_reason_on_one_line():
    found = notice(events.CANCELLATION_DECIDED, decision="rejected", reason="  Trop tard,\r\n  désolé ")
    assert (found.kind, found.recipient) == (booking.CANCELLATION_DECISION, booking.ACCOUNT)
    assert found.context["reason"] == "Trop tard, désolé"
    assert notice(events.CANCELLATION_DECIDED, reason="   ").context["reason"] is None
    assert notice(events.CANCELLATION_DECIDED, billing_mode=...).context["billing_mode"] is None


def test_booking_changed_by_agent_goes_to_the_family_not_the_agent():
    payload = agent_payload(account_id=ids())  # booking names the agent who acted: not a recipient
    found = booking.notice_from_event(events.BOOKING_CHANGED_BY_AGENT, payload, PORTAL)
    assert (found.kind, found.recipient, found.recipient_id) == (
        booking.AGENT_BOOKING_CHANGE,
        booking.FAMILY,
        payload["family_id"],
    )
    assert [d["date"].day for d in found.context["lines"]] == [7, 8]


@pytest.mark.parametrize(
    "event_type, changes, error",
    [
        (events.CART_VALIDATED, {"event_id": ...}, "missing or invalid event_id"),
        (events.CART_VALIDATED, {"account_id": ...}, "missing or invalid account_id"),
        (events.CART_VALIDATED, {"account_id": 12}, "missing or invalid account_id"),
        (events.CART_VALIDATED, {"account_id": "x" * 65}, "missing or invalid account_id"),
        (events.CART_VALIDATED, {"lines": ...}, "missing or invalid lines"),
        (events.CART_VALIDATED, {"lines": []}, "missing or invalid lines"),
        (events.CART_VALIDATED, {"lines": [named()] * 501}, "missing or invalid lines"),
        (events.CART_VALIDATED, {"lines": ["x"]}, "missing or invalid lines"),
        (events.CART_VALIDATED, {"lines": [named(date="07/12/2026")]}, "missing or invalid lines.date"),
        (events.CART_VALIDATED, {"lines": [named(date="2026-02-30")]}, "missing or invalid lines.date"),
        (events.CART_VALIDATED, {"lines": [named(action="swap")]}, "missing or invalid lines.action"),
        (events.CART_VALIDATED, {"lines": [named(outcome="done")]}, "missing or invalid lines.outcome"),
        (
            events.CART_VALIDATED,
            {"lines": [named(outcome="rejected", reason="NOPE")]},
            "missing or invalid lines.reason",
        ),
        (
            events.CART_VALIDATED,
            {"lines": [named(child="Léa\nBcc: x")]},
            "missing or invalid child_first_name",
        ),
        (events.CART_VALIDATED, {"lines": [named(activity=["x"])]}, "missing or invalid activity_name"),
        (events.BOOKING_PROMOTED, {"status": "waitlisted"}, "missing or invalid status"),
        (events.BOOKING_PROMOTED, {"hold_expires_at": None}, "missing or invalid hold_expires_at"),
        (events.BOOKING_PROMOTED, {"hold_expires_at": "demain"}, "missing or invalid hold_expires_at"),
        (events.BOOKING_PROMOTED, {"child_first_name": ""}, "missing or invalid child_first_name"),
        (events.BOOKING_PROMOTED, {"activity_name": "x" * 201}, "missing or invalid activity_name"),
        (events.BOOKING_PROMOTED, {"date": None}, "missing or invalid date"),
        (events.BOOKING_PROMOTED, {"account_id": None}, "missing or invalid account_id"),
        (events.CANCELLATION_DECIDED, {"decision": "maybe"}, "missing or invalid decision"),
        (events.CANCELLATION_DECIDED, {"reason": 42}, "invalid reason"),
        (events.CANCELLATION_DECIDED, {"reason": "a\x00b"}, "invalid reason"),
        (events.CANCELLATION_DECIDED, {"reason": "x" * 1001}, "invalid reason"),
        (events.CANCELLATION_DECIDED, {"billing_mode": "free"}, "missing or invalid billing_mode"),
        (events.CANCELLATION_DECIDED, {"date": "2026-13-01"}, "missing or invalid date"),
        (events.BOOKING_CHANGED_BY_AGENT, {"family_id": ...}, "missing or invalid family_id"),
        (events.BOOKING_CHANGED_BY_AGENT, {"lines": []}, "missing or invalid lines"),
        (
            events.BOOKING_CHANGED_BY_AGENT,
            {"lines": [line(outcome=None)]},
            "missing or invalid lines.outcome",
        ),
        (events.BOOKING_CHANGED_BY_AGENT, {"child_first_name": None}, "missing or invalid child_first_name"),
    ],
)
def test_booking_events_that_can_never_be_sent_are_refused(event_type, changes, error):
    with pytest.raises(delivery.InvalidPayload) as info:
        notice(event_type, **changes)
    assert str(info.value) == error


def test_a_payload_that_is_not_an_object_or_an_unknown_type_is_refused():
    with pytest.raises(delivery.InvalidPayload, match="payload is not an object"):
        booking.notice_from_event(events.CART_VALIDATED, ["x"], PORTAL)
    with pytest.raises(delivery.InvalidPayload, match="unknown event type"):
        booking.notice_from_event("booking_confirmed", cart_payload(), PORTAL)


def test_a_cart_line_without_names_still_makes_the_summary():
    """booking sends null names for a child or activity it no longer knows: shown neutrally."""
    lines = [named(child=None, activity=None, outcome="rejected", reason="NOT_ELIGIBLE"), named()]
    found = notice(events.CART_VALIDATED, lines=lines)
    for lang, child, activity in (
        ("fr", "(un enfant)", "(une activité)"),
        ("en", "(a child)", "(an activity)"),
    ):
        result = render(found.kind, lang, found.context)
        assert child in result.text and activity in result.text and child in result.html
        assert "None" not in result.text and "None" not in result.html


# ------------------------------------------------------------------ rendering


@pytest.mark.parametrize(
    "day, fr, en",
    [
        (dt.date(2026, 12, 7), "lundi 7 décembre 2026", "Monday 7 December 2026"),
        (dt.date(2026, 12, 1), "mardi 1er décembre 2026", "Tuesday 1 December 2026"),
        (dt.date(2027, 2, 14), "dimanche 14 février 2027", "Sunday 14 February 2027"),
        (dt.date(2026, 8, 15), "samedi 15 août 2026", "Saturday 15 August 2026"),
    ],
)
def test_dates_read_in_full(day, fr, en):
    assert long_date(day, "fr") == fr
    assert long_date(day, "en") == en


def test_outcome_labels_in_plain_words():
    for outcome, label in FR_OUTCOMES.items():
        assert outcome_label(outcome, None, "fr") == label
    for reason, label in FR_REASONS.items():
        assert outcome_label("rejected", reason, "fr") == label
    for reason, label in EN_REASONS.items():
        assert outcome_label("rejected", reason, "en") == label
    assert outcome_label("waitlisted", "FULL", "fr") == "sur liste d'attente"  # reasons explain refusals only
    assert outcome_label("pending_payment", None, "en") == "awaiting payment"


@pytest.mark.parametrize("lang", ["fr", "en"])
@pytest.mark.parametrize("event_type", list(PAYLOADS))
def test_every_booking_email_renders_fully(event_type, lang):
    result = rendered(event_type, lang)
    for part in (result.subject, result.text, result.html):
        assert part.strip() and not PLACEHOLDER.search(part) and "None" not in part
    assert "\n" not in result.subject
    assert f'<html lang="{lang}">' in result.html
    assert "Léa" in result.text and "Léa" in result.html
    assert "Cantine" in result.text and "Cantine" in result.html
    day = "lundi 7 décembre 2026" if lang == "fr" else "Monday 7 December 2026"
    assert day in result.text and day in result.html
    assert ("Bonjour" if lang == "fr" else "Hello") in result.text


def test_cart_summary_lists_every_outcome_and_reason_in_french():
    lines = [
        named(date=f"2026-12-{7 + i:02d}", outcome=o) for i, o in enumerate(FR_OUTCOMES) if o != "rejected"
    ]
    lines += [
        named(date=f"2027-01-{4 + i:02d}", outcome="rejected", reason=reason)
        for i, reason in enumerate(FR_REASONS)
    ]
    result = rendered(events.CART_VALIDATED, "fr", lines=lines)
    assert result.subject == "Récapitulatif de vos réservations"
    for label in [*(v for k, v in FR_OUTCOMES.items() if k != "rejected"), *FR_REASONS.values()]:
        assert f") : {label}\n" in result.text, label
        assert f">{escape(label)}</td>" in result.html, label
    assert "    - lundi 7 décembre 2026 (réservation) : confirmé\n" in result.text
    assert "lundi 4 janvier 2027" in result.text and "lundi 4 janvier 2027" in result.html
    # what to do next, for the outcomes that ask for it
    assert "payez-les sur le Portail Famille" in result.text
    assert "Si une place se libère" in result.text
    assert "vous recevrez sa réponse" in result.text


def test_cart_summary_in_english_and_without_next_steps_when_all_is_confirmed():
    lines = [named(), named(date="2026-12-08", action="cancel", outcome="rejected", reason="DEADLINE_PASSED")]
    result = rendered(events.CART_VALIDATED, "en", lines=lines)
    assert result.subject == "Summary of your bookings"
    assert "    - Monday 7 December 2026 (booking): confirmed\n" in result.text
    assert "    - Tuesday 8 December 2026 (cancellation): refused: deadline passed\n" in result.text
    assert "awaiting payment" not in result.text and "waiting list" not in result.text


def test_cart_summary_groups_children_then_activities_in_the_text():
    lines = [
        named(child="Tom", activity="Garderie", date="2026-12-08"),
        named(child="Léa", activity="Cantine", date="2026-12-07"),
        named(child="Tom", activity="Cantine", date="2026-12-09"),
    ]
    text = rendered(events.CART_VALIDATED, "fr", lines=lines).text
    tom, lea = text.index("\nTom\n"), text.index("\nLéa\n")
    assert tom < text.index("  Garderie\n") < text.index("  Cantine\n    - mercredi 9") < lea
    assert text.count("\nTom\n") == 1


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_place_freed_asks_to_pay_before_the_hold_expires_in_paris_time(lang):
    result = rendered(events.BOOKING_PROMOTED, lang)
    deadline = (
        "01/12/2026 à 14h30 (heure de Paris)" if lang == "fr" else "1 December 2026, 14:30 (Paris time)"
    )
    assert deadline in result.text
    assert deadline.split(" (")[0] in result.html
    assert PORTAL in result.text and f'href="{PORTAL}"' in result.html
    if lang == "fr":
        assert result.subject == "Une place s'est libérée pour Léa le lundi 7 décembre 2026"
        assert "une place s'est libérée" in result.text.lower()
    else:
        assert result.subject == "A place became available for Léa on Monday 7 December 2026"
    confirmed = rendered(events.BOOKING_PROMOTED, lang, status="confirmed", hold_expires_at=None)
    assert ("confirmée" if lang == "fr" else "confirmed") in confirmed.text
    assert ("payez" if lang == "fr" else "pay for it") not in confirmed.text


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_cancellation_decision_says_which_and_why(lang):
    approved = rendered(events.CANCELLATION_DECIDED, lang)
    rejected = rendered(
        events.CANCELLATION_DECIDED,
        lang,
        decision="rejected",
        reason="Délai <dépassé>",
        billing_mode="prepaid",
    )
    if lang == "fr":
        assert approved.subject == "Annulation acceptée pour Léa le lundi 7 décembre 2026"
        assert rejected.subject == "Annulation refusée pour Léa le lundi 7 décembre 2026"
        assert "Ce jour ne vous sera pas facturé." in approved.text
        assert "Motif : Délai <dépassé>" in rejected.text and "La réservation est maintenue" in rejected.text
        assert "Motif" not in approved.text and "facturé" not in rejected.text
    else:
        assert approved.subject.startswith("Cancellation approved for Léa")
        assert rejected.subject.startswith("Cancellation refused for Léa")
        assert "Reason: Délai <dépassé>" in rejected.text and "Reason" not in approved.text
    assert "Délai &lt;dépassé&gt;" in rejected.html and "<dépassé>" not in rejected.html


@pytest.mark.parametrize("lang", ["fr", "en"])
def test_agent_change_lists_the_days_and_names_the_family(lang):
    result = rendered(events.BOOKING_CHANGED_BY_AGENT, lang)
    if lang == "fr":
        assert result.subject == "Réservations de Léa modifiées par votre mairie"
        assert "  - lundi 7 décembre 2026 (réservation) : confirmé\n" in result.text
        assert "  - mardi 8 décembre 2026 (annulation) : annulé\n" in result.text
        assert "famille Martin" in result.text and "famille Martin" in result.html
    else:
        assert result.subject == "Bookings for Léa changed by your town hall"
        assert "  - Tuesday 8 December 2026 (cancellation): cancelled\n" in result.text
        assert "the Martin family" in result.text
    without = rendered(events.BOOKING_CHANGED_BY_AGENT, lang, family_name=None)
    assert "Martin" not in without.text and "Martin" not in without.html


@pytest.mark.parametrize("lang", ["fr", "en"])
@pytest.mark.parametrize("event_type", list(PAYLOADS))
def test_names_are_escaped_in_html_not_in_text(event_type, lang):
    if event_type == events.CART_VALIDATED:
        result = rendered(event_type, lang, lines=[named(child=HOSTILE, activity=HOSTILE)])
    else:
        result = rendered(
            event_type, lang, family_name=HOSTILE, child_first_name=HOSTILE, activity_name=HOSTILE
        )
    assert "<script>" not in result.html
    assert "Léa &lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Cie" in result.html
    assert HOSTILE in result.text


def test_subjects_fit_their_column_with_the_longest_names():
    longest = "x" * 200
    for event_type in PAYLOADS:
        for lang in ("fr", "en"):
            result = rendered(
                event_type, lang, family_name=longest, child_first_name=longest, activity_name=longest
            )
            assert len(result.subject) <= OutgoingMessage.subject.type.length


# ------------------------------------------------------------------ handling (SQLite, stand-in RPCs)


class Directory:
    """Stands for identity (`contact`) and communes (`family_contact`); counts the calls."""

    def __init__(self, accounts=None, families=None, error=None):
        self.accounts = accounts or {}
        self.families = families or {}
        self.error = error
        self.calls = []

    def contact(self, account_id):
        self.calls.append(("contact", account_id))
        if self.error:
            raise self.error
        return self.accounts.get(account_id)

    def family_contact(self, family_id):
        self.calls.append(("family_contact", family_id))
        if self.error:
            raise self.error
        return self.families.get(family_id)


@pytest.fixture
def db(tmp_path):
    uri = f"sqlite:///{tmp_path / 'notify.db'}"
    upgrade("notify", uri)
    return WorkerDb(sessionmaker(bind=get_engine(uri), expire_on_commit=False))


SETTINGS = NotifySettings(requeue_delay_seconds=0)


def handle(db, directory, event_type, payload):
    return inbound.handle_booking_event(db, SETTINGS, directory, directory, event_type, payload)


def stored(db, event_id=None):
    with db.transaction() as session:
        query = select(OutgoingMessage)
        if event_id is not None:
            query = query.where(OutgoingMessage.source_event_id == event_id)
        return list(session.scalars(query).all())


def test_an_account_email_goes_to_the_address_identity_gives_now_once(db, caplog):
    caplog.set_level(logging.INFO)
    clock.set_now(T0)
    payload = cart_payload()
    directory = Directory(accounts={payload["account_id"]: {"email": "parent@example.org", "locale": "en"}})
    first = handle(db, directory, events.CART_VALIDATED, payload)
    again = handle(db, directory, events.CART_VALIDATED, payload)  # a redelivery
    assert first is not None and again is None
    assert directory.calls == [("contact", payload["account_id"])]  # the redelivery asked nobody
    [row] = stored(db, payload["event_id"])
    assert (row.id, row.kind, row.to_address, row.locale) == (
        first,
        "booking_summary",
        "parent@example.org",
        "en",
    )
    assert row.subject == "Summary of your bookings" and "Monday 7 December 2026" in row.text_body
    assert "parent@example.org" not in caplog.text and "Léa" not in caplog.text


def test_a_family_email_goes_to_its_contact_address_in_french(db):
    payload = agent_payload()
    directory = Directory(families={payload["family_id"]: {"email": "martin@example.org", "name": "Martin"}})
    message_id = handle(db, directory, events.BOOKING_CHANGED_BY_AGENT, payload)
    [row] = stored(db, payload["event_id"])
    assert row.id == message_id and directory.calls == [("family_contact", payload["family_id"])]
    assert (row.kind, row.to_address, row.locale) == ("agent_booking_change", "martin@example.org", "fr")
    assert "famille Martin" in row.text_body


def test_a_promotion_waiting_for_payment_is_not_sent_after_the_hold(db):
    payload = promoted_payload()
    directory = Directory(accounts={payload["account_id"]: {"email": "p@example.org", "locale": "fr"}})
    handle(db, directory, events.BOOKING_PROMOTED, payload)
    [row] = stored(db, payload["event_id"])
    assert row.expires_at == HOLD and row.kind == "place_freed"


@pytest.mark.parametrize(
    "event_type, found",
    [
        (events.CANCELLATION_DECIDED, None),  # no such account
        (events.BOOKING_CHANGED_BY_AGENT, None),  # no such family
        (events.CANCELLATION_DECIDED, {"email": "not an address", "locale": "fr"}),
        (events.BOOKING_CHANGED_BY_AGENT, {"email": None, "name": "Martin"}),
    ],
)
def test_no_recipient_drops_the_event_with_ids_only(db, caplog, event_type, found):
    payload = PAYLOADS[event_type]()
    key = payload["family_id"] if event_type == events.BOOKING_CHANGED_BY_AGENT else payload["account_id"]
    directory = Directory(accounts={key: found} if found else {}, families={key: found} if found else {})
    assert handle(db, directory, event_type, payload) is None
    assert stored(db) == []
    assert payload["event_id"] in caplog.text and key in caplog.text
    assert "not an address" not in caplog.text and "Martin" not in caplog.text and "Léa" not in caplog.text


@pytest.mark.parametrize("error", [ServiceUnavailable(), ServiceTimeout(), ConnectionError("broker")])
def test_identity_or_communes_down_asks_for_redelivery_then_the_email_goes(db, error):
    payload = decided_payload()
    down = Directory(error=error)
    with pytest.raises(type(error)):
        handle(db, down, events.CANCELLATION_DECIDED, payload)
    assert stored(db) == []
    back = Directory(accounts={payload["account_id"]: {"email": "p@example.org", "locale": "fr"}})
    assert handle(db, back, events.CANCELLATION_DECIDED, payload) is not None  # the redelivery
    assert len(stored(db, payload["event_id"])) == 1


def test_a_refusal_by_identity_is_dropped_not_requeued_forever(db, caplog):
    payload = promoted_payload()
    assert handle(db, Directory(error=Forbidden()), events.BOOKING_PROMOTED, payload) is None
    assert "recipient lookup refused (FORBIDDEN)" in caplog.text and stored(db) == []


def test_an_invalid_booking_event_is_dropped_before_asking_anyone(db, caplog):
    directory = Directory()
    payload = cart_payload(lines=[named(outcome="nope")])
    assert handle(db, directory, events.CART_VALIDATED, payload) is None
    assert directory.calls == [] and stored(db) == []
    assert (
        f"dropped event {payload['event_id']} (cart_validated): missing or invalid lines.outcome"
        in caplog.text
    )


def test_a_database_failure_asks_for_redelivery_without_quoting_the_address(tmp_path):
    broken = WorkerDb(sessionmaker(bind=get_engine(f"sqlite:///{tmp_path / 'no-tables.db'}")))
    payload = cart_payload()
    directory = Directory(accounts={payload["account_id"]: {"email": "parent@example.org", "locale": "fr"}})
    with pytest.raises(inbound.RetryLater) as info:
        handle(broken, directory, events.CART_VALIDATED, payload)
    assert "parent@example.org" not in str(info.value)


def test_each_booking_event_counts_once_per_event_id(db):
    """The inbox is per event type: the same id under two types gives two emails, the same twice one."""
    account = ids()
    directory = Directory(accounts={account: {"email": "p@example.org", "locale": "fr"}})
    event_id = ids()
    handle(db, directory, events.CART_VALIDATED, cart_payload(event_id=event_id, account_id=account))
    handle(db, directory, events.CANCELLATION_DECIDED, decided_payload(event_id=event_id, account_id=account))
    handle(db, directory, events.CANCELLATION_DECIDED, decided_payload(event_id=event_id, account_id=account))
    with db.transaction() as session:
        count = session.scalar(select(func.count()).select_from(OutgoingMessage))
    assert count == 2

import datetime as dt
import re

import pytest
from jinja2 import UndefinedError
from markupsafe import escape

from services.identity import events as identity_events
from services.notify import billing, booking, delivery, events
from services.notify.rendering import (
    LOCALES,
    TEMPLATES_DIR,
    available_kinds,
    local_datetime,
    pick_locale,
    render,
)

LINK = "https://portal.test/account/verify-email?token=tok_AbC-123&next=%2Fhome"
INVITE_LINK = "https://portal.test/account/invitation?token=inv_XyZ-789&commune=c1"
PORTAL = "https://portal.test/"
CODE = "K7QM-3XPD-9WTR"
EXPIRES = dt.datetime(2026, 1, 12, 13, 30, tzinfo=dt.UTC)  # 14h30 in Paris (winter)
KINDS = [
    delivery.VERIFY_EMAIL,
    delivery.RESET_PASSWORD,
    delivery.PASSWORD_CHANGED,
    delivery.TEST,
    delivery.ADHESION_CODE,
    delivery.AGENT_INVITATION,
    booking.BOOKING_SUMMARY,
    booking.PLACE_FREED,
    booking.CANCELLATION_DECISION,
    booking.AGENT_BOOKING_CHANGE,
    billing.PAYMENT_RECEIPT,
    billing.REFUND,
    billing.CREDIT,
    billing.PAYMENT_FAILED,
    billing.INVOICE_ISSUED,
]
DAY = dt.date(2026, 12, 7)
LINES = [{"date": DAY, "action": "book", "outcome": "confirmed", "reason": None}]
LINK_KINDS = (delivery.VERIFY_EMAIL, delivery.RESET_PASSWORD, delivery.AGENT_INVITATION)
PLACEHOLDER = re.compile(r"\{\{|\}\}|\{%|%\}|\{#|#\}")


def context_for(kind, commune_name="Saint-Étienne"):
    if kind in (delivery.VERIFY_EMAIL, delivery.RESET_PASSWORD):
        return {"link": LINK, "expires_at": EXPIRES}
    if kind == delivery.ADHESION_CODE:
        return {
            "code": CODE,
            "commune_name": commune_name,
            "family_name": "Martin-Dupont",
            "expires_at": EXPIRES,
            "portal_url": PORTAL,
        }
    if kind == delivery.AGENT_INVITATION:
        return {
            "link": INVITE_LINK,
            "commune_name": commune_name,
            "email": "agent@mairie.example.fr",
            "expires_at": EXPIRES,
        }
    if kind == booking.BOOKING_SUMMARY:
        activities = [{"name": "Cantine", "lines": LINES}]
        return {"children": [{"first_name": "Léa", "activities": activities}], "outcomes": ["confirmed"]}
    if kind == booking.PLACE_FREED:
        names = {"child_first_name": "Léa", "activity_name": "Cantine", "date": DAY}
        return {**names, "status": "pending_payment", "hold_expires_at": EXPIRES, "portal_url": PORTAL}
    if kind == booking.CANCELLATION_DECISION:
        names = {"child_first_name": "Léa", "activity_name": "Cantine", "date": DAY}
        return {**names, "decision": "approved", "reason": None, "billing_mode": "postpaid"}
    if kind == booking.AGENT_BOOKING_CHANGE:
        return {"child_first_name": "Léa", "activity_name": "Cantine", "lines": LINES, "family_name": None}
    if kind == billing.PAYMENT_RECEIPT:
        return {
            "payment_id": "p-1",
            "amount_cents": 1250,
            "total_cents": 1450,
            "credit_used_cents": 200,
            "days": 3,
            "portal_url": PORTAL,
        }
    if kind == billing.REFUND:
        return {
            "payment_id": "p-1",
            "amount_cents": 450,
            "reason": "place_lost",
            "days": 1,
            "portal_url": PORTAL,
        }
    if kind == billing.CREDIT:
        return {"amount_cents": 450, "portal_url": PORTAL}
    if kind == billing.INVOICE_ISSUED:
        return {
            "number": "2026-000042",
            "kind": "invoice",
            "month": dt.date(2026, 3, 1),
            "total_cents": 12500,
            "amount_due_cents": 10000,
            "credit_applied_cents": 2500,
            "due_date": dt.date(2026, 5, 1),
            "invoices_url": "https://factures.test/",
        }
    if kind == billing.PAYMENT_FAILED:
        return {"payment_id": "p-1", "days": 2, "expires_at": EXPIRES, "portal_url": PORTAL}
    return {}


def link_of(kind):
    return INVITE_LINK if kind == delivery.AGENT_INVITATION else LINK


@pytest.mark.parametrize("lang", LOCALES)
@pytest.mark.parametrize("kind", KINDS)
def test_every_kind_renders_fully_in_both_languages(kind, lang):
    rendered = render(kind, lang, context_for(kind))
    for part in (rendered.subject, rendered.text, rendered.html):
        assert part.strip()
        assert not PLACEHOLDER.search(part), part
        assert "Undefined" not in part
    assert "\n" not in rendered.subject
    assert f'<html lang="{lang}">' in rendered.html
    if kind in LINK_KINDS:
        assert link_of(kind) in rendered.text
        assert f'href="{escape(link_of(kind))}"' in rendered.html
    if kind in (*LINK_KINDS, delivery.ADHESION_CODE):
        for part in (rendered.text, rendered.html):
            assert ("12/01/2026 à 14h30" if lang == "fr" else "12 January 2026, 14:30") in part
    if kind in (delivery.ADHESION_CODE, delivery.AGENT_INVITATION):
        assert "Saint-Étienne" in rendered.subject
        assert "Saint-Étienne" in rendered.text and "Saint-Étienne" in rendered.html


def test_french_first_english_on_request():
    french = render(delivery.VERIFY_EMAIL, "fr", context_for(delivery.VERIFY_EMAIL))
    english = render(delivery.VERIFY_EMAIL, "en", context_for(delivery.VERIFY_EMAIL))
    assert french.subject == "Confirmez votre adresse e-mail"
    assert english.subject == "Confirm your email address"
    assert "Bonjour" in french.text and "Hello" in english.text
    assert render(delivery.RESET_PASSWORD, None, context_for(delivery.RESET_PASSWORD)).subject.startswith(
        "Réinitialisation"
    )
    assert render(delivery.PASSWORD_CHANGED, "de", {}).subject == "Votre mot de passe a été modifié"


@pytest.mark.parametrize(
    "locale, expected",
    [(None, "fr"), ("", "fr"), ("fr", "fr"), ("FR-fr", "fr"), ("de", "fr"), ("en", "en"), ("en-GB", "en")],
)
def test_pick_locale(locale, expected):
    assert pick_locale(locale) == expected


def test_a_missing_variable_is_an_error_not_a_hole():
    with pytest.raises(UndefinedError):
        render(delivery.VERIFY_EMAIL, "fr", {"expires_at": EXPIRES})


def test_html_is_escaped_text_is_not():
    link = "https://portal.test/x?token=a&b=<script>"
    rendered = render(delivery.RESET_PASSWORD, "fr", {"link": link, "expires_at": None})
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;" in rendered.html
    assert link in rendered.text
    assert "valable" not in rendered.text  # no expiry given: no sentence about it


def test_every_kind_has_the_same_three_templates_in_each_language():
    assert available_kinds("fr") == available_kinds("en") == sorted(KINDS)
    for lang in LOCALES:
        for kind in KINDS:
            for suffix in (".subject.txt", ".txt", ".html"):
                assert (TEMPLATES_DIR / lang / f"{kind}{suffix}").is_file()


def test_deadlines_read_in_paris_time():
    summer = dt.datetime(2026, 7, 1, 6, 5, tzinfo=dt.UTC)
    assert local_datetime(summer, "fr") == "01/07/2026 à 08h05"
    assert local_datetime(summer, "en") == "1 July 2026, 08:05"


def test_consumed_event_names_match_identity():
    assert events.EMAIL_VERIFICATION_REQUESTED == identity_events.EMAIL_VERIFICATION_REQUESTED
    assert events.PASSWORD_RESET_REQUESTED == identity_events.PASSWORD_RESET_REQUESTED
    assert events.PASSWORD_CHANGED == identity_events.PASSWORD_CHANGED


# ------------------------------------------------------------------ communes: adhesion code, agent invitation


@pytest.mark.parametrize("lang", LOCALES)
def test_adhesion_code_email_gives_the_code_the_deadline_and_the_way_to_use_it(lang):
    rendered = render(delivery.ADHESION_CODE, lang, context_for(delivery.ADHESION_CODE))
    # the code on a line of its own in the text part, indented, exactly as it is to be typed
    assert f"\n    {CODE}\n" in rendered.text
    # in the HTML part: one monospace block that does not wrap in the middle of the code
    block = re.search(r"<span style=\"([^\"]*)\">([^<]*)</span>", rendered.html)
    assert block and block.group(2) == CODE
    assert "monospace" in block.group(1) and "white-space:nowrap" in block.group(1)
    # how to use it: create an account on the portal, then enter the code
    assert PORTAL in rendered.text
    assert f'href="{PORTAL}"' in rendered.html
    words = ("Créez votre compte", "saisissez ce code") if lang == "fr" else ("Create your account", "enter")
    for word in words:
        assert word in rendered.text and word in rendered.html
    assert "Martin-Dupont" in rendered.text and "Martin-Dupont" in rendered.html
    assert ("heure de Paris" if lang == "fr" else "Paris time") in rendered.text


def test_adhesion_code_subjects_french_first_english_on_request():
    context = context_for(delivery.ADHESION_CODE)
    assert render(delivery.ADHESION_CODE, "fr", context).subject == (
        "Votre code d'adhésion au Portail Famille (Saint-Étienne)"
    )
    assert render(delivery.ADHESION_CODE, "en", context).subject == (
        "Your Portail Famille membership code (Saint-Étienne)"
    )
    assert render(delivery.ADHESION_CODE, "de", context).subject.startswith("Votre code d'adhésion")
    invitation = context_for(delivery.AGENT_INVITATION)
    assert render(delivery.AGENT_INVITATION, None, invitation).subject.startswith("Invitation à rejoindre")
    assert render(delivery.AGENT_INVITATION, "en", invitation).subject.startswith("Invitation to join")


def test_adhesion_code_without_family_name_leaves_no_empty_line_behind():
    context = {**context_for(delivery.ADHESION_CODE), "family_name": None}
    rendered = render(delivery.ADHESION_CODE, "fr", context)
    assert "Famille :" not in rendered.text and "Famille&nbsp;:" not in rendered.html
    assert "None" not in rendered.text and "None" not in rendered.html
    assert "Commune : Saint-Étienne\n\nCe code est valable" in rendered.text


@pytest.mark.parametrize("lang", LOCALES)
def test_agent_invitation_email_names_the_commune_the_address_and_the_link(lang):
    rendered = render(delivery.AGENT_INVITATION, lang, context_for(delivery.AGENT_INVITATION))
    assert "agent@mairie.example.fr" in rendered.text and "agent@mairie.example.fr" in rendered.html
    assert f"\n{INVITE_LINK}\n" in rendered.text  # on a line of its own: copyable
    assert rendered.html.count(f'href="{escape(INVITE_LINK)}"') == 2  # the button and the plain link
    role = "agent de" if lang == "fr" else "staff member of"
    assert f"{role} Saint-Étienne" in rendered.text
    no_expiry = render(
        delivery.AGENT_INVITATION, lang, {**context_for(delivery.AGENT_INVITATION), "expires_at": None}
    )
    assert ("valable" if lang == "fr" else "valid until") not in no_expiry.text


@pytest.mark.parametrize("lang", LOCALES)
@pytest.mark.parametrize("kind", [delivery.ADHESION_CODE, delivery.AGENT_INVITATION])
def test_commune_names_are_escaped_in_html_not_in_text(kind, lang):
    hostile = 'Ville <script>alert("x")</script> & Cie'
    rendered = render(kind, lang, context_for(kind, commune_name=hostile))
    assert "<script>" not in rendered.html
    assert "&lt;script&gt;alert(&#34;x&#34;)&lt;/script&gt; &amp; Cie" in rendered.html
    assert hostile in rendered.text  # plain text: shown as it is
    assert hostile in rendered.subject  # a header: encoded by the email library, never HTML


def test_a_missing_code_is_an_error_not_a_hole():
    context = {key: value for key, value in context_for(delivery.ADHESION_CODE).items() if key != "code"}
    with pytest.raises(UndefinedError):
        render(delivery.ADHESION_CODE, "fr", context)


def test_consumed_event_names_match_communes():
    communes_events = pytest.importorskip("services.communes.events")
    assert events.COMMUNES == "communes"
    assert events.ADHESION_CODE_ISSUED == communes_events.ADHESION_CODE_ISSUED
    assert events.AGENT_INVITED == communes_events.AGENT_INVITED


@pytest.mark.parametrize("lang", LOCALES)
def test_invoice_issued_says_number_month_amount_due_date_and_links_the_invoices_site(lang):
    rendered = render(billing.INVOICE_ISSUED, lang, context_for(billing.INVOICE_ISSUED))
    month, due, amount = (
        ("mars 2026", "1er mai 2026", "100,00\u00a0€")
        if lang == "fr"
        else (
            "March 2026",
            "1 May 2026",
            "€100.00",
        )
    )
    assert "2026-000042" in rendered.subject and month in rendered.subject
    for part in (rendered.text, rendered.html):
        assert month in part and due in part and amount in part
    assert "https://factures.test/" in rendered.text and 'href="https://factures.test/"' in rendered.html
    note = render(
        billing.INVOICE_ISSUED, lang, {**context_for(billing.INVOICE_ISSUED), "kind": "credit_note"}
    )
    assert ("avoir" if lang == "fr" else "credit note") in note.subject.lower()

import datetime as dt
import re

import pytest
from jinja2 import UndefinedError
from markupsafe import escape

from services.identity import events as identity_events
from services.notify import delivery, events
from services.notify.rendering import (
    LOCALES,
    TEMPLATES_DIR,
    available_kinds,
    local_datetime,
    pick_locale,
    render,
)

LINK = "https://portal.test/account/verify-email?token=tok_AbC-123&next=%2Fhome"
EXPIRES = dt.datetime(2026, 1, 12, 13, 30, tzinfo=dt.UTC)  # 14h30 in Paris (winter)
KINDS = [delivery.VERIFY_EMAIL, delivery.RESET_PASSWORD, delivery.PASSWORD_CHANGED, delivery.TEST]
PLACEHOLDER = re.compile(r"\{\{|\}\}|\{%|%\}|\{#|#\}")


def context_for(kind):
    if kind in (delivery.VERIFY_EMAIL, delivery.RESET_PASSWORD):
        return {"link": LINK, "expires_at": EXPIRES}
    return {}


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
    if kind in (delivery.VERIFY_EMAIL, delivery.RESET_PASSWORD):
        assert LINK in rendered.text
        assert f'href="{escape(LINK)}"' in rendered.html
        assert ("14h30" if lang == "fr" else "14:30") in rendered.text


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

"""The hand-written iCalendar (RFC 5545) writer: escaping, folding at 75 octets, CRLF, all-day
events with stable UIDs."""

import datetime as dt

from hypothesis import given
from hypothesis import strategies as st

from services.booking import ical

STAMP = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)


def test_text_is_escaped():
    assert ical.escape_text("a,b;c\\d\ne") == "a\\,b\\;c\\\\d\\ne"
    assert ical.escape_text("x\r\ny\x00z") == "x\\nyz"


def test_long_lines_fold_at_75_octets_without_splitting_characters():
    line = "SUMMARY:" + "é" * 100
    folded = ical.fold(line)
    parts = folded.split("\r\n")
    assert all(len(p.encode("utf-8")) <= 75 for p in parts)
    assert all(p.startswith(" ") for p in parts[1:])
    assert "".join([parts[0]] + [p[1:] for p in parts[1:]]) == line
    assert ical.fold("SHORT:x") == "SHORT:x"


@given(st.text(max_size=300))
def test_folding_round_trips(value):
    line = "SUMMARY:" + ical.escape_text(value)
    parts = ical.fold(line).split("\r\n")
    assert all(len(p.encode("utf-8")) <= 75 for p in parts)
    assert parts[0] + "".join(p[1:] for p in parts[1:]) == line


def test_calendar_has_one_all_day_event_per_day():
    events = [
        ical.AllDayEvent(uid="b1@portail-familles", day=dt.date(2026, 3, 12), summary="Cantine, midi"),
        ical.AllDayEvent(
            uid="b2@portail-familles", day=dt.date(2026, 3, 31), summary="Garderie", status="TENTATIVE"
        ),
    ]
    text = ical.calendar("Réservations – Léa", events, STAMP)
    assert text.startswith("BEGIN:VCALENDAR\r\nVERSION:2.0\r\n") and text.endswith("END:VCALENDAR\r\n")
    assert "\n" not in text.replace("\r\n", "")
    assert text.count("BEGIN:VEVENT") == 2
    assert "UID:b1@portail-familles\r\n" in text and "DTSTAMP:20260302T080000Z\r\n" in text
    assert "DTSTART;VALUE=DATE:20260312\r\nDTEND;VALUE=DATE:20260313\r\n" in text
    assert "DTEND;VALUE=DATE:20260401" in text  # the next day, across the month
    assert "SUMMARY:Cantine\\, midi\r\n" in text and "STATUS:TENTATIVE" in text

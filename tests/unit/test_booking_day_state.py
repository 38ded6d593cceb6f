"""The state a parent sees for one day, in priority order."""

import datetime as dt

import pytest

from services.booking.day_state import BOOKING_STATUSES, STATES, day_state

NOW = dt.datetime(2026, 3, 10, 9, 0, tzinfo=dt.UTC)
LATER = NOW + dt.timedelta(days=1)
EARLIER = NOW - dt.timedelta(days=1)


def state(**changes):
    arguments = dict(
        now=NOW,
        closed=False,
        eligible=True,
        booking_status=None,
        attendance=None,
        places_left=5,
        book_until=LATER,
    )
    arguments.update(changes)
    return day_state(**arguments)


def test_an_ordinary_day_is_open():
    assert state() == "open"


def test_the_deadline_itself_locks_the_day():
    assert state(book_until=NOW + dt.timedelta(seconds=1)) == "open"
    assert state(book_until=NOW) == "locked"
    assert state(book_until=EARLIER) == "locked"
    assert state(book_until=None) == "locked"


def test_no_places_left_is_full():
    assert state(places_left=0) == "full"
    assert state(places_left=-1) == "full"
    assert state(places_left=0, book_until=EARLIER) == "locked"  # the deadline explains more


@pytest.mark.parametrize("attendance", ["present", "absent", "absent_justified"])
def test_attendance_wins_over_everything(attendance):
    assert state(attendance=attendance) == attendance
    assert (
        state(
            attendance=attendance,
            closed=True,
            eligible=False,
            booking_status="cancelled",
            places_left=0,
            book_until=EARLIER,
        )
        == attendance
    )


def test_closed_wins_over_bookings():
    assert state(closed=True) == "closed"
    assert state(closed=True, booking_status="confirmed") == "closed"
    assert state(closed=True, eligible=False, book_until=EARLIER) == "closed"


@pytest.mark.parametrize(
    "status, expected",
    [
        ("confirmed", "booked"),
        ("pending_payment", "pending_payment"),
        ("waitlisted", "waitlisted"),
        ("cancel_requested", "cancel_requested"),
    ],
)
def test_bookings_show_their_status_whatever_the_deadline_or_places(status, expected):
    assert state(booking_status=status) == expected
    assert state(booking_status=status, book_until=EARLIER, places_left=0, eligible=False) == expected


def test_a_cancelled_day_can_be_booked_again_until_the_deadline():
    assert state(booking_status="cancelled") == "open"
    assert state(booking_status="cancelled", places_left=0) == "full"
    assert state(booking_status="cancelled", eligible=False) == "not_eligible"
    assert state(booking_status="cancelled", book_until=NOW) == "cancelled"
    assert state(booking_status="cancelled", book_until=None) == "cancelled"


def test_not_eligible_comes_before_the_deadline_and_places():
    assert state(eligible=False) == "not_eligible"
    assert state(eligible=False, book_until=EARLIER, places_left=0) == "not_eligible"


def test_every_state_is_listed():
    assert len(STATES) == len(set(STATES)) == 13
    seen = {
        state(),
        state(booking_status="cancelled", book_until=EARLIER),
        state(closed=True),
        state(eligible=False),
        state(book_until=EARLIER),
        state(places_left=0),
        *(state(booking_status=s) for s in BOOKING_STATUSES),
        *(state(attendance=a) for a in ("present", "absent", "absent_justified")),
    }
    assert seen == set(STATES)


def test_unknown_values_are_refused():
    with pytest.raises(ValueError):
        state(booking_status="booked")
    with pytest.raises(ValueError):
        state(attendance="late")

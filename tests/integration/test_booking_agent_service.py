"""booking's agents' slice through the nameko service on the real PostgreSQL and RabbitMQ, next to the
real identity and communes services, called with the caller in the context as the gateway calls:
an approval racing on-behalf bookings of the same full day, two decisions of one request at once,
attendance and the parent's calendar, the roster (JSON and CSV), the iCalendar feed's life, the
refusals an agent of another commune meets, and the events leaving through the outbox."""

import csv
import io
import uuid
from types import SimpleNamespace

import eventlet
import pytest
from nameko.events import event_handler
from nameko.standalone.rpc import ServiceRpcProxy
from nameko.testing.services import entrypoint_waiter
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from services.booking.exceptions import AlreadyDecided, NotBooked
from services.booking.models import PLACE_STATUSES, Booking, CancellationRequest, Occurrence
from services.booking.service import BookingService
from services.common import clock
from services.common.db import get_engine
from services.common.errors import NotFound, ServiceError
from services.communes.service import CommunesService
from services.identity.service import IdentityService
from tests.integration.helpers import about, agent_of, call, new_parent
from tests.integration.test_booking_service import T0, Town

pytestmark = pytest.mark.integration

DAY = "2026-03-12"  # a Thursday; T0 (Monday 2 March) is before every deadline of that day


class AgentEventsRecorder:
    """Stands for billing and notify, for the events of the agents' slice."""

    name = "booking_agent_test_recorder"

    @event_handler("booking", "cancellation_decided")
    def on_decided(self, payload):
        RECEIVED.append(("cancellation_decided", payload))
        return payload

    @event_handler("booking", "attendance_marked")
    def on_attendance(self, payload):
        RECEIVED.append(("attendance_marked", payload))
        return payload

    @event_handler("booking", "booking_promoted")
    def on_promoted(self, payload):
        RECEIVED.append(("booking_promoted", payload))
        return payload


RECEIVED = []  # (event type, payload) as the recorder got them (the relay empties the outbox table)


def received(event_type, key, values):
    return [p for t, p in RECEIVED if t == event_type and p.get(key) in values]


@pytest.fixture
def platform(container_factory, booking_config, communes_for_booking_config, identity_for_booking_config):
    clock.set_now(T0)  # the containers run in this process: they read the same clock
    identity = container_factory(IdentityService, identity_for_booking_config)
    identity.start()
    communes = container_factory(CommunesService, communes_for_booking_config)
    communes.start()
    booking = container_factory(BookingService, booking_config)
    booking.start()
    recorder = container_factory(AgentEventsRecorder, booking_config)
    recorder.start()
    return SimpleNamespace(
        identity=identity, communes=communes, booking=booking, recorder=recorder, config=booking_config
    )


@pytest.fixture
def db(booking_db_uri):
    with Session(get_engine(booking_db_uri)) as session:
        yield session


def book_by_cart(platform, parent, child, activity, day=DAY):
    booking = platform.booking
    call(booking, "add_cart_items", child["id"], activity["id"], dates=[day], caller=parent)
    [result] = call(booking, "validate_cart", uuid.uuid4().hex, caller=parent)["results"]
    return result


def requested_cancellation(platform, town, parent, child, activity, day=DAY):
    """The child booked by its parent, who then asks to cancel (`cancellation_approval: agent`):
    the pending request, as the agents' queue shows it."""
    booked = book_by_cart(platform, parent, child, activity, day)
    assert booked["outcome"] == "confirmed"
    booking = platform.booking
    call(booking, "add_cart_cancellations", child["id"], activity["id"], [day], caller=parent)
    [asked] = call(booking, "validate_cart", uuid.uuid4().hex, caller=parent)["results"]
    assert asked["outcome"] == "requested"
    queue = call(booking, "list_cancellation_requests", town.id, caller=town.agent)
    [request] = [r for r in queue if r["booking_id"] == booked["booking_id"]]
    return request


def rpc_over_broker(platform, caller, method, *args):
    """One call over RabbitMQ, as the gateway makes it; the exception is returned, not raised."""
    with ServiceRpcProxy("booking", platform.config, context_data=caller, timeout=30) as rpc:
        try:
            return getattr(rpc, method)(*args)
        except ServiceError as error:
            return error


def day_ledger(db, activity_id, day=DAY):
    """(capacity, taken, place-holding bookings, {status: count}) of one day, read now."""
    db.expire_all()
    occurrence = db.execute(
        select(Occurrence).where(Occurrence.activity_id == activity_id, Occurrence.date == day)
    ).scalar_one()
    statuses = dict(
        db.execute(
            select(Booking.status, func.count())
            .where(Booking.occurrence_id == occurrence.id)
            .group_by(Booking.status)
        ).all()
    )
    holding = sum(n for status, n in statuses.items() if status in PLACE_STATUSES)
    return occurrence.capacity, occurrence.taken, holding, statuses


@pytest.mark.parametrize("waiting_list", [True, False], ids=["waiting-list", "no-waiting-list"])
def test_an_approval_racing_on_behalf_bookings_of_the_full_day_never_oversells(platform, db, waiting_list):
    town = Town(platform)
    canteen = town.activity(capacity=2, cancellation_approval="agent", waiting_list=waiting_list)
    parents = [new_parent() for _ in range(3 if waiting_list else 2)]
    children = [town.family_with_child(parent) for parent in parents]
    request = requested_cancellation(platform, town, parents[0], children[0], canteen)
    assert book_by_cart(platform, parents[1], children[1], canteen)["outcome"] == "confirmed"
    waiting_booking = None
    if waiting_list:  # the day is full: the third child waits, first in line
        waiting = book_by_cart(platform, parents[2], children[2], canteen)
        assert waiting["outcome"] == "waitlisted"
        waiting_booking = waiting["booking_id"]
    assert day_ledger(db, canteen["id"])[:3] == (2, 2, 2)

    phoned_in = [town.family_with_child() for _ in range(5)]  # families the agent books for
    calls = [("decide_cancellation", town.id, request["id"], "approve", None)] + [
        ("book_on_behalf", town.id, child["id"], canteen["id"], [DAY]) for child in phoned_in
    ]
    pool = eventlet.GreenPool(len(calls))
    if waiting_list:
        with entrypoint_waiter(
            platform.recorder, "on_promoted", callback=about("booking_id", waiting_booking), timeout=10
        ):
            answers = list(pool.imap(lambda c: rpc_over_broker(platform, town.agent, *c), calls))
    else:
        answers = list(pool.imap(lambda c: rpc_over_broker(platform, town.agent, *c), calls))
    eventlet.sleep(1)  # a few relay polls: a second promotion would have arrived by now

    decided, *booked = answers
    assert isinstance(decided, dict) and decided["status"] == "approved", decided
    assert all(isinstance(a, dict) and len(a["results"]) == 1 for a in booked), booked  # all answered
    outcomes = sorted(a["results"][0]["outcome"] for a in booked)
    capacity, taken, holding, statuses = day_ledger(db, canteen["id"])
    assert taken <= capacity and taken == holding, statuses
    assert statuses.get("cancel_requested", 0) == 0 and statuses["cancelled"] == 1
    promoted = received("booking_promoted", "activity_id", {canteen["id"]})
    if waiting_list:
        # the freed place goes to the child who waited, once; the phoned-in children wait behind it
        assert [p["booking_id"] for p in promoted] == [waiting_booking]
        assert outcomes == ["waitlisted"] * 5
        assert (taken, statuses["confirmed"], statuses["waitlisted"]) == (2, 2, 5)
    else:
        # no list: at most one phoned-in child gets the freed place (if it came after the approval)
        assert promoted == []
        assert outcomes.count("confirmed") <= 1
        assert {
            r["results"][0].get("reason") for r in booked if r["results"][0]["outcome"] == "rejected"
        } <= {"FULL"}
        assert taken == 1 + outcomes.count("confirmed") == statuses["confirmed"]


def test_two_decisions_of_one_request_at_once_decide_it_once(platform, db):
    town = Town(platform)
    canteen = town.activity(capacity=1, cancellation_approval="agent")
    parent = new_parent()
    child = town.family_with_child(parent)
    request = requested_cancellation(platform, town, parent, child, canteen)
    second_agent = town.agent  # the same rights; two desks deciding the same line of the queue

    decisions = [("approve", None), ("reject", "Trop tard, le repas est commandé.")]
    with entrypoint_waiter(
        platform.recorder, "on_decided", callback=about("request_id", request["id"]), timeout=10
    ) as sent:
        pool = eventlet.GreenPool(2)
        answers = list(
            pool.imap(
                lambda d: rpc_over_broker(
                    platform, second_agent, "decide_cancellation", town.id, request["id"], *d
                ),
                decisions,
            )
        )
    won = [a for a in answers if isinstance(a, dict)]
    lost = [a for a in answers if not isinstance(a, dict)]
    assert len(won) == 1 and len(lost) == 1, answers
    assert isinstance(lost[0], AlreadyDecided) and lost[0].status == 409 and lost[0].code == "ALREADY_DECIDED"
    winner = won[0]
    event = sent.get()
    assert event["decision"] == winner["status"] and event["booking_id"] == request["booking_id"]
    assert event["billing_mode"] == "postpaid" and event["decided_by"] == winner["decided_by"]
    eventlet.sleep(1)  # a few relay polls: a second decision's event would have arrived by now
    assert len(received("cancellation_decided", "request_id", {request["id"]})) == 1

    db.expire_all()
    assert db.get(CancellationRequest, request["id"]).status == winner["status"]
    booking_status = db.get(Booking, request["booking_id"]).status
    assert booking_status == {"approved": "cancelled", "rejected": "confirmed"}[winner["status"]]
    _, taken, holding, _ = day_ledger(db, canteen["id"])
    assert taken == holding == (0 if winner["status"] == "approved" else 1)

    with pytest.raises(AlreadyDecided):  # and later on, too
        call(platform.booking, "decide_cancellation", town.id, request["id"], "approve", caller=town.agent)
    assert call(platform.booking, "list_cancellation_requests", town.id, caller=town.agent) == []
    [listed] = call(
        platform.booking, "list_cancellation_requests", town.id, winner["status"], caller=town.agent
    )
    assert listed["id"] == request["id"] and listed["decided_at"] is not None


def test_attendance_marked_by_an_agent_shows_on_the_parents_calendar(platform):
    town = Town(platform)
    booking = platform.booking
    canteen = town.activity(capacity=3)
    parent = new_parent()
    child = town.family_with_child(parent)
    booked = book_by_cart(platform, parent, child, canteen)

    with entrypoint_waiter(
        platform.recorder, "on_attendance", callback=about("booking_id", booked["booking_id"]), timeout=10
    ) as sent:
        marked = call(
            booking, "mark_attendance", town.id, canteen["id"], DAY, child["id"], "absent", caller=town.agent
        )
    assert (marked["booking_id"], marked["status"], marked["date"]) == (booked["booking_id"], "absent", DAY)
    event = sent.get()
    assert {k: event[k] for k in ("child_id", "activity_id", "date", "status", "commune_id")} == {
        "child_id": child["id"],
        "activity_id": canteen["id"],
        "date": DAY,
        "status": "absent",
        "commune_id": town.id,
    }
    assert event["family_id"] == child["family_id"] and event["marked_by"] == marked["marked_by"]

    [day] = call(booking, "calendar", child["id"], DAY, DAY, caller=parent)["days"]
    assert (day["state"], day["booking_id"]) == ("absent", booked["booking_id"])
    call(booking, "mark_attendance", town.id, canteen["id"], DAY, child["id"], "present", caller=town.agent)
    [day] = call(booking, "calendar", child["id"], DAY, DAY, caller=parent)["days"]
    assert day["state"] == "present"  # marking again overwrites

    # a day the child holds no place: NOT_BOOKED (409), and nothing shows on the calendar
    with pytest.raises(NotBooked) as refused:
        call(
            booking,
            "mark_attendance",
            town.id,
            canteen["id"],
            "2026-03-13",
            child["id"],
            "present",
            caller=town.agent,
        )
    assert (refused.value.status, refused.value.code) == (409, "NOT_BOOKED")
    [other_day] = call(booking, "calendar", child["id"], "2026-03-13", "2026-03-13", caller=parent)["days"]
    assert other_day["state"] == "open"


def test_the_roster_as_json_and_as_csv(platform):
    town = Town(platform)
    booking = platform.booking
    canteen = town.activity(name="Cantine Jaurès", capacity=2)
    parents = [new_parent() for _ in range(3)]
    children = [town.family_with_child(parent) for parent in parents]
    results = [book_by_cart(platform, p, c, canteen) for p, c in zip(parents, children, strict=True)]
    assert [r["outcome"] for r in results] == ["confirmed", "confirmed", "waitlisted"]
    call(
        booking,
        "mark_attendance",
        town.id,
        canteen["id"],
        DAY,
        children[0]["id"],
        "present",
        caller=town.agent,
    )

    data = call(booking, "roster", town.id, canteen["id"], DAY, caller=town.agent)
    assert (data["activity_id"], data["date"], data["headcount"], data["waitlisted"]) == (
        canteen["id"],
        DAY,
        2,
        1,
    )
    rows = {c["child_id"]: c for c in data["children"]}
    assert set(rows) == {children[0]["id"], children[1]["id"]}
    first = rows[children[0]["id"]]
    assert {
        k: first[k] for k in ("child_id", "first_name", "booking_id", "booking_status", "attendance")
    } == {
        "child_id": children[0]["id"],
        "first_name": "Léa",  # from communes
        "booking_id": results[0]["booking_id"],
        "booking_status": "confirmed",
        "attendance": "present",
    }
    assert first.get("last_name", "Martin") == "Martin"  # (last names: communes' roster_children)
    assert rows[children[1]["id"]]["attendance"] is None

    text = call(booking, "roster_csv", town.id, canteen["id"], DAY, caller=town.agent)
    assert text.startswith("\ufeff") and text.encode("utf-8").startswith(b"\xef\xbb\xbf")
    assert text[1:].startswith("Date;Activité;Prénom;") and text.endswith("\r\n")
    header, *body = csv.reader(io.StringIO(text[1:], newline=""), delimiter=";")
    assert {"Date", "Activité", "Prénom", "Identifiant enfant", "Réservation", "Présence"} <= set(header)
    by_child = {row["Identifiant enfant"]: row for row in (dict(zip(header, r, strict=True)) for r in body)}
    assert set(by_child) == {children[0]["id"], children[1]["id"]}
    line = by_child[children[0]["id"]]
    assert (line["Date"], line["Activité"], line["Prénom"], line["Réservation"], line["Présence"]) == (
        "12/03/2026",
        "Cantine Jaurès",
        "Léa",
        "réservé",
        "présent",
    )
    assert line.get("Nom", "Martin") == "Martin"
    assert (by_child[children[1]["id"]]["Réservation"], by_child[children[1]["id"]]["Présence"]) == (
        "réservé",
        "",
    )


def test_the_calendar_feed_is_created_fetched_and_revoked(platform):
    town = Town(platform)
    booking = platform.booking
    canteen = town.activity(name="Cantine", capacity=2)
    parent = new_parent()
    child = town.family_with_child(parent)
    booked = book_by_cart(platform, parent, child, canteen)

    token = call(booking, "create_calendar_feed", child["id"], caller=parent)["token"]
    assert isinstance(token, str) and len(token) == 43
    feed = call(booking, "calendar_feed", token)  # anonymous: the token is the secret
    assert feed.startswith("BEGIN:VCALENDAR\r\n") and feed.rstrip("\r\n").endswith("END:VCALENDAR")
    assert f"UID:{booked['booking_id']}@portail-familles\r\n" in feed
    assert "DTSTART;VALUE=DATE:20260312" in feed and "SUMMARY:Cantine" in feed
    assert feed.count("BEGIN:VEVENT") == 1

    # a new token replaces the old one
    renewed = call(booking, "create_calendar_feed", child["id"], caller=parent)["token"]
    with pytest.raises(NotFound):
        call(booking, "calendar_feed", token)
    assert "BEGIN:VEVENT" in call(booking, "calendar_feed", renewed)

    assert call(booking, "revoke_calendar_feed", child["id"], caller=parent) is None
    with pytest.raises(NotFound):
        call(booking, "calendar_feed", renewed)
    with pytest.raises(NotFound):
        call(booking, "calendar_feed", "not a token")


def test_an_agent_of_another_commune_gets_not_found_everywhere(platform, db):
    town, elsewhere = Town(platform), Town(platform)
    booking = platform.booking
    canteen = town.activity(capacity=2, cancellation_approval="agent")
    parent = new_parent()
    child = town.family_with_child(parent)
    request = requested_cancellation(platform, town, parent, child, canteen)
    stranger = elsewhere.agent  # a real agent, recorded in communes, of another commune
    unknown = agent_of(town.id)  # the role for this commune, but not an agent communes knows
    other_child = town.family_with_child()

    own_path = [  # the stranger's calls name the town's commune: refused on the role
        ("list_cancellation_requests", town.id),
        ("decide_cancellation", town.id, request["id"], "approve"),
        ("mark_attendance", town.id, canteen["id"], DAY, child["id"], "present"),
        ("roster", town.id, canteen["id"], DAY),
        ("roster_csv", town.id, canteen["id"], DAY),
        ("book_on_behalf", town.id, other_child["id"], canteen["id"], [DAY]),
        ("cancel_on_behalf", town.id, child["id"], canteen["id"], [DAY]),
    ]
    stranger_path = [  # ...or its own commune with the town's ids: refused on the objects
        ("decide_cancellation", elsewhere.id, request["id"], "approve"),
        ("mark_attendance", elsewhere.id, canteen["id"], DAY, child["id"], "present"),
        ("roster", elsewhere.id, canteen["id"], DAY),
        ("roster_csv", elsewhere.id, canteen["id"], DAY),
        ("book_on_behalf", elsewhere.id, other_child["id"], canteen["id"], [DAY]),
        ("cancel_on_behalf", elsewhere.id, child["id"], canteen["id"], [DAY]),
    ]
    feeds = [("create_calendar_feed", child["id"]), ("revoke_calendar_feed", child["id"])]
    for method, *args in own_path + stranger_path + feeds:
        with pytest.raises(NotFound):
            call(booking, method, *args, caller=stranger)
    for method, *args in [c for c in own_path if c[0].endswith("_on_behalf")] + feeds:
        with pytest.raises(NotFound):  # communes does not know this account as the town's agent
            call(booking, method, *args, caller=unknown)
    assert call(booking, "list_cancellation_requests", elsewhere.id, caller=stranger) == []

    # nothing changed
    [still] = call(booking, "list_cancellation_requests", town.id, caller=town.agent)
    assert still["id"] == request["id"] and still["status"] == "pending"
    assert (
        call(booking, "roster", town.id, canteen["id"], DAY, caller=town.agent)["children"][0]["attendance"]
        is None
    )
    db.expire_all()
    assert db.scalars(select(Booking.status).where(Booking.child_id == other_child["id"])).all() == []
    token = call(booking, "create_calendar_feed", child["id"], caller=parent)["token"]
    assert "BEGIN:VEVENT" in call(booking, "calendar_feed", token)  # the stranger revoked nothing

"""booking's agents' slice on SQLite, without a broker: cancellation decisions (approve frees the
place and promotes, reject restores, a second decision is refused), attendance (only on a booked
day; overwrites; shown on the calendar), the roster and its CSV, bookings and cancellations on
behalf of a family (past days, closures, capacity still enforced), the append-only audit trail,
calendar feed tokens (hashed, replaced, revoked), and the enriched events."""

import contextlib
import datetime as dt
import hashlib
import uuid

import pytest
from nameko.testing.services import worker_factory
from sqlalchemy import create_engine, select, text
from sqlalchemy.exc import DatabaseError
from sqlalchemy.orm import Session
from sqlalchemy.pool import StaticPool

from services.booking import access as booking_access
from services.booking import (
    activities,
    attendance,
    audit,
    calendar,
    cancellation_requests,
    cart,
    feeds,
    on_behalf,
    roster,
    validation,
)
from services.booking.access import ChildInfo
from services.booking.exceptions import AlreadyDecided, NotBooked
from services.booking.models import (
    Base,
    Booking,
    BookingAuditEntry,
    CalendarFeed,
    CancellationRequest,
    Occurrence,
    OutboxEvent,
)
from services.booking.service import BookingService
from services.common import clock
from services.common.context import Caller
from services.common.errors import NotFound, ValidationFailed

COMMUNE = str(uuid.uuid4())
AGENT = Caller(account_id=str(uuid.uuid4()), roles=(f"agent:{COMMUNE}",))
OTHER_AGENT = Caller(account_id=str(uuid.uuid4()), roles=(f"agent:{uuid.uuid4()}",))
T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)  # Monday 2 March 2026, 09:00 in Paris
DAY = dt.date(2026, 3, 12)  # a Thursday


@pytest.fixture
def session():
    engine = create_engine("sqlite://", poolclass=StaticPool, connect_args={"check_same_thread": False})
    Base.metadata.create_all(engine)
    clock.set_now(T0)
    with Session(engine) as s:
        yield s


def new_activity(session, **overrides):
    data = {
        "name": "Cantine",
        "kind": "canteen",
        "billing_mode": "postpaid",
        "capacity": 1,
        "weekdays": ["monday", "tuesday", "thursday", "friday"],
        "start_date": "2026-02-02",
        "end_date": "2026-07-03",
        "booking_deadline": {"days_before": 2, "at": "10:00"},
        "cancellation_deadline": {"days_before": 1, "at": "18:00"},
        "cancellation_approval": "agent",
        "waiting_list": True,
        **overrides,
    }
    return activities.create_activity(session, AGENT, COMMUNE, "Europe/Paris", data)


def new_child(first_name="Léa"):
    return ChildInfo(
        id=str(uuid.uuid4()),
        family_id=str(uuid.uuid4()),
        commune_id=COMMUNE,
        birth_date=dt.date(2019, 5, 4),
        class_name="CP",
        first_name=first_name,
    )


def run_cart(session, child, activity, action, *days):
    account_id = str(uuid.uuid4())
    dates = [d.isoformat() for d in days]
    if action == "book":
        cart.add_items(session, account_id, child, activity["id"], dates=dates)
    else:
        cart.add_cancellations(session, account_id, child, activity["id"], dates)
    return validation.validate(session, account_id, uuid.uuid4().hex, {child.id: child}, clock.now())[
        "results"
    ]


def events_of(session, event_type):
    return [
        row.payload
        for row in session.scalars(select(OutboxEvent).order_by(OutboxEvent.id)).all()
        if row.event_type == event_type
    ]


def taken(session, activity_id, day=DAY):
    return session.scalars(
        select(Occurrence.taken).where(Occurrence.activity_id == activity_id, Occurrence.date == day)
    ).one()


def requested(session, child, activity):
    """A booked child whose parent asked to cancel: (the request id, the booking)."""
    assert run_cart(session, child, activity, "book", DAY)[0]["outcome"] == "confirmed"
    result = run_cart(session, child, activity, "cancel", DAY)[0]
    assert result["outcome"] == "requested"
    request = session.scalars(
        select(CancellationRequest).where(CancellationRequest.booking_id == result["booking_id"])
    ).one()
    return request.id, session.get(Booking, result["booking_id"])


# --- cancellation requests --------------------------------------------------------------------------


def test_approval_frees_the_place_promotes_the_waiting_list_and_tells_billing(session):
    activity = new_activity(session)
    lea, hugo = new_child("Léa"), new_child("Hugo")
    request_id, booking = requested(session, lea, activity)
    assert run_cart(session, hugo, activity, "book", DAY)[0]["outcome"] == "waitlisted"
    queue = cancellation_requests.list_requests(session, AGENT, COMMUNE, "pending")
    assert [r["id"] for r in queue] == [request_id] and queue[0]["child_first_name"] == "Léa"

    decided = cancellation_requests.decide(session, AGENT, COMMUNE, request_id, "approve", None, clock.now())
    assert decided["status"] == "approved" and decided["decided_by"] == AGENT.account_id
    session.refresh(booking)
    assert booking.status == "cancelled"
    assert taken(session, activity["id"]) == 1  # freed, then given to Hugo
    promoted = events_of(session, "booking_promoted")
    assert promoted[-1]["child_id"] == hugo.id
    assert promoted[-1]["child_first_name"] == "Hugo" and promoted[-1]["activity_name"] == "Cantine"
    (event,) = events_of(session, "cancellation_decided")
    assert {k: event[k] for k in ("request_id", "booking_id", "decision", "reason", "billing_mode")} == {
        "request_id": request_id,
        "booking_id": booking.id,
        "decision": "approved",
        "reason": None,
        "billing_mode": "postpaid",
    }
    assert event["child_first_name"] == "Léa" and event["activity_name"] == "Cantine"
    assert event["family_id"] == lea.family_id and event["date"] == DAY.isoformat()
    assert cancellation_requests.list_requests(session, AGENT, COMMUNE, "pending") == []
    assert [r["id"] for r in cancellation_requests.list_requests(session, AGENT, COMMUNE, "approved")] == [
        request_id
    ]
    day = calendar.calendar(session, lea, DAY, DAY, clock.now())["days"][0]
    clock.set_now(dt.datetime(2026, 3, 11, 12, 0, tzinfo=dt.UTC))  # past the booking deadline
    day = calendar.calendar(session, lea, DAY, DAY, clock.now())["days"][0]
    assert day["state"] == "cancelled"


def test_rejection_restores_the_booking_with_the_reason(session):
    activity = new_activity(session)
    request_id, booking = requested(session, new_child(), activity)
    decided = cancellation_requests.decide(
        session, AGENT, COMMUNE, request_id, "reject", "  Repas déjà commandé  ", clock.now()
    )
    assert decided["status"] == "rejected" and decided["reason"] == "Repas déjà commandé"
    session.refresh(booking)
    assert booking.status == "confirmed" and taken(session, activity["id"]) == 1
    (event,) = events_of(session, "cancellation_decided")
    assert event["decision"] == "rejected" and event["reason"] == "Repas déjà commandé"


def test_a_request_is_decided_once(session):
    activity = new_activity(session)
    request_id, _ = requested(session, new_child(), activity)
    cancellation_requests.decide(session, AGENT, COMMUNE, request_id, "reject", None, clock.now())
    for decision in ("approve", "reject"):
        with pytest.raises(AlreadyDecided):
            cancellation_requests.decide(session, AGENT, COMMUNE, request_id, decision, None, clock.now())
    assert len(events_of(session, "cancellation_decided")) == 1


def test_requests_are_the_communes_agents_only(session):
    activity = new_activity(session)
    request_id, _ = requested(session, new_child(), activity)
    with pytest.raises(NotFound):
        cancellation_requests.decide(session, OTHER_AGENT, COMMUNE, request_id, "approve", None, clock.now())
    with pytest.raises(NotFound):
        cancellation_requests.list_requests(session, OTHER_AGENT, COMMUNE)
    with pytest.raises(NotFound):
        cancellation_requests.decide(session, AGENT, COMMUNE, str(uuid.uuid4()), "approve", None, clock.now())
    with pytest.raises(ValidationFailed):
        cancellation_requests.list_requests(session, AGENT, COMMUNE, "everything")
    with pytest.raises(ValidationFailed):
        cancellation_requests.decide(session, AGENT, COMMUNE, request_id, "reject", "x" * 501, clock.now())


# --- attendance -------------------------------------------------------------------------------------


def test_attendance_needs_a_booking_and_overwrites(session):
    activity = new_activity(session)
    lea, hugo = new_child("Léa"), new_child("Hugo")
    run_cart(session, lea, activity, "book", DAY)
    with pytest.raises(NotBooked):
        attendance.mark(session, AGENT, COMMUNE, activity["id"], DAY.isoformat(), hugo.id, "present", T0)
    with pytest.raises(NotBooked):  # a day Léa is not booked
        attendance.mark(session, AGENT, COMMUNE, activity["id"], "2026-03-13", lea.id, "present", T0)
    with pytest.raises(ValidationFailed):
        attendance.mark(session, AGENT, COMMUNE, activity["id"], DAY.isoformat(), lea.id, "late", T0)
    with pytest.raises(NotFound):
        attendance.mark(session, OTHER_AGENT, COMMUNE, activity["id"], DAY.isoformat(), lea.id, "absent", T0)

    attendance.mark(session, AGENT, COMMUNE, activity["id"], DAY.isoformat(), lea.id, "absent", T0)
    marked = attendance.mark(
        session, AGENT, COMMUNE, activity["id"], DAY.isoformat(), lea.id, "absent_justified", T0
    )
    assert marked["status"] == "absent_justified"
    day = calendar.calendar(session, lea, DAY, DAY, clock.now())["days"][0]
    assert day["state"] == "absent_justified"
    statuses = [e["status"] for e in events_of(session, "attendance_marked")]
    assert statuses == ["absent", "absent_justified"]


# --- roster -----------------------------------------------------------------------------------------


def test_roster_counts_booked_children_and_the_waiting_list(session):
    activity = new_activity(session, capacity=2)
    lea, hugo, zoe, tom = (new_child(n) for n in ("Léa", "Hugo", "Zoé", "Tom"))
    run_cart(session, lea, activity, "book", DAY)
    requested_id, _ = None, None
    run_cart(session, hugo, activity, "book", DAY)
    run_cart(session, hugo, activity, "cancel", DAY)  # requested: still expected
    run_cart(session, zoe, activity, "book", DAY)  # waitlisted
    run_cart(session, tom, activity, "book", DAY)  # waitlisted
    attendance.mark(session, AGENT, COMMUNE, activity["id"], DAY.isoformat(), lea.id, "present", T0)
    data = roster.roster(session, AGENT, COMMUNE, activity["id"], DAY.isoformat())
    assert data["headcount"] == 2 and data["waitlisted"] == 2 and requested_id is None
    by_child = {c["child_id"]: c for c in data["children"]}
    assert by_child[lea.id]["attendance"] == "present" and by_child[lea.id]["booking_status"] == "confirmed"
    assert by_child[hugo.id]["booking_status"] == "cancel_requested"
    assert {c["last_name"] for c in data["children"]} == {None}  # until communes names them
    named = roster.with_names(data, {hugo.id: {"first_name": "Hugo-Renamed", "last_name": "Durand"}})
    assert [(c["first_name"], c["last_name"]) for c in named["children"]] == [
        ("Hugo-Renamed", "Durand"),
        ("Léa", None),  # communes did not return her: the first name kept on the booking
    ]
    with pytest.raises(NotFound):
        roster.roster(session, OTHER_AGENT, COMMUNE, activity["id"], DAY.isoformat())


def test_roster_csv_is_for_a_french_spreadsheet():
    data = {
        "activity_id": "a",
        "activity_name": "Cantine; midi",
        "date": "2026-03-12",
        "headcount": 2,
        "waitlisted": 0,
        "children": [
            {
                "child_id": "c1",
                "first_name": "Léa",
                "last_name": "Martin",
                "booking_id": "b1",
                "booking_status": "confirmed",
                "attendance": "present",
            },
            {
                "child_id": "c2",
                "first_name": "=HYPERLINK()",
                "booking_id": "b2",
                "booking_status": "cancel_requested",
                "attendance": None,
            },
        ],
    }
    text_csv = roster.to_csv(data)
    raw = text_csv.encode("utf-8")
    assert raw.startswith(b"\xef\xbb\xbf")
    lines = text_csv[1:].split("\r\n")
    assert lines[0] == "Date;Activité;Prénom;Nom;Identifiant enfant;Réservation;Présence"
    assert lines[1] == '12/03/2026;"Cantine; midi";Léa;Martin;c1;réservé;présent'
    assert lines[2] == '12/03/2026;"Cantine; midi";\'=HYPERLINK();;c2;annulation demandée;'
    assert lines[3] == ""


class FakeCommunes:
    """communes' roster_children, recording each call; knows only the given children."""

    def __init__(self, known):
        self.known = known
        self.calls = []

    def roster_children(self, commune_id, child_ids):
        self.calls.append((commune_id, list(child_ids)))
        return {i: self.known[i] for i in child_ids if i in self.known}

    def check_child_access(self, account_id, child_id):
        raise AssertionError("the roster asks communes once, with roster_children")


def test_roster_names_come_from_one_roster_children_call(session):
    lea = {"first_name": "Léa", "last_name": "Martin", "class_name": "CP", "school": None}
    ids = [str(uuid.uuid4()) for _ in range(3)]
    fake = FakeCommunes({ids[0]: lea})
    assert booking_access.roster_children(fake, COMMUNE, [ids[1], ids[0], ids[2], ids[0]]) == {ids[0]: lea}
    assert fake.calls == [(COMMUNE, sorted(ids))]
    assert booking_access.roster_children(fake, COMMUNE, []) == {} and len(fake.calls) == 1
    many = [str(uuid.uuid4()) for _ in range(booking_access.ROSTER_BATCH + 1)]
    booking_access.roster_children(fake, COMMUNE, many)
    assert [len(ids) for _, ids in fake.calls[1:]] == [booking_access.ROSTER_BATCH, 1]


def test_roster_rpc_adds_last_names_and_the_csv_a_nom_column(session):
    activity = new_activity(session, capacity=5)
    lea_m, lea_d, tom = new_child("Léa"), new_child("Léa"), new_child("Tom")
    for child in (lea_m, lea_d, tom):
        run_cart(session, child, activity, "book", DAY)
    session.commit()
    fake = FakeCommunes(
        {
            lea_m.id: {"first_name": "Léa", "last_name": "Martin", "class_name": "CP", "school": None},
            lea_d.id: {"first_name": "Léa", "last_name": "Durand", "class_name": "CE1", "school": None},
        }
    )

    @contextlib.contextmanager
    def transaction():
        yield session

    worker = worker_factory(BookingService, caller=AGENT, communes=fake)
    worker.db.transaction = transaction
    data = worker.roster(COMMUNE, activity["id"], DAY.isoformat())
    assert fake.calls == [(COMMUNE, sorted([lea_m.id, lea_d.id, tom.id]))]  # one call for 3 children
    assert [(c["first_name"], c["last_name"]) for c in data["children"]] == [
        ("Léa", "Durand"),
        ("Léa", "Martin"),
        ("Tom", None),  # not returned by communes: the stored first name, no last name
    ]
    assert {"child_id", "first_name", "booking_id", "booking_status", "attendance"} <= set(
        data["children"][0]
    )
    lines = worker.roster_csv(COMMUNE, activity["id"], DAY.isoformat())[1:].split("\r\n")
    assert lines[0].split(";")[2:4] == ["Prénom", "Nom"]
    assert [line.split(";")[2:5] for line in lines[1:4]] == [
        ["Léa", "Durand", lea_d.id],
        ["Léa", "Martin", lea_m.id],
        ["Tom", "", tom.id],
    ]


# --- on behalf of a family --------------------------------------------------------------------------


def test_agents_book_past_and_closed_days_but_not_beyond_capacity(session):
    activity = new_activity(session, waiting_list=True)
    activities.add_closure(session, AGENT, COMMUNE, activity["id"], "2026-03-12", "2026-03-12", "Grève")
    past = dt.date(2026, 2, 26)  # a Thursday already gone
    lea, hugo = new_child("Léa"), new_child("Hugo")
    first = on_behalf.book(
        session,
        AGENT.account_id,
        "agent",
        lea,
        activity["id"],
        [past.isoformat(), DAY.isoformat(), "2026-03-11"],
        T0,
    )["results"]
    assert [(r["date"], r["outcome"], r.get("reason")) for r in first] == [
        ("2026-02-26", "confirmed", None),
        ("2026-03-11", "rejected", "NOT_SCHEDULED"),  # a Wednesday
        ("2026-03-12", "confirmed", None),  # closed: agents may still book
    ]
    second = on_behalf.book(
        session, AGENT.account_id, "agent", hugo, activity["id"], [past.isoformat(), DAY.isoformat()], T0
    )
    assert [(r["outcome"], r.get("reason")) for r in second["results"]] == [
        ("rejected", "FULL"),  # a past day full: no waiting list for a day gone
        ("waitlisted", None),
    ]
    again = on_behalf.book(session, AGENT.account_id, "agent", lea, activity["id"], [past.isoformat()], T0)
    assert again["results"][0]["reason"] == "ALREADY_BOOKED"
    assert taken(session, activity["id"], past) == 1
    confirmed = events_of(session, "booking_confirmed")
    assert all(e["by_agent"] is True for e in confirmed)
    changed = events_of(session, "booking_changed_by_agent")
    assert changed[0]["child_first_name"] == "Léa" and changed[0]["activity_name"] == "Cantine"
    assert changed[0]["lines"][0] == {
        "date": "2026-02-26",
        "action": "book",
        "outcome": "confirmed",
        "reason": None,
    }
    actions = [row.action for row in session.scalars(select(BookingAuditEntry)).all()]
    assert actions.count("book_on_behalf") == 3


def test_agents_cancel_at_once_and_settle_a_pending_request(session):
    activity = new_activity(session)
    lea, hugo = new_child("Léa"), new_child("Hugo")
    request_id, booking = requested(session, lea, activity)
    run_cart(session, hugo, activity, "book", DAY)  # waitlisted
    result = on_behalf.cancel(session, AGENT.account_id, "agent", lea, activity["id"], [DAY.isoformat()], T0)
    assert result["results"][0]["outcome"] == "cancelled"
    assert session.get(CancellationRequest, request_id).status == "approved"
    (decided,) = events_of(session, "cancellation_decided")
    assert decided["decision"] == "approved" and decided["decided_by"] == AGENT.account_id
    assert [e["child_id"] for e in events_of(session, "booking_promoted")] == [hugo.id]
    with pytest.raises(AlreadyDecided):
        cancellation_requests.decide(session, AGENT, COMMUNE, request_id, "reject", None, clock.now())
    again = on_behalf.cancel(session, AGENT.account_id, "agent", lea, activity["id"], [DAY.isoformat()], T0)
    assert again["results"][0] == {
        "child_id": lea.id,
        "activity_id": activity["id"],
        "date": DAY.isoformat(),
        "action": "cancel",
        "outcome": "rejected",
        "reason": "NOT_BOOKED",
    }
    # a past day, after its deadline: agents still cancel (a correction)
    past = dt.date(2026, 2, 26)
    on_behalf.book(session, AGENT.account_id, "agent", lea, activity["id"], [past.isoformat()], T0)
    undone = on_behalf.cancel(session, AGENT.account_id, "agent", lea, activity["id"], [past.isoformat()], T0)
    assert undone["results"][0]["outcome"] == "cancelled" and taken(session, activity["id"], past) == 0
    assert events_of(session, "booking_cancelled")[-1]["by_agent"] is True


def test_on_behalf_activity_of_another_commune_is_not_found(session):
    activity = new_activity(session)
    stranger = ChildInfo(id=str(uuid.uuid4()), family_id=None, commune_id=str(uuid.uuid4()))
    with pytest.raises(NotFound):
        on_behalf.book(session, AGENT.account_id, "agent", stranger, activity["id"], [DAY.isoformat()], T0)


def test_audit_is_append_only(session):
    audit.record(session, AGENT.account_id, "agent", audit.MARK_ATTENDANCE, audit.ATTENDANCE, "x", COMMUNE)
    session.commit()
    assert audit.entries(session, COMMUNE)[0]["action"] == "mark_attendance"
    with pytest.raises(DatabaseError):
        session.execute(text("UPDATE booking_audit SET role = 'admin'"))
    session.rollback()
    with pytest.raises(DatabaseError):
        session.execute(text("DELETE FROM booking_audit"))
    session.rollback()
    assert len(audit.entries(session, COMMUNE)) == 1


# --- cart validation's summary ----------------------------------------------------------------------


def test_cart_validated_carries_the_summary_lines(session):
    activity = new_activity(session, capacity=1, waiting_list=False)
    lea, hugo = new_child("Léa"), new_child("Hugo")
    run_cart(session, lea, activity, "book", DAY)
    run_cart(session, hugo, activity, "book", DAY)
    first, second = events_of(session, "cart_validated")
    assert first["lines"] == [
        {
            "child_first_name": "Léa",
            "activity_name": "Cantine",
            "date": "2026-03-12",
            "action": "book",
            "outcome": "confirmed",
            "reason": None,
        }
    ]
    assert second["lines"][0]["outcome"] == "rejected" and second["lines"][0]["reason"] == "FULL"
    assert session.scalars(select(Booking.child_first_name)).all() == ["Léa"]


# --- calendar feeds ---------------------------------------------------------------------------------


def test_feed_tokens_are_stored_hashed_replaced_and_revoked(session):
    activity = new_activity(session)
    lea = new_child("Léa")
    run_cart(session, lea, activity, "book", DAY)
    token = feeds.create(session, lea, "account-1", T0)
    assert len(token) == 43 and feeds.plausible(token)  # 256 bits, URL-safe base64
    (row,) = session.scalars(select(CalendarFeed)).all()
    assert row.token_hash == hashlib.sha256(token.encode()).hexdigest() and token not in row.token_hash
    feed = feeds.find(session, token)
    assert feed.child_id == lea.id and feed.account_id == "account-1"
    ics = feeds.render(session, feed, "Léa", T0)
    assert "SUMMARY:Cantine\r\n" in ics and "DTSTART;VALUE=DATE:20260312" in ics and "Martin" not in ics

    newer = feeds.create(session, lea, "account-1", T0)
    assert feeds.find(session, token) is None and feeds.find(session, newer) is not None
    assert feeds.revoke(session, lea.id) is True
    assert feeds.find(session, newer) is None
    assert feeds.find(session, "not a token") is None and feeds.find(session, None) is None

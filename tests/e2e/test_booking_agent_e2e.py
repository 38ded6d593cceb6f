"""Agents' booking over HTTP: cancellation requests approved and rejected, a past day booked on
behalf of a family, attendance marked and shown on the parent's calendar, the roster in JSON and
CSV, and a child's private calendar feed fetched, then revoked."""

import datetime as dt
from urllib.parse import urlparse

import pytest

from tests.e2e.towns import Town, parent

pytestmark = pytest.mark.e2e

DEADLINE = {"days_before": 1, "at": "10:00"}
EVERY_DAY = ["monday", "tuesday", "wednesday", "thursday", "friday", "saturday", "sunday"]


def setup_town(platform, admin, name):
    town = Town(platform, *admin, name)
    today = dt.date.today()
    body = {
        "name": "Cantine",
        "kind": "canteen",
        "billing_mode": "postpaid",
        "capacity": 10,
        "weekdays": EVERY_DAY,
        "start_date": (today - dt.timedelta(days=20)).isoformat(),
        "end_date": (today + dt.timedelta(days=40)).isoformat(),
        "booking_deadline": DEADLINE,
        "cancellation_deadline": DEADLINE,
        "cancellation_approval": "agent",
    }
    created = town.agent_client.post(town.path("/activities"), token=town.agent, json=body)
    assert created.status_code == 201, created.text
    family = town.family(f"A-{platform.new_email()[:12]}", platform.new_email("famille"))
    child = town.child(family["id"], "Léa")
    client, _, token = parent(platform)
    redeemed = client.post("/api/v1/adhesions", token=token, json={"code": town.code(family["id"])["code"]})
    assert redeemed.status_code == 201, redeemed.text
    return town, created.json(), child, client, token


def test_agent_decides_cancellation_requests(platform, admin):
    town, canteen, child, client, token = setup_town(platform, admin, "Cancelville")
    first = dt.date.today() + dt.timedelta(days=10)
    second = first + dt.timedelta(days=1)
    days = [first.isoformat(), second.isoformat()]
    body = {"child_id": child["id"], "activity_id": canteen["id"], "dates": days}
    assert client.post("/api/v1/cart/items", token=token, json=body).status_code == 201
    booked = client.post("/api/v1/cart/validate", token=token, headers={"Idempotency-Key": "b"}).json()
    assert [r["outcome"] for r in booked["results"]] == ["confirmed", "confirmed"]
    assert client.post("/api/v1/cart/cancellations", token=token, json=body).status_code == 201
    asked = client.post("/api/v1/cart/validate", token=token, headers={"Idempotency-Key": "c"}).json()
    assert [r["outcome"] for r in asked["results"]] == ["requested", "requested"]

    agent = town.agent_client
    pending = agent.get(town.path("/cancellation-requests"), token=town.agent, params={"status": "pending"})
    assert pending.status_code == 200, pending.text
    requests_by_date = {r["date"]: r for r in pending.json()}
    assert set(requests_by_date) == set(days) and requests_by_date[days[0]]["child_first_name"] == "Léa"
    approve_path = town.path(f"/cancellation-requests/{requests_by_date[days[0]]['id']}/approve")
    approved = agent.post(approve_path, token=town.agent)
    assert approved.status_code == 200 and approved.json()["status"] == "approved", approved.text
    again = agent.post(approve_path, token=town.agent)
    assert again.status_code == 409 and again.json()["error"] == "ALREADY_DECIDED"
    rejected = agent.post(
        town.path(f"/cancellation-requests/{requests_by_date[days[1]]['id']}/reject"),
        token=town.agent,
        json={"reason": "Repas déjà commandés"},
    )
    assert rejected.status_code == 200 and rejected.json()["reason"] == "Repas déjà commandés", rejected.text
    decided = agent.get(town.path("/cancellation-requests"), token=town.agent, params={"status": "rejected"})
    assert [r["id"] for r in decided.json()] == [requests_by_date[days[1]]["id"]]

    span = {"from": days[0], "to": days[1]}
    bookings = client.get(f"/api/v1/children/{child['id']}/bookings", token=token, params=span).json()
    assert {(b["date"], b["status"]) for b in bookings} == {(days[0], "cancelled"), (days[1], "confirmed")}
    calendar = client.get(f"/api/v1/children/{child['id']}/calendar", token=token, params=span).json()
    states = {d["date"]: d["state"] for d in calendar["days"]}
    # a cancelled day reads "open" while it can still be booked again (see booking/README.md)
    assert states == {days[0]: "open", days[1]: "booked"}

    stranger = Town(platform, *admin, "Elsewhere")
    assert (
        stranger.agent_client.get(town.path("/cancellation-requests"), token=stranger.agent).status_code
        == 404
    )


def test_past_day_on_behalf_attendance_roster_and_feed(platform, admin):
    town, canteen, child, client, token = setup_town(platform, admin, "Rosterville")
    agent = town.agent_client
    past = (dt.date.today() - dt.timedelta(days=3)).isoformat()
    body = {"child_id": child["id"], "activity_id": canteen["id"], "dates": [past]}
    booked = agent.post(town.path("/bookings"), token=town.agent, json=body)
    assert booked.status_code == 201, booked.text
    assert booked.json()["results"][0]["outcome"] == "confirmed"
    refused = client.post(town.path("/bookings"), token=token, json=body)
    assert refused.status_code == 404  # parents are not agents

    mark = {"activity_id": canteen["id"], "date": past, "child_id": child["id"], "status": "present"}
    marked = agent.request("PUT", town.path("/attendance"), token=town.agent, json=mark)
    assert marked.status_code == 200, marked.text
    other_day = {**mark, "date": (dt.date.today() - dt.timedelta(days=4)).isoformat()}
    not_booked = agent.request("PUT", town.path("/attendance"), token=town.agent, json=other_day)
    assert not_booked.status_code == 409 and not_booked.json()["error"] == "NOT_BOOKED"
    calendar = client.get(
        f"/api/v1/children/{child['id']}/calendar", token=token, params={"from": past, "to": past}
    ).json()
    assert calendar["days"][0]["state"] == "present"

    roster_path = town.path(f"/activities/{canteen['id']}/roster")
    roster = agent.get(roster_path, token=town.agent, params={"date": past})
    assert roster.status_code == 200, roster.text
    data = roster.json()
    assert data["headcount"] == 1 and data["waitlisted"] == 0
    assert data["children"][0]["first_name"] == "Léa" and data["children"][0]["attendance"] == "present"
    assert data["children"][0]["last_name"] == "Martin"  # from communes' roster_children
    csv = agent.get(roster_path, token=town.agent, params={"date": past, "format": "csv"})
    assert csv.status_code == 200 and csv.headers["Content-Type"].startswith("text/csv")
    assert csv.content.startswith(b"\xef\xbb\xbf")
    lines = csv.content.decode("utf-8-sig").split("\r\n")
    assert lines[0] == "Date;Activité;Prénom;Nom;Identifiant enfant;Réservation;Présence"
    assert lines[1].split(";")[2:] == ["Léa", "Martin", child["id"], "réservé", "présent"]

    cancelled = agent.post(town.path("/bookings/cancel"), token=town.agent, json=body)
    assert cancelled.status_code == 200 and cancelled.json()["results"][0]["outcome"] == "cancelled"
    rebooked = agent.post(town.path("/bookings"), token=town.agent, json=body)
    assert rebooked.json()["results"][0]["outcome"] == "confirmed"

    feed = client.post(f"/api/v1/children/{child['id']}/calendar-feed", token=token)
    assert feed.status_code == 201, feed.text
    path = urlparse(feed.json()["url"]).path
    assert path.startswith("/calendar/") and path.endswith(".ics")
    fetched = platform.client().get(path)  # no token: the URL is the secret
    assert fetched.status_code == 200, fetched.text
    assert fetched.headers["Content-Type"].startswith("text/calendar")
    assert fetched.text.startswith("BEGIN:VCALENDAR\r\n") and "SUMMARY:Cantine\r\n" in fetched.text
    assert "Martin" not in fetched.text  # no last name in the feed
    assert (
        client.request("DELETE", f"/api/v1/children/{child['id']}/calendar-feed", token=token).status_code
        == 204
    )
    assert platform.client().get(path).status_code == 404
    assert platform.client().get("/calendar/not-a-token.ics").status_code == 404

"""Booking over HTTP: activities, the calendar, a cart across two children and two activities, a
full day that waitlists then promotes after a cancellation, a replayed validation."""

import datetime as dt

import pytest

from tests.e2e.towns import Town, parent

pytestmark = pytest.mark.e2e

DEADLINE = {"days_before": 1, "at": "10:00"}


def next_monday(weeks_ahead=2):  # at least a week ahead: deadlines are never near
    today = dt.date.today()
    return today + dt.timedelta(days=7 * weeks_ahead - today.weekday())


def activity(town, **fields):
    start = next_monday()
    body = {
        "name": "Cantine",
        "kind": "canteen",
        "billing_mode": "postpaid",
        "capacity": 10,
        "weekdays": ["monday", "tuesday", "thursday", "friday"],
        "start_date": start.isoformat(),
        "end_date": (start + dt.timedelta(days=27)).isoformat(),
        "booking_deadline": DEADLINE,
        "cancellation_deadline": DEADLINE,
        "cancellation_approval": "auto",
        "waiting_list": False,
        **fields,
    }
    response = town.agent_client.post(town.path("/activities"), token=town.agent, json=body)
    assert response.status_code == 201, response.text
    return response.json()


def family_with_children(platform, town, names):
    family = town.family(f"B-{platform.new_email()[:12]}", platform.new_email("famille"))
    children = [town.child(family["id"], name) for name in names]
    client, _, token = parent(platform)
    assert (
        client.post(
            "/api/v1/adhesions", token=token, json={"code": town.code(family["id"])["code"]}
        ).status_code
        == 201
    )
    return client, token, children


def test_period_cart_for_two_children_and_two_activities_and_replay(platform, admin):
    town = Town(platform, *admin, "Bookville")
    canteen = activity(town)
    evening = activity(town, name="Garderie du soir", kind="evening_care", capacity=20)
    client, token, (lea, hugo) = family_with_children(platform, town, ["Léa", "Hugo"])

    listed = client.get(f"/api/v1/communes/{town.id}/activities", token=token)
    assert listed.status_code == 200 and {a["id"] for a in listed.json()} == {canteen["id"], evening["id"]}

    start = next_monday()
    period = {
        "from": start.isoformat(),
        "to": (start + dt.timedelta(days=13)).isoformat(),
        "weekdays": ["monday", "thursday"],
    }
    for child in (lea, hugo):
        for act in (canteen, evening):
            added = client.post(
                "/api/v1/cart/items",
                token=token,
                json={"child_id": child["id"], "activity_id": act["id"], "period": period},
            )
            assert added.status_code == 201, added.text
    cart = client.get("/api/v1/cart", token=token).json()
    assert len(cart["items"]) == 2 * 2 * 4  # 2 children x 2 activities x (2 Mondays + 2 Thursdays)

    first = client.post("/api/v1/cart/validate", token=token, headers={"Idempotency-Key": "k-1"})
    assert first.status_code == 200, first.text
    results = first.json()["results"]
    assert len(results) == 16 and {r["outcome"] for r in results} == {"confirmed"}
    assert first.json()["payment"] is None
    replay = client.post("/api/v1/cart/validate", token=token, headers={"Idempotency-Key": "k-1"})
    assert replay.status_code == 200 and replay.json() == first.json()
    assert client.get("/api/v1/cart", token=token).json()["items"] == []
    empty = client.post("/api/v1/cart/validate", token=token, headers={"Idempotency-Key": "k-2"})
    assert empty.status_code == 409 and empty.json()["error"] == "CART_EMPTY"

    span = {"from": start.isoformat(), "to": (start + dt.timedelta(days=13)).isoformat()}
    bookings = client.get(f"/api/v1/children/{lea['id']}/bookings", token=token, params=span).json()
    assert len(bookings) == 8  # nothing booked twice by the replay
    days = client.get(f"/api/v1/children/{lea['id']}/calendar", token=token, params=span).json()["days"]
    booked = [d for d in days if d["state"] == "booked"]
    assert len(booked) == 8 and all(d["booking_id"] and d["book_until"] and d["cancel_until"] for d in booked)
    assert any(d["state"] == "open" for d in days)  # Tuesdays and Fridays were not booked
    monday = next(d for d in days if d["date"] == start.isoformat() and d["activity_id"] == canteen["id"])
    assert monday["places_left"] == 8  # 10 places, Léa and Hugo


def test_full_day_waitlists_then_promotes_after_a_cancellation(platform, admin):
    town = Town(platform, *admin, "Waitville")
    camp = activity(
        town,
        name="Mercredi loisirs",
        kind="wednesday_leisure",
        capacity=1,
        waiting_list=True,
        weekdays=["wednesday"],
    )
    first, first_token, (anna,) = family_with_children(platform, town, ["Anna"])
    second, second_token, (ben,) = family_with_children(platform, town, ["Ben"])
    wednesday = (next_monday() + dt.timedelta(days=2)).isoformat()

    first.post(
        "/api/v1/cart/items",
        token=first_token,
        json={"child_id": anna["id"], "activity_id": camp["id"], "dates": [wednesday]},
    )
    assert (
        first.post("/api/v1/cart/validate", token=first_token, headers={"Idempotency-Key": "a"}).json()[
            "results"
        ][0]["outcome"]
        == "confirmed"
    )
    second.post(
        "/api/v1/cart/items",
        token=second_token,
        json={"child_id": ben["id"], "activity_id": camp["id"], "dates": [wednesday]},
    )
    waiting = second.post(
        "/api/v1/cart/validate", token=second_token, headers={"Idempotency-Key": "b"}
    ).json()["results"][0]
    assert waiting["outcome"] == "waitlisted"
    span = {"from": wednesday, "to": wednesday}
    assert (
        second.get(f"/api/v1/children/{ben['id']}/calendar", token=second_token, params=span).json()["days"][
            0
        ]["state"]
        == "waitlisted"
    )

    first.post(
        "/api/v1/cart/cancellations",
        token=first_token,
        json={"child_id": anna["id"], "activity_id": camp["id"], "dates": [wednesday]},
    )
    cancelled = first.post(
        "/api/v1/cart/validate", token=first_token, headers={"Idempotency-Key": "c"}
    ).json()["results"][0]
    assert cancelled["action"] == "cancel" and cancelled["outcome"] == "cancelled"
    promoted = second.get(f"/api/v1/children/{ben['id']}/calendar", token=second_token, params=span).json()[
        "days"
    ][0]
    assert promoted["state"] == "booked" and promoted["places_left"] == 0


def test_children_of_other_families_are_invisible(platform, admin):
    town = Town(platform, *admin, "Privacyville")
    canteen = activity(town)
    _, _, (child,) = family_with_children(platform, town, ["Chloé"])
    stranger, stranger_token, _ = family_with_children(platform, town, ["Autre"])
    start = next_monday().isoformat()
    assert (
        stranger.get(
            f"/api/v1/children/{child['id']}/calendar",
            token=stranger_token,
            params={"from": start, "to": start},
        ).status_code
        == 404
    )
    refused = stranger.post(
        "/api/v1/cart/items",
        token=stranger_token,
        json={"child_id": child["id"], "activity_id": canteen["id"], "dates": [start]},
    )
    assert refused.status_code == 404 and "Chloé" not in refused.text
    assert (
        stranger.get(
            f"/api/v1/children/{child['id']}/bookings",
            token=stranger_token,
            params={"from": start, "to": start},
        ).status_code
        == 404
    )
    bad = stranger.get(
        f"/api/v1/children/{child['id']}/calendar", token=stranger_token, params={"from": "demain"}
    )
    assert bad.status_code == 400 and set(bad.json()["fields"]) == {"from", "to"}
    assert platform.client().get("/api/v1/cart").status_code == 401

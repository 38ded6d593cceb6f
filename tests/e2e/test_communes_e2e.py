"""Communes over HTTP: admin, agents, families, children, adhesion codes, parents; and who is
refused what."""

import pytest

from tests.e2e.towns import CODE, Town, new_insee, parent

pytestmark = pytest.mark.e2e


def test_full_adhesion_journey(platform, admin):
    admin_client, admin_token = admin
    town = Town(platform, admin_client, admin_token, "Saint-Martin-sur-Loire")
    family_email = platform.new_email("famille")
    family = town.family("F-001", family_email, quotient=640)
    town.child(family["id"], "Léa")
    town.child(family["id"], "Hugo", "2016-11-30")
    issued = town.code(family["id"])
    assert CODE.fullmatch(issued["code"]) and issued["expires_at"]

    mail = platform.mailbox.wait_for(family_email)[0]
    body = mail.get_body(preferencelist=("plain",)).get_content()
    assert issued["code"] in body and "Saint-Martin-sur-Loire" in body

    client, address, token = parent(platform)
    assert client.get("/api/v1/me", token=token).json()["communes"] == []  # now cached by the gateway
    typed = issued["code"].lower().replace("-", " ")  # as a parent might type it
    linked = client.post("/api/v1/adhesions", token=token, json={"code": typed})
    assert linked.status_code == 201, linked.text
    assert linked.json() == {
        "commune": {"id": town.id, "name": "Saint-Martin-sur-Loire"},
        "family": {"id": family["id"], "name": "Famille F-001"},
    }
    again = client.post("/api/v1/adhesions", token=token, json={"code": issued["code"]})
    assert again.status_code == 409 and again.json()["error"] == "CODE_ALREADY_USED"

    communes = client.get("/api/v1/communes", token=token).json()
    assert communes == [
        {
            "id": town.id,
            "name": "Saint-Martin-sur-Loire",
            "family": {"id": family["id"], "name": "Famille F-001"},
        }
    ]
    children = client.get(f"/api/v1/communes/{town.id}/children", token=token).json()
    assert sorted(c["first_name"] for c in children) == ["Hugo", "Léa"]
    me = client.get("/api/v1/me", token=token).json()
    assert [c["id"] for c in me["communes"]] == [town.id]

    # a second commune for the same account
    other = Town(platform, admin_client, admin_token, "Villeneuve")
    other_family = other.family("V-9", platform.new_email("famille"))
    other.child(other_family["id"], "Léa")
    assert (
        client.post(
            "/api/v1/adhesions", token=token, json={"code": other.code(other_family["id"])["code"]}
        ).status_code
        == 201
    )
    assert {c["id"] for c in client.get("/api/v1/communes", token=token).json()} == {town.id, other.id}
    assert {c["id"] for c in client.get("/api/v1/me", token=token).json()["communes"]} == {town.id, other.id}

    # a second parent joins the same family with a code of their own; the first link stays
    second, _, second_token = parent(platform)
    assert (
        second.post(
            "/api/v1/adhesions", token=second_token, json={"code": town.code(family["id"])["code"]}
        ).status_code
        == 201
    )
    assert len(second.get(f"/api/v1/communes/{town.id}/children", token=second_token).json()) == 2
    assert len(client.get(f"/api/v1/communes/{town.id}/children", token=token).json()) == 2

    # the agent sees the family and their own commune in /me
    seen = town.agent_client.get(town.path(f"/families/{family['id']}"), token=town.agent).json()
    assert seen["reference"] == "F-001" and len(seen["children"]) == 2
    agent_me = town.agent_client.get("/api/v1/me", token=town.agent).json()
    assert town.id in agent_me["agent_communes"]
    patched = town.agent_client.request(
        "PATCH", town.path(f"/families/{family['id']}"), token=town.agent, json={"quotient_familial": 720}
    )
    assert patched.status_code == 200 and patched.json()["quotient_familial"] == 720
    audit = town.agent_client.get(town.path("/audit"), token=town.agent).json()
    assert audit and all("Famille" not in str(entry) for entry in audit)


def test_admin_routes_and_duplicates(platform, admin):
    admin_client, admin_token = admin
    insee = new_insee()
    assert (
        admin_client.post(
            "/api/v1/admin/communes", token=admin_token, json={"name": "A", "insee_code": insee}
        ).status_code
        == 201
    )
    duplicate = admin_client.post(
        "/api/v1/admin/communes", token=admin_token, json={"name": "B", "insee_code": insee}
    )
    assert duplicate.status_code == 409
    bad = admin_client.post(
        "/api/v1/admin/communes", token=admin_token, json={"name": "", "insee_code": "12"}
    )
    assert bad.status_code == 400 and set(bad.json()["fields"]) >= {"name", "insee_code"}
    client, _, token = parent(platform)
    refused = client.post(
        "/api/v1/admin/communes", token=token, json={"name": "X", "insee_code": new_insee()}
    )
    assert refused.status_code == 403
    assert (
        client.post("/api/v1/admin/communes", json={"name": "X", "insee_code": new_insee()}).status_code
        == 401
    )


def test_agent_invitation_for_a_person_without_account(platform, admin):
    admin_client, admin_token = admin
    commune = admin_client.post(
        "/api/v1/admin/communes", token=admin_token, json={"name": "Invitville", "insee_code": new_insee()}
    ).json()
    invitee = platform.new_email("agent")
    invited = admin_client.post(
        f"/api/v1/admin/communes/{commune['id']}/agents", token=admin_token, json={"email": invitee}
    )
    assert invited.status_code == 201 and invited.json()["status"] == "invited"
    invitation = platform.mailbox.wait_for(invitee)[0]
    assert "Invitville" in invitation.get_body(preferencelist=("plain",)).get_content()
    client = platform.client()
    assert (
        client.post("/api/v1/accounts", json={"email": invitee, "password": "une phrase d'agent"}).status_code
        == 201
    )
    from tests.e2e.conftest import link_token

    verification = [
        m
        for m in platform.mailbox.wait_for(invitee, count=2)
        if "verify-email" in m.get_body(("plain",)).get_content()
    ][0]
    assert client.post("/api/v1/accounts/verify", json={"token": link_token(verification)}).status_code == 200
    import time

    deadline = time.monotonic() + 15
    while time.monotonic() < deadline:
        token = platform.login(client, invitee, "une phrase d'agent")["access_token"]
        if client.get(f"/api/v1/agent/communes/{commune['id']}/families", token=token).status_code == 200:
            break
        time.sleep(0.5)
    else:
        raise AssertionError("the invited agent never got the role")


def test_authorization_matrix_on_family_a(platform, admin):
    admin_client, admin_token = admin
    town_a = Town(platform, admin_client, admin_token, "Commune A")
    town_b = Town(platform, admin_client, admin_token, "Commune B")
    family = town_a.family("A-1", platform.new_email("famille"))
    child = town_a.child(family["id"], "Zoé")
    owner, _, owner_token = parent(platform)
    assert (
        owner.post(
            "/api/v1/adhesions", token=owner_token, json={"code": town_a.code(family["id"])["code"]}
        ).status_code
        == 201
    )

    other_parent, _, other_token = parent(platform)
    other_family = town_a.family("A-2", platform.new_email("famille"))
    other_parent.post(
        "/api/v1/adhesions", token=other_token, json={"code": town_a.code(other_family["id"])["code"]}
    )

    family_path = town_a.path(f"/families/{family['id']}")
    routes = [
        ("GET", town_a.path(), None),
        ("GET", town_a.path("/agents"), None),
        ("GET", town_a.path("/families"), None),
        ("POST", town_a.path("/families"), {"reference": "Z", "name": "Z", "email": "z@example.org"}),
        ("GET", family_path, None),
        ("PATCH", family_path, {"name": "Pirate"}),
        ("GET", family_path + "/children", None),
        (
            "POST",
            family_path + "/children",
            {"first_name": "X", "last_name": "Y", "birth_date": "2019-01-01"},
        ),
        ("POST", family_path + "/adhesion-codes", None),
        ("GET", town_a.path("/audit"), None),
        ("POST", f"/api/v1/admin/communes/{town_a.id}/agents", {"email": "pirate@example.org"}),
    ]
    callers = {
        "parent of another family": (other_parent, other_token),
        "agent of commune B": (town_b.agent_client, town_b.agent),
        "parent of family A itself": (owner, owner_token),
        "anonymous": (platform.client(), None),
    }
    for who, (client, token) in callers.items():
        for method, path, body in routes:
            response = client.request(method, path, token=token, json=body)
            assert response.status_code in (401, 403, 404), (who, method, path, response.status_code)
            assert "Zoé" not in response.text and "A-1" not in response.text, (who, method, path)
    # parents' own routes do not leak another commune's children
    assert other_parent.get(f"/api/v1/communes/{town_b.id}/children", token=other_token).status_code == 404
    assert (
        town_b.agent_client.get(f"/api/v1/communes/{town_a.id}/children", token=town_b.agent).status_code
        == 404
    )
    assert platform.client().get(f"/api/v1/communes/{town_a.id}/children").status_code == 401
    assert "Zoé" not in other_parent.get(f"/api/v1/communes/{town_a.id}/children", token=other_token).text
    # nothing was changed by the refused calls
    unchanged = town_a.agent_client.get(family_path, token=town_a.agent).json()
    assert unchanged["name"] == "Famille A-1" and [c["id"] for c in unchanged["children"]] == [child["id"]]


def test_guessing_codes_is_throttled(platform):
    client, _, token = parent(platform)
    codes = [
        client.post("/api/v1/adhesions", token=token, json={"code": f"ABCD-EFGH-{i:04d}"}).status_code
        for i in range(11)
    ]
    assert codes[:10] == [404] * 10
    assert codes[10] == 429
    last = client.post("/api/v1/adhesions", token=token, json={"code": "ZZZZ-ZZZZ-ZZZZ"})
    assert last.status_code == 429 and int(last.headers["Retry-After"]) > 0

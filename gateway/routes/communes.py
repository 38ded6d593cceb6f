"""Communes, agents, families, children, adhesion codes (contract of the communes issue). The
communes service decides who may do what; the gateway authenticates and shapes HTTP."""

from __future__ import annotations

import uuid

from werkzeug.wrappers import Request, Response

from gateway.errors import json_response
from gateway.openapi import route
from gateway.schemas import (
    AdhesionBody,
    AgentBody,
    ChildBody,
    CommuneBody,
    FamilyBody,
    FamilyPatchBody,
    load_body,
    plain,
)
from services.common.errors import NotFound

AGENT = "/api/v1/agent/communes/<commune_id>"
FAMILY = AGENT + "/families/<family_id>"
AGENT_ERRORS = {401: "UNAUTHENTICATED", 404: "NOT_FOUND (not an agent of this commune, or no such record)"}


def checked_id(value: str) -> str:
    """Path ids are UUIDs; anything else is a 404 without a trip to the database."""
    try:
        return str(uuid.UUID(value))
    except ValueError:
        raise NotFound() from None


class CommuneRoutes:
    # --- platform admin -------------------------------------------------------------------

    @route(
        "POST",
        "/api/v1/admin/communes",
        summary="Create a commune (admin)",
        tag="admin",
        auth=True,
        body=CommuneBody,
        responses={201: "Created", 400: "VALIDATION_ERROR", 403: "FORBIDDEN", 409: "INSEE_CODE_TAKEN"},
    )
    def create_commune(self, request: Request) -> Response:
        body = load_body(request, CommuneBody)
        self.authenticate(request)
        return json_response(201, self.communes.create_commune(**body))

    @route(
        "GET",
        "/api/v1/admin/communes",
        summary="List communes (admin)",
        tag="admin",
        auth=True,
        responses={200: "Communes", 403: "FORBIDDEN"},
    )
    def list_communes(self, request: Request) -> Response:
        self.authenticate(request)
        return json_response(200, self.communes.list_communes())

    @route(
        "POST",
        "/api/v1/admin/communes/<commune_id>/agents",
        summary="Make an account agent of a commune, or invite the address (admin)",
        tag="admin",
        auth=True,
        body=AgentBody,
        responses={201: "Granted or invited", 403: "FORBIDDEN", 404: "NOT_FOUND"},
    )
    def add_agent(self, request: Request, commune_id: str) -> Response:
        body = load_body(request, AgentBody)
        self.authenticate(request)
        return json_response(201, self.communes.add_agent(checked_id(commune_id), body["email"]))

    # --- agents of one commune ------------------------------------------------------------

    @route(
        "GET",
        AGENT,
        summary="The commune (its agents)",
        tag="agent",
        auth=True,
        responses={200: "Commune", **AGENT_ERRORS},
    )
    def get_commune(self, request: Request, commune_id: str) -> Response:
        self.authenticate(request)
        return json_response(200, self.communes.get_commune(checked_id(commune_id)))

    @route(
        "GET",
        AGENT + "/agents",
        summary="The commune's agents and invitations",
        tag="agent",
        auth=True,
        responses={200: "Agents", **AGENT_ERRORS},
    )
    def list_agents(self, request: Request, commune_id: str) -> Response:
        self.authenticate(request)
        return json_response(200, self.communes.list_agents(checked_id(commune_id)))

    @route(
        "POST",
        AGENT + "/families",
        summary="Record a family",
        tag="agent",
        auth=True,
        body=FamilyBody,
        responses={201: "Created", 400: "VALIDATION_ERROR", 409: "REFERENCE_TAKEN", **AGENT_ERRORS},
    )
    def create_family(self, request: Request, commune_id: str) -> Response:
        body = load_body(request, FamilyBody)
        self.authenticate(request)
        return json_response(201, self.communes.create_family(checked_id(commune_id), **body))

    @route(
        "GET",
        AGENT + "/families",
        summary="The commune's families",
        tag="agent",
        auth=True,
        responses={200: "Families", **AGENT_ERRORS},
    )
    def list_families(self, request: Request, commune_id: str) -> Response:
        self.authenticate(request)
        return json_response(200, self.communes.list_families(checked_id(commune_id)))

    @route(
        "GET",
        FAMILY,
        summary="A family, with its children",
        tag="agent",
        auth=True,
        responses={200: "Family", **AGENT_ERRORS},
    )
    def get_family(self, request: Request, commune_id: str, family_id: str) -> Response:
        self.authenticate(request)
        return json_response(200, self.communes.get_family(checked_id(commune_id), checked_id(family_id)))

    @route(
        "PATCH",
        FAMILY,
        summary="Change a family's fields",
        tag="agent",
        auth=True,
        body=FamilyPatchBody,
        responses={200: "Family", 400: "VALIDATION_ERROR", 409: "REFERENCE_TAKEN", **AGENT_ERRORS},
    )
    def update_family(self, request: Request, commune_id: str, family_id: str) -> Response:
        changes = load_body(request, FamilyPatchBody)
        self.authenticate(request)
        family = self.communes.update_family(checked_id(commune_id), checked_id(family_id), changes)
        return json_response(200, family)

    @route(
        "POST",
        FAMILY + "/children",
        summary="Add a child to a family",
        tag="agent",
        auth=True,
        body=ChildBody,
        responses={201: "Created", 400: "VALIDATION_ERROR", **AGENT_ERRORS},
    )
    def add_child(self, request: Request, commune_id: str, family_id: str) -> Response:
        body = plain(load_body(request, ChildBody))
        self.authenticate(request)
        child = self.communes.add_child(checked_id(commune_id), checked_id(family_id), **body)
        return json_response(201, child)

    @route(
        "GET",
        FAMILY + "/children",
        summary="A family's children",
        tag="agent",
        auth=True,
        responses={200: "Children", **AGENT_ERRORS},
    )
    def list_family_children(self, request: Request, commune_id: str, family_id: str) -> Response:
        self.authenticate(request)
        children = self.communes.list_children(checked_id(commune_id), checked_id(family_id))
        return json_response(200, children)

    @route(
        "POST",
        FAMILY + "/adhesion-codes",
        summary="Issue an adhesion code (shown once here, and emailed to the family)",
        tag="agent",
        auth=True,
        responses={201: "The code and its expiry", **AGENT_ERRORS},
    )
    def issue_adhesion_code(self, request: Request, commune_id: str, family_id: str) -> Response:
        self.authenticate(request)
        issued = self.communes.issue_adhesion_code(checked_id(commune_id), checked_id(family_id))
        return json_response(201, issued)

    @route(
        "GET",
        AGENT + "/audit",
        summary="Who read or changed families' data, and when",
        tag="agent",
        auth=True,
        responses={200: "Audit entries (newest first)", **AGENT_ERRORS},
    )
    def list_audit(self, request: Request, commune_id: str) -> Response:
        self.authenticate(request)
        return json_response(200, self.communes.list_audit(checked_id(commune_id)))

    # --- parents --------------------------------------------------------------------------

    @route(
        "POST",
        "/api/v1/adhesions",
        summary="Join a commune's family with an adhesion code",
        tag="parent",
        auth=True,
        body=AdhesionBody,
        responses={
            201: "Linked",
            404: "INVALID_CODE",
            409: "CODE_ALREADY_USED or ALREADY_LINKED",
            410: "CODE_EXPIRED",
            429: "TOO_MANY_ATTEMPTS (Retry-After header)",
        },
    )
    def redeem_adhesion_code(self, request: Request) -> Response:
        body = load_body(request, AdhesionBody)
        caller = self.authenticate(request)
        linked = self.communes.redeem_adhesion_code(body["code"])
        self.membership_cache.drop(caller.account_id)  # the event tells the other instances
        return json_response(201, linked)

    @route(
        "GET",
        "/api/v1/communes",
        summary="The communes this account is linked to",
        tag="parent",
        auth=True,
        responses={200: "Communes, each with the linked family", 401: "UNAUTHENTICATED"},
    )
    def my_communes(self, request: Request) -> Response:
        caller = self.authenticate(request)
        return json_response(200, self.memberships(caller.account_id))

    @route(
        "GET",
        "/api/v1/communes/<commune_id>/children",
        summary="The children of this account's family in a commune",
        tag="parent",
        auth=True,
        responses={200: "Children", 404: "NOT_FOUND (commune not linked to this account)"},
    )
    def my_children(self, request: Request, commune_id: str) -> Response:
        self.authenticate(request)
        return json_response(200, self.communes.list_my_children(checked_id(commune_id)))

"""Agents' booking routes (rosters, attendance, bookings on behalf of a family, cancellation
requests), the parent's calendar feed management, and the public `.ics` feed itself. The booking
service decides who may do what; the gateway authenticates and shapes HTTP."""

from __future__ import annotations

from werkzeug.wrappers import Request, Response

from gateway.booking_schemas import AttendanceBody, DecisionBody, OnBehalfBody, RequestsQuery, RosterQuery
from gateway.errors import SECURITY_HEADERS, json_response
from gateway.openapi import route
from gateway.routes.communes import AGENT, AGENT_ERRORS, checked_id
from gateway.schemas import load_body, load_query, plain
from services.common.errors import NotFound

REQUESTS = AGENT + "/cancellation-requests"
NOT_VISIBLE = {404: "NOT_FOUND (a child the caller may not see)"}


def file_response(body: str, mimetype: str, filename: str | None = None) -> Response:
    """A text download (UTF-8) with the security headers."""
    response = Response(body.encode("utf-8"), status=200, mimetype=mimetype)
    response.charset = "utf-8"
    response.headers["Content-Type"] = f"{mimetype}; charset=utf-8"
    for name, value in SECURITY_HEADERS.items():
        response.headers[name] = value
    if filename:
        response.headers["Content-Disposition"] = f'attachment; filename="{filename}"'
    return response


class BookingAgentRoutes:
    @route(
        "GET",
        AGENT + "/activities/<activity_id>/roster",
        summary="The day's roster: booked children, attendance, headcount, waiting list (JSON, or "
        "CSV with format=csv: UTF-8 with BOM, `;`)",
        tag="agent",
        auth=True,
        responses={200: "Roster", 400: "VALIDATION_ERROR", **AGENT_ERRORS},
    )
    def roster(self, request: Request, commune_id: str, activity_id: str) -> Response:
        query = plain(load_query(request, RosterQuery))
        self.authenticate(request)
        commune_id, activity_id = checked_id(commune_id), checked_id(activity_id)
        if query["format"] == "csv":
            text = self.booking.roster_csv(commune_id, activity_id, query["date"])
            return file_response(text, "text/csv", f"liste-{query['date']}.csv")
        return json_response(200, self.booking.roster(commune_id, activity_id, query["date"]))

    @route(
        "PUT",
        AGENT + "/attendance",
        summary="Mark a booked child present, absent or absent with justification (overwrites)",
        tag="agent",
        auth=True,
        body=AttendanceBody,
        responses={200: "Marked", 400: "VALIDATION_ERROR", 409: "NOT_BOOKED", **AGENT_ERRORS},
    )
    def mark_attendance(self, request: Request, commune_id: str) -> Response:
        body = plain(load_body(request, AttendanceBody))
        self.authenticate(request)
        marked = self.booking.mark_attendance(
            checked_id(commune_id),
            checked_id(body["activity_id"]),
            body["date"],
            checked_id(body["child_id"]),
            body["status"],
        )
        return json_response(200, marked)

    @route(
        "POST",
        AGENT + "/bookings",
        summary="Book days for a family (any day, deadlines and closures aside; capacity enforced)",
        tag="agent",
        auth=True,
        body=OnBehalfBody,
        responses={201: "Results per day", 400: "VALIDATION_ERROR", **AGENT_ERRORS},
    )
    def book_on_behalf(self, request: Request, commune_id: str) -> Response:
        body = plain(load_body(request, OnBehalfBody))
        self.authenticate(request)
        results = self.booking.book_on_behalf(
            checked_id(commune_id),
            checked_id(body["child_id"]),
            checked_id(body["activity_id"]),
            body["dates"],
        )
        return json_response(201, results)

    @route(
        "POST",
        AGENT + "/bookings/cancel",
        summary="Cancel days for a family, at once (any day)",
        tag="agent",
        auth=True,
        body=OnBehalfBody,
        responses={200: "Results per day", 400: "VALIDATION_ERROR", **AGENT_ERRORS},
    )
    def cancel_on_behalf(self, request: Request, commune_id: str) -> Response:
        body = plain(load_body(request, OnBehalfBody))
        self.authenticate(request)
        results = self.booking.cancel_on_behalf(
            checked_id(commune_id),
            checked_id(body["child_id"]),
            checked_id(body["activity_id"]),
            body["dates"],
        )
        return json_response(200, results)

    @route(
        "GET",
        REQUESTS,
        summary="Cancellation requests (status=pending by default; approved, rejected)",
        tag="agent",
        auth=True,
        responses={200: "Requests", 400: "VALIDATION_ERROR", **AGENT_ERRORS},
    )
    def cancellation_requests(self, request: Request, commune_id: str) -> Response:
        query = load_query(request, RequestsQuery)
        self.authenticate(request)
        return json_response(
            200, self.booking.list_cancellation_requests(checked_id(commune_id), query["status"])
        )

    @route(
        "POST",
        REQUESTS + "/<request_id>/approve",
        summary="Approve a cancellation: the place is freed (billing credits or refunds by the rule)",
        tag="agent",
        auth=True,
        responses={200: "Decided", 409: "ALREADY_DECIDED", **AGENT_ERRORS},
    )
    def approve_cancellation(self, request: Request, commune_id: str, request_id: str) -> Response:
        return self._decide(request, commune_id, request_id, "approve")

    @route(
        "POST",
        REQUESTS + "/<request_id>/reject",
        summary="Refuse a cancellation, with a reason for the parent: the booking stands",
        tag="agent",
        auth=True,
        body=DecisionBody,
        responses={200: "Decided", 400: "VALIDATION_ERROR", 409: "ALREADY_DECIDED", **AGENT_ERRORS},
    )
    def reject_cancellation(self, request: Request, commune_id: str, request_id: str) -> Response:
        return self._decide(request, commune_id, request_id, "reject")

    def _decide(self, request: Request, commune_id: str, request_id: str, decision: str) -> Response:
        reason = None
        if request.get_data(cache=True).strip():  # the body is optional
            reason = load_body(request, DecisionBody)["reason"]
        self.authenticate(request)
        decided = self.booking.decide_cancellation(
            checked_id(commune_id), checked_id(request_id), decision, reason
        )
        return json_response(200, decided)

    # --- parents: the child's private calendar feed -----------------------------------------

    @route(
        "POST",
        "/api/v1/children/<child_id>/calendar-feed",
        summary="A new private calendar (iCalendar) URL for the child; the previous one stops working",
        tag="parent",
        auth=True,
        responses={201: "URL", **NOT_VISIBLE},
    )
    def create_calendar_feed(self, request: Request, child_id: str) -> Response:
        self.authenticate(request)
        token = self.booking.create_calendar_feed(checked_id(child_id))["token"]
        return json_response(201, {"url": f"{self.public_url()}/calendar/{token}.ics"})

    @route(
        "DELETE",
        "/api/v1/children/<child_id>/calendar-feed",
        summary="Revoke the child's calendar URL",
        tag="parent",
        auth=True,
        responses={204: "Revoked", **NOT_VISIBLE},
    )
    def revoke_calendar_feed(self, request: Request, child_id: str) -> Response:
        self.authenticate(request)
        self.booking.revoke_calendar_feed(checked_id(child_id))
        return json_response(204, None)


class CalendarFeedRoutes:
    @route(
        "GET",
        "/calendar/<token>.ics",
        summary="A child's booked days (iCalendar); the secret URL is the only credential",
        tag="parent",
        responses={200: "text/calendar", 404: "NOT_FOUND (unknown or revoked)"},
    )
    def calendar_feed(self, request: Request, token: str) -> Response:
        if len(token) > 64:
            raise NotFound()
        self.anonymous(request)
        return file_response(self.booking.calendar_feed(token), "text/calendar")

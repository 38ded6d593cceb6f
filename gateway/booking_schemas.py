"""Request bodies and queries of the agents' booking routes and the calendar feed (marshmallow),
built with gateway/schemas.py's helpers (French messages, 400 naming the fields)."""

from __future__ import annotations

from marshmallow import fields

from gateway.schemas import _Body, length, one_of

ATTENDANCE_STATUSES = ["present", "absent", "absent_justified"]
REQUEST_STATUSES = ["pending", "approved", "rejected"]


class RosterQuery(_Body):
    date = fields.Date(required=True)
    format = fields.String(load_default="json", validate=one_of(["json", "csv"]))


class AttendanceBody(_Body):
    activity_id = fields.String(required=True, validate=length(min=1, max=64))
    date = fields.Date(required=True)
    child_id = fields.String(required=True, validate=length(min=1, max=64))
    status = fields.String(required=True, validate=one_of(ATTENDANCE_STATUSES))


class OnBehalfBody(_Body):
    child_id = fields.String(required=True, validate=length(min=1, max=64))
    activity_id = fields.String(required=True, validate=length(min=1, max=64))
    dates = fields.List(fields.Date(), required=True, validate=length(min=1, max=366))


class RequestsQuery(_Body):
    status = fields.String(load_default="pending", validate=one_of(REQUEST_STATUSES))


class DecisionBody(_Body):
    reason = fields.String(load_default=None, allow_none=True, validate=length(max=500))

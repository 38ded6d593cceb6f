"""Activities, the children's calendar, the cart and its validation (contract of the booking issue).
The booking service decides who may see or book what; the gateway authenticates and shapes HTTP."""

from __future__ import annotations

import logging
import uuid

from werkzeug.wrappers import Request, Response

from gateway import cart_billing
from gateway.errors import json_response
from gateway.openapi import route
from gateway.routes.communes import AGENT, AGENT_ERRORS, checked_id
from gateway.schemas import (
    ActivityBody,
    ActivityPatchBody,
    CartCancellationsBody,
    CartItemsBody,
    ClosureBody,
    DateRangeQuery,
    load_body,
    load_query,
    plain,
)
from services.common.errors import ServiceError, ValidationFailed
from services.common.rpc import ServiceRpc

ACTIVITY = AGENT + "/activities/<activity_id>"
NOT_VISIBLE = {404: "NOT_FOUND (a child, activity or commune the caller may not see)"}
MAX_IDEMPOTENCY_KEY = 200

log = logging.getLogger(__name__)


def idempotency_key(request: Request) -> str:
    """The client's `Idempotency-Key` (retries of one validation share it). Without one, each call
    is its own validation: safe, but a retried request may book what the first already booked."""
    key = (request.headers.get("Idempotency-Key") or "").strip()
    if len(key) > MAX_IDEMPOTENCY_KEY:
        raise ValidationFailed(
            "En-tête Idempotency-Key trop long.", {"fields": {"Idempotency-Key": ["Au plus 200 caractères."]}}
        )
    return key or f"auto-{uuid.uuid4()}"


VALIDATION_TIMEOUT_SECONDS = 60.0


class BookingRoutes:
    # A cart validation is idempotent (Idempotency-Key) and waits its turn for a day's lock at an
    # opening rush: a longer deadline than other calls, so parents get their answer, not a 504.
    booking_validation = ServiceRpc("booking", timeout=VALIDATION_TIMEOUT_SECONDS)
    # --- agents: activities and closures --------------------------------------------------

    @route(
        "POST",
        AGENT + "/activities",
        summary="Create an activity",
        tag="agent",
        auth=True,
        body=ActivityBody,
        responses={201: "Created", 400: "VALIDATION_ERROR", **AGENT_ERRORS},
    )
    def create_activity(self, request: Request, commune_id: str) -> Response:
        body = plain(load_body(request, ActivityBody))
        self.authenticate(request)
        return json_response(201, self.booking.create_activity(checked_id(commune_id), **body))

    @route(
        "GET",
        AGENT + "/activities",
        summary="The commune's activities",
        tag="agent",
        auth=True,
        responses={200: "Activities", **AGENT_ERRORS},
    )
    def agent_activities(self, request: Request, commune_id: str) -> Response:
        self.authenticate(request)
        return json_response(200, self.booking.list_activities(checked_id(commune_id)))

    @route(
        "GET",
        ACTIVITY,
        summary="An activity, with its closures",
        tag="agent",
        auth=True,
        responses={200: "Activity", **AGENT_ERRORS},
    )
    def get_activity(self, request: Request, commune_id: str, activity_id: str) -> Response:
        self.authenticate(request)
        return json_response(200, self.booking.get_activity(checked_id(commune_id), checked_id(activity_id)))

    @route(
        "PATCH",
        ACTIVITY,
        summary="Change an activity",
        tag="agent",
        auth=True,
        body=ActivityPatchBody,
        responses={200: "Activity", 400: "VALIDATION_ERROR", 409: "CAPACITY_BELOW_BOOKINGS", **AGENT_ERRORS},
    )
    def update_activity(self, request: Request, commune_id: str, activity_id: str) -> Response:
        changes = plain(load_body(request, ActivityPatchBody))
        self.authenticate(request)
        activity = self.booking.update_activity(checked_id(commune_id), checked_id(activity_id), changes)
        return json_response(200, activity)

    @route(
        "POST",
        ACTIVITY + "/closures",
        summary="Close days (holidays, strikes)",
        tag="agent",
        auth=True,
        body=ClosureBody,
        responses={201: "Created", 400: "VALIDATION_ERROR", **AGENT_ERRORS},
    )
    def add_closure(self, request: Request, commune_id: str, activity_id: str) -> Response:
        body = plain(load_body(request, ClosureBody))
        self.authenticate(request)
        closure = self.booking.add_closure(
            checked_id(commune_id), checked_id(activity_id), body["from"], body["to"], body["reason"]
        )
        return json_response(201, closure)

    # --- parents: activities, calendar, cart ---------------------------------------------

    @route(
        "GET",
        "/api/v1/communes/<commune_id>/activities",
        summary="A commune's activities",
        tag="parent",
        auth=True,
        responses={200: "Activities", **NOT_VISIBLE},
    )
    def commune_activities(self, request: Request, commune_id: str) -> Response:
        self.authenticate(request)
        return json_response(200, self.booking.list_activities(checked_id(commune_id)))

    @route(
        "GET",
        "/api/v1/children/<child_id>/calendar",
        summary="Each day of each activity the child may attend: state, places left, deadlines",
        tag="parent",
        auth=True,
        responses={200: "Days", 400: "VALIDATION_ERROR", **NOT_VISIBLE},
    )
    def calendar(self, request: Request, child_id: str) -> Response:
        span = plain(load_query(request, DateRangeQuery))
        self.authenticate(request)
        return json_response(200, self.booking.calendar(checked_id(child_id), span["from"], span["to"]))

    @route(
        "GET",
        "/api/v1/children/<child_id>/bookings",
        summary="The child's bookings",
        tag="parent",
        auth=True,
        responses={200: "Bookings", 400: "VALIDATION_ERROR", **NOT_VISIBLE},
    )
    def child_bookings(self, request: Request, child_id: str) -> Response:
        span = plain(load_query(request, DateRangeQuery))
        self.authenticate(request)
        bookings = self.booking.child_bookings(checked_id(child_id), span["from"], span["to"])
        return json_response(200, bookings)

    @route(
        "GET",
        "/api/v1/cart",
        summary="The cart, each item with its current state and price (prices null and "
        "prices_unavailable true if billing does not answer)",
        tag="cart",
        auth=True,
        responses={200: "Cart", 401: "UNAUTHENTICATED"},
    )
    def get_cart(self, request: Request) -> Response:
        self.authenticate(request)
        cart = self.booking.get_cart()
        if not cart.get("items"):
            return json_response(200, cart_billing.empty_cart_prices(cart))
        try:
            quote = self.billing.quote(cart["items"])
        except ServiceError as exc:  # prices are a courtesy: the cart itself is booking's
            log.warning("cart shown without prices: billing answered %s", exc.code)
            return json_response(200, cart_billing.unpriced_cart(cart))
        return json_response(200, cart_billing.priced_cart(cart, quote))

    @route(
        "POST",
        "/api/v1/cart/items",
        summary="Add days to book: dates, or a period expanded to dates",
        tag="cart",
        auth=True,
        body=CartItemsBody,
        responses={201: "Items added", 400: "VALIDATION_ERROR", **NOT_VISIBLE},
    )
    def add_cart_items(self, request: Request) -> Response:
        body = plain(load_body(request, CartItemsBody))
        if ("dates" in body) == ("period" in body):
            raise ValidationFailed(
                "Indiquez soit des dates, soit une période.",
                {"fields": {"dates": ["Soit « dates », soit « period »."]}},
            )
        self.authenticate(request)
        added = self.booking.add_cart_items(
            checked_id(body["child_id"]),
            checked_id(body["activity_id"]),
            dates=body.get("dates"),
            period=body.get("period"),
        )
        return json_response(201, added)

    @route(
        "POST",
        "/api/v1/cart/cancellations",
        summary="Add booked days to cancel",
        tag="cart",
        auth=True,
        body=CartCancellationsBody,
        responses={201: "Items added", 400: "VALIDATION_ERROR", **NOT_VISIBLE},
    )
    def add_cart_cancellations(self, request: Request) -> Response:
        body = plain(load_body(request, CartCancellationsBody))
        self.authenticate(request)
        added = self.booking.add_cart_cancellations(
            checked_id(body["child_id"]), checked_id(body["activity_id"]), body["dates"]
        )
        return json_response(201, added)

    @route(
        "DELETE",
        "/api/v1/cart/items/<item_id>",
        summary="Remove an item from the cart",
        tag="cart",
        auth=True,
        responses={204: "Removed", **NOT_VISIBLE},
    )
    def remove_cart_item(self, request: Request, item_id: str) -> Response:
        self.authenticate(request)
        self.booking.remove_cart_item(checked_id(item_id))
        return json_response(204, None)

    @route(
        "POST",
        "/api/v1/cart/validate",
        summary="Validate the cart: one outcome per day, and the payment of the days held for payment "
        "(send an Idempotency-Key header: a replay returns the first answer, books nothing twice, and "
        "retries the payment after a payment_error)",
        tag="cart",
        auth=True,
        responses={200: "Results", 409: "CART_EMPTY", 422: "IDEMPOTENCY_KEY_REUSED (another cart)"},
    )
    def validate_cart(self, request: Request) -> Response:
        key = idempotency_key(request)
        self.authenticate(request)
        validation = self.booking_validation.validate_cart(key)
        holds = cart_billing.holds(validation.get("results") or [])
        if not holds:
            return json_response(200, cart_billing.with_payments(validation, []))
        # the places are held whatever billing answers: never a 5xx here, the client replays the key
        try:
            payments = self.billing.create_payment(key, holds)["payments"]
        except ServiceError as exc:
            log.warning("validation without payment: billing answered %s", exc.code)
            code = exc.code if exc.status < 500 else cart_billing.BILLING_UNAVAILABLE
            return json_response(200, cart_billing.with_payment_error(validation, code))
        except Exception:  # noqa: BLE001 - an unexpected billing fault must not hide held places
            log.exception("validation without payment: unexpected billing error")
            return json_response(200, cart_billing.with_payment_error(validation))
        return json_response(200, cart_billing.with_payments(validation, payments))

"""Accounts, login and password routes (contract of the foundation issue)."""

from __future__ import annotations

import eventlet
from werkzeug.wrappers import Request, Response

from gateway.errors import json_response
from gateway.openapi import route
from gateway.schemas import EmailBody, LoginBody, RefreshBody, RegisterBody, ResetBody, VerifyBody, load_body

TOKENS_SCHEMA = {
    "type": "object",
    "properties": {
        "access_token": {"type": "string"},
        "refresh_token": {"type": "string"},
        "token_type": {"type": "string", "enum": ["Bearer"]},
        "expires_in": {"type": "integer"},
    },
}


class AccountRoutes:
    @route(
        "POST",
        "/api/v1/accounts",
        summary="Create an account (a verification email is sent)",
        tag="accounts",
        body=RegisterBody,
        responses={
            201: "Account created",
            400: "VALIDATION_ERROR, INVALID_JSON or WEAK_PASSWORD",
            409: "EMAIL_TAKEN",
        },
        response_schema={
            "type": "object",
            "properties": {"id": {"type": "string"}, "email": {"type": "string"}},
        },
    )
    def register(self, request: Request) -> Response:
        body = load_body(request, RegisterBody)
        self.anonymous(request)
        account = self.identity.register(body["email"], body["password"], body["locale"])
        return json_response(201, {"id": account["id"], "email": account["email"]})

    @route(
        "POST",
        "/api/v1/accounts/verify",
        summary="Confirm an email address with the emailed token",
        tag="accounts",
        body=VerifyBody,
        responses={200: "Email verified", 400: "INVALID_TOKEN"},
    )
    def verify_email(self, request: Request) -> Response:
        body = load_body(request, VerifyBody)
        self.anonymous(request)
        account = self.identity.verify_email(body["token"])
        return json_response(200, {"id": account["id"], "email_verified": True})

    @route(
        "POST",
        "/api/v1/accounts/verify/resend",
        summary="Send the verification email again",
        tag="accounts",
        body=EmailBody,
        responses={202: "Accepted (whether or not the account exists)"},
    )
    def resend_verification(self, request: Request) -> Response:
        body = load_body(request, EmailBody)
        self.anonymous(request)
        self.identity.resend_verification(body["email"])
        return json_response(202, {"status": "accepted"})

    @route(
        "POST",
        "/api/v1/auth/login",
        summary="Log in: access and refresh tokens",
        tag="auth",
        body=LoginBody,
        response_schema=TOKENS_SCHEMA,
        responses={
            200: "Tokens",
            401: "INVALID_CREDENTIALS",
            403: "EMAIL_NOT_VERIFIED",
            429: "TOO_MANY_ATTEMPTS (Retry-After header)",
        },
    )
    def login(self, request: Request) -> Response:
        body = load_body(request, LoginBody)
        self.anonymous(request)
        return json_response(200, self.identity.login(body["email"], body["password"]))

    @route(
        "POST",
        "/api/v1/auth/refresh",
        summary="Rotate the refresh token",
        tag="auth",
        body=RefreshBody,
        response_schema=TOKENS_SCHEMA,
        responses={200: "New tokens", 401: "INVALID_REFRESH_TOKEN (a reused token revokes its session)"},
    )
    def refresh(self, request: Request) -> Response:
        body = load_body(request, RefreshBody)
        self.anonymous(request)
        return json_response(200, self.identity.refresh(body["refresh_token"]))

    @route(
        "POST",
        "/api/v1/auth/logout",
        summary="Log out: revoke this session",
        tag="auth",
        auth=True,
        responses={
            204: "Logged out (the access token is refused at once)",
            401: "UNAUTHENTICATED, INVALID_TOKEN or SESSION_REVOKED",
        },
    )
    def logout(self, request: Request) -> Response:
        caller = self.authenticate(request)
        self.identity.logout()
        # refused at once by this instance; the others hear identity's session_revoked event
        self.revocations.revoke_now(caller.session_id)
        return json_response(204, None)

    @route(
        "POST",
        "/api/v1/password/forgot",
        summary="Ask for a password reset email",
        tag="auth",
        body=EmailBody,
        responses={202: "Accepted (whether or not the account exists)"},
    )
    def forgot_password(self, request: Request) -> Response:
        body = load_body(request, EmailBody)
        self.anonymous(request)
        self.identity.request_password_reset(body["email"])
        return json_response(202, {"status": "accepted"})

    @route(
        "POST",
        "/api/v1/password/reset",
        summary="Set a new password with the emailed token",
        tag="auth",
        body=ResetBody,
        responses={200: "Password changed; every session is revoked", 400: "INVALID_TOKEN or WEAK_PASSWORD"},
    )
    def reset_password(self, request: Request) -> Response:
        body = load_body(request, ResetBody)
        self.anonymous(request)
        self.identity.reset_password(body["token"], body["password"])
        return json_response(200, {"status": "password_changed"})

    @route(
        "GET",
        "/api/v1/me",
        summary="The logged-in account",
        tag="accounts",
        auth=True,
        responses={200: "The account", 401: "UNAUTHENTICATED, INVALID_TOKEN or SESSION_REVOKED"},
        response_schema={
            "type": "object",
            "properties": {
                "id": {"type": "string"},
                "email": {"type": "string"},
                "locale": {"type": "string"},
                "roles": {"type": "array", "items": {"type": "string"}},
                "agent_communes": {"type": "array", "items": {"type": "string"}},
                "communes": {"type": "array", "items": {"type": "object"}},
            },
        },
    )
    def me(self, request: Request) -> Response:
        caller = self.authenticate(request)
        memberships = eventlet.spawn(self.memberships, caller.account_id)  # both at once
        try:
            account = self.identity.whoami()
        except BaseException:
            memberships.kill()
            raise
        account["communes"] = memberships.wait()
        return json_response(200, account)

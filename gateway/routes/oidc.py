"""The OpenID Connect provider's endpoints: forwarded as they are to identity, which owns the
protocol (Authlib), the login page and the SSO session cookie."""

from __future__ import annotations

from typing import Any

from werkzeug.wrappers import Request, Response

from gateway.errors import PayloadTooLarge
from gateway.openapi import route
from gateway.schemas import MAX_BODY_BYTES

FORWARDED_HEADERS = ("cookie", "authorization", "content-type", "origin", "accept-language")


class OidcRoutes:
    @route(
        "GET",
        "/.well-known/openid-configuration",
        summary="OpenID Connect discovery",
        tag="oidc",
    )
    def oidc_discovery(self, request: Request) -> Response:
        return self._forward_oidc(request)

    @route(
        "GET,POST,OPTIONS",
        "/oidc/<path:endpoint>",
        summary="OpenID Connect provider: authorize, login, token, userinfo, jwks, logout",
        tag="oidc",
        responses={200: "OK", 302: "Redirect", 400: "Protocol error"},
    )
    def oidc_endpoint(self, request: Request, endpoint: str) -> Response:
        return self._forward_oidc(request)

    def _forward_oidc(self, request: Request) -> Response:
        if request.content_length and request.content_length > MAX_BODY_BYTES:
            raise PayloadTooLarge()
        self.anonymous(request)
        forwarded: dict[str, Any] = {
            "method": request.method,
            "path": request.path,
            "query": request.args.to_dict(flat=True),
            "form": request.form.to_dict(flat=True) if request.method == "POST" else {},
            "headers": {name: request.headers.get(name) for name in FORWARDED_HEADERS},
            "client_ip": self.client_ip(request),
        }
        answer = self.identity.oidc_http(forwarded)
        response = Response(answer.get("body", ""), status=int(answer.get("status", 200)))
        for name, value in answer.get("headers", []):
            if name.lower() == "content-type":
                response.headers["Content-Type"] = value
            else:
                response.headers.add(name, value)
        return response

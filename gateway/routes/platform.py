"""Health, readiness, the OpenAPI document, and the benchmark's echo (off unless enabled)."""

from __future__ import annotations

import eventlet
from werkzeug.wrappers import Request, Response

from gateway.errors import ServiceError, json_response
from gateway.openapi import document, route
from services.common.rpc import DeadlineProxy

READY_TIMEOUT = 2.0
BACKENDS = "identity,notify,communes,booking,billing"  # when READY_SERVICES is not configured


class PlatformRoutes:
    @route("GET", "/health", summary="Liveness: the gateway process answers", tag="platform")
    def health(self, request: Request) -> Response:
        return json_response(200, {"status": "ok"})

    @route(
        "GET",
        "/ready",
        summary="Readiness: the broker and every service's database answer",
        tag="platform",
        responses={200: "Ready", 503: "Not ready (per-service detail)"},
    )
    def ready(self, request: Request) -> Response:
        services = [s.strip() for s in str(self.setting("READY_SERVICES", BACKENDS)).split(",") if s]
        pool = eventlet.GreenPool()
        results = dict(zip(services, pool.imap(self._check_service, services), strict=True))
        ok = all(status == "ok" for status in results.values())
        return json_response(
            200 if ok else 503, {"status": "ready" if ok else "not_ready", "services": results}
        )

    def _check_service(self, service: str) -> str:
        proxy = getattr(self, service, None)  # each backend is a ServiceRpc named after it (base.py)
        if not isinstance(proxy, DeadlineProxy):
            return "unknown"
        try:
            with eventlet.Timeout(READY_TIMEOUT):
                proxy.health()
            return "ok"
        except eventlet.Timeout:
            return "timeout"
        except ServiceError as exc:
            return exc.code.lower()
        except Exception:  # noqa: BLE001 - readiness reports, it does not raise
            return "error"

    @route(
        "GET",
        "/api/v1/source",
        summary="Where to get this software's source (AGPL-3.0-or-later §13)",
        tag="platform",
    )
    def source(self, request: Request) -> Response:
        return json_response(
            200,
            {
                "licence": "AGPL-3.0-or-later",
                "source": self.setting("SOURCE_URL", None),
                "message": "Ce logiciel est libre : son code source est disponible à cette adresse.",
            },
        )

    @route("GET", "/api/v1/openapi.json", summary="This document", tag="platform")
    def openapi(self, request: Request) -> Response:
        response = json_response(200, document(self.public_url()))
        response.headers["Cache-Control"] = "public, max-age=300"
        return response

    @route(
        "GET", "/api/v1/_bench/echo", summary="HTTP→RPC echo (benchmark floor)", tag="platform", hidden=True
    )
    def bench_echo(self, request: Request) -> Response:
        if str(self.setting("BENCH_ECHO_ENABLED", "false")).lower() not in ("1", "true", "yes"):
            return json_response(404, {"error": "NOT_FOUND", "message": "Cette adresse n'existe pas."})
        return json_response(200, {"echo": self.identity.echo("ping")})

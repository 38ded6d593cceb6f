"""nameko's HTTP entrypoint, made to speak JSON: unknown routes, wrong methods, expected and
unexpected errors all become `{"error", "message"}` bodies; nothing leaks a stack trace."""

from __future__ import annotations

import logging
import time
from typing import Any

from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, WsgiApp
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from gateway.errors import SECURITY_HEADERS, error_response
from services.common.errors import ServiceError


class LoggedWsgiApp(WsgiApp):
    """nameko's WSGI app with one access-log line per request (method, route, status, time: paths
    carry ids, never names, emails, codes or query strings) and `on_http_error` turning werkzeug's
    HTTP errors (no route, wrong method) into this server's own answer (JSON or a page)."""

    access_log = logging.getLogger("gateway.access")

    def on_http_error(self, exc: HTTPException) -> Response:
        return error_response(exc)

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        started = time.monotonic()
        request = Request(environ, shallow=True)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            provider, values = adapter.match()
            request.path_values = values
            response = provider.handle_request(request)
        except HTTPException as exc:
            response = self.on_http_error(exc)
        self.access_log.info(
            "%s %s %s %.1fms",
            request.method,
            request.path,
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return response(environ, start_response)


class JsonWsgiApp(LoggedWsgiApp):
    pass


class JsonWebServer(WebServer):
    def get_wsgi_app(self) -> JsonWsgiApp:
        return JsonWsgiApp(self)


class JsonHttpEntrypoint(HttpRequestHandler):
    server = JsonWebServer()

    def __init__(self, method: str, url: str, **kwargs: Any) -> None:
        kwargs.setdefault("expected_exceptions", (ServiceError,))
        super().__init__(method, url, **kwargs)

    def response_from_result(self, result: Any) -> Response:
        response = super().response_from_result(result)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    def response_from_exception(self, exc: BaseException) -> Response:
        return error_response(exc)


api = JsonHttpEntrypoint.decorator

"""nameko's HTTP entrypoint speaking HTML: unknown routes, wrong methods and unexpected errors become
French pages; nothing leaks a stack trace. The access log has method, path and status only."""

from __future__ import annotations

import logging
import time
from typing import Any

from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer, WsgiApp
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Request, Response

from gateway.errors import SECURITY_HEADERS
from invoices_site.pages import message_page

access_log = logging.getLogger("invoices_site.access")
log = logging.getLogger(__name__)

TITLES = {
    404: ("Page introuvable", "Cette adresse n'existe pas."),
    405: ("Action impossible", "Cette action n'est pas possible à cette adresse."),
}
INTERNAL = ("Erreur", "Une erreur inattendue s'est produite. Réessayez plus tard.")


def error_page(exc: BaseException) -> Response:
    if isinstance(exc, HTTPException) and exc.code is not None and exc.code < 400:
        return exc.get_response()  # werkzeug's redirect to the canonical URL (trailing slash)
    if isinstance(exc, HTTPException):
        title, message = TITLES.get(exc.code or 500, INTERNAL)
        return message_page(exc.code or 500, title, message)
    log.error("unexpected error in the invoices site", exc_info=exc)
    return message_page(500, *INTERNAL)


class HtmlWsgiApp(WsgiApp):
    def __call__(self, environ: dict[str, Any], start_response: Any) -> Any:
        started = time.monotonic()
        request = Request(environ, shallow=True)
        adapter = self.url_map.bind_to_environ(environ)
        try:
            provider, values = adapter.match()
            request.path_values = values
            response = provider.handle_request(request)
        except HTTPException as exc:
            response = error_page(exc)
        # method, route and status only: no query strings (codes, states), never addresses
        access_log.info(
            "%s %s %s %.1fms",
            request.method,
            request.path,
            response.status_code,
            (time.monotonic() - started) * 1000,
        )
        return response(environ, start_response)


class HtmlWebServer(WebServer):
    def get_wsgi_app(self) -> HtmlWsgiApp:
        return HtmlWsgiApp(self)


class HtmlHttpEntrypoint(HttpRequestHandler):
    server = HtmlWebServer()

    def response_from_result(self, result: Any) -> Response:
        response = super().response_from_result(result)
        for name, value in SECURITY_HEADERS.items():
            response.headers.setdefault(name, value)
        return response

    def response_from_exception(self, exc: BaseException) -> Response:
        return error_page(exc)


page = HtmlHttpEntrypoint.decorator

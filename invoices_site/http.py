"""nameko's HTTP entrypoint speaking HTML: unknown routes, wrong methods and unexpected errors become
French pages; nothing leaks a stack trace. The access log has method, path and status only."""

from __future__ import annotations

import logging
from typing import Any

from nameko.web.handlers import HttpRequestHandler
from nameko.web.server import WebServer
from werkzeug.exceptions import HTTPException
from werkzeug.wrappers import Response

from gateway.errors import SECURITY_HEADERS
from gateway.http import LoggedWsgiApp
from invoices_site.pages import message_page

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


class HtmlWsgiApp(LoggedWsgiApp):
    access_log = logging.getLogger("invoices_site.access")

    def on_http_error(self, exc: HTTPException) -> Response:
        return error_page(exc)


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

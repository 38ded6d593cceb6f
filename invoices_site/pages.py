"""HTML pages: Jinja2 templates with autoescaping on, French, and the headers every page carries."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from jinja2 import Environment, FileSystemLoader, select_autoescape
from werkzeug.wrappers import Response

from gateway.errors import SECURITY_HEADERS
from invoices_site.formatting import FILTERS

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parent / "templates"),
    autoescape=select_autoescape(["html"]),
)
_templates.filters.update(FILTERS)

# no form-action: Chrome applies it to the redirects that follow a form (sign-out goes on to the
# provider, "Payer" to the payment provider's page), and default-src does not cover it
PAGE_HEADERS = {
    **SECURITY_HEADERS,
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; img-src 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
}


def render(template: str, status: int = 200, **context: Any) -> Response:
    html = _templates.get_template(template).render(**context)
    response = Response(html, status=status, mimetype="text/html")
    response.headers.update(PAGE_HEADERS)
    return response


def message_page(status: int, title: str, message: str, error: bool = True, **context: Any) -> Response:
    return render("message.html", status, title=title, message=message, error=error, **context)


def redirect(location: str, status: int = 302) -> Response:
    response = Response("", status=status)
    response.headers["Location"] = location
    response.headers.update(SECURITY_HEADERS)
    return response

"""The two pages that emailed links open: confirm an email address, choose a new password. Plain
HTML forms (no JavaScript), French; a GET never spends a token (mail scanners follow links)."""

from __future__ import annotations

from pathlib import Path

from jinja2 import Environment, FileSystemLoader, select_autoescape
from werkzeug.wrappers import Request, Response

from gateway.openapi import route
from services.common.errors import ServiceError

_templates = Environment(
    loader=FileSystemLoader(Path(__file__).resolve().parents[1] / "templates"),
    autoescape=select_autoescape(["html"]),
)

PAGE_HEADERS = {
    "Content-Security-Policy": "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; "
    "frame-ancestors 'none'; base-uri 'none'",
    "X-Frame-Options": "DENY",
    "Cache-Control": "no-store",
    "Referrer-Policy": "no-referrer",
}


def page(status: int = 200, **context: object) -> Response:
    html = _templates.get_template("page.html").render(**context)
    response = Response(html, status=status, mimetype="text/html")
    response.headers.update(PAGE_HEADERS)
    return response


def _token(request: Request) -> str:
    source = request.form if request.method == "POST" else request.args
    token = source.get("token", "")
    return token if 0 < len(token) <= 200 else ""


class PageRoutes:
    @route("GET,POST", "/account/verify-email", summary="Page opened by the verification link", tag="pages")
    def verify_email_page(self, request: Request) -> Response:
        token = _token(request)
        title = "Confirmation de votre adresse e-mail"
        if not token:
            return page(400, title=title, error=True, message="Ce lien n'est pas valide.")
        if request.method == "GET":
            return page(title=title, form="verify", token=token)
        self.anonymous(request)
        try:
            self.identity.verify_email(token)
        except ServiceError as exc:
            return page(exc.status, title=title, error=True, message=exc.message)
        return page(title=title, message="Votre adresse est confirmée. Vous pouvez vous connecter.")

    @route("GET,POST", "/account/reset-password", summary="Page opened by the reset link", tag="pages")
    def reset_password_page(self, request: Request) -> Response:
        token = _token(request)
        title = "Nouveau mot de passe"
        if not token:
            return page(400, title=title, error=True, message="Ce lien n'est pas valide.")
        if request.method == "GET":
            return page(title=title, form="reset", token=token)
        password = request.form.get("password", "")
        if password != request.form.get("confirm", ""):
            return page(
                400,
                title=title,
                form="reset",
                token=token,
                error=True,
                message="Les deux mots de passe ne sont pas identiques.",
            )
        self.anonymous(request)
        try:
            self.identity.reset_password(token, password)
        except ServiceError as exc:
            form = "reset" if exc.code == "WEAK_PASSWORD" else None
            return page(exc.status, title=title, form=form, token=token, error=True, message=exc.message)
        return page(title=title, message="Votre mot de passe a été changé. Vous pouvez vous connecter.")

"""What each page does. `Site` holds the settings, the HTTP session to the gateway, the provider's
cached metadata and the cookie keys; the nameko service (service.py) only routes to it, so the whole
site runs in unit tests against a stand-in gateway without a broker."""

from __future__ import annotations

import logging
import re
import secrets
from collections.abc import Callable
from typing import Any
from urllib.parse import quote, urlencode, urlsplit, urlunsplit

import requests
from werkzeug.wrappers import Request, Response

from gateway.auth import token_kid
from invoices_site import oidc_client
from invoices_site.api import ApiError, InvoiceApi, NeedsLogin, valid_id
from invoices_site.formatting import remaining_cents
from invoices_site.oidc_client import IdTokenInvalid, LoginRequest
from invoices_site.pages import message_page, redirect, render
from invoices_site.provider import ProviderClient, ProviderUnavailable, TokenRefused
from invoices_site.session import (
    LOGIN_COOKIE,
    LOGIN_MAX_AGE,
    SESSION_COOKIE,
    CookieBox,
    SignedIn,
    csrf_matches,
)
from invoices_site.settings import SiteSettings, url_origin

log = logging.getLogger(__name__)

KEY_PATTERN = re.compile(r"^[A-Za-z0-9_-]{16,100}$")
UNAVAILABLE = "La connexion au portail est momentanément impossible. Réessayez dans quelques minutes."
RETRY = {"action_url": "/auth/login", "action_label": "Se connecter"}


class Site:
    def __init__(self, settings: SiteSettings, http: requests.Session | None = None) -> None:
        self.settings = settings
        self.http = http or requests.Session()
        self.provider = ProviderClient(settings, self.http)
        self.sessions = CookieBox(settings.session_secret, "invoices-site session", settings.session_max_age)
        self.logins = CookieBox(settings.session_secret, "invoices-site login", LOGIN_MAX_AGE)

    # --- helpers ----------------------------------------------------------------------------

    def user(self, request: Request) -> SignedIn | None:
        return SignedIn.from_dict(self.sessions.open(request.cookies.get(SESSION_COOKIE)))

    def api(self, user: SignedIn) -> InvoiceApi:
        return InvoiceApi(self.settings, self.http, user.access_token)

    def render(self, template: str, status: int = 200, **context: Any) -> Response:
        return render(template, status, source_url=self.settings.source_url, **context)

    def message(self, status: int, title: str, message: str, **context: Any) -> Response:
        return message_page(status, title, message, source_url=self.settings.source_url, **context)

    def set_cookie(self, response: Response, name: str, value: str, max_age: int, path: str = "/") -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path=path,
            httponly=True,
            secure=self.settings.secure_cookies,
            samesite="Lax",
        )

    def clear_cookie(self, response: Response, name: str, path: str = "/") -> None:
        response.delete_cookie(
            name, path=path, httponly=True, secure=self.settings.secure_cookies, samesite="Lax"
        )

    def start_login(self, next_path: object = "/") -> Response:
        """Send the browser to the provider: its login form, or straight back with a code when its
        single sign-on session is alive (no password asked)."""
        try:
            endpoint = self.provider.discovery()["authorization_endpoint"]
        except ProviderUnavailable as exc:
            log.warning("provider unavailable at sign-in: %s", exc)
            return self.message(503, "Connexion impossible", UNAVAILABLE, error=True, **RETRY)
        login = oidc_client.new_login_request(next_path)
        url = oidc_client.authorization_url(
            endpoint, self.settings.client_id, self.settings.redirect_uri, login
        )
        response = redirect(url)
        self.set_cookie(response, LOGIN_COOKIE, self.logins.seal(login.as_dict()), LOGIN_MAX_AGE, "/auth")
        return response

    def signed_in(self, request: Request, next_path: str) -> SignedIn | Response:
        """The parent with a usable access token, or the redirect that gets one."""
        user = self.user(request)
        if user is None or user.access_expired():
            return self.start_login(next_path)
        return user

    def api_error(self, exc: ApiError, user: SignedIn, title: str = "Mes factures") -> Response:
        return self.message(exc.status, title, exc.message, error=True, user=user)

    # --- pages ------------------------------------------------------------------------------

    def home(self, request: Request) -> Response:
        if self.user(request) is None and request.args.get("state") == "out":
            return self.message(
                200,
                "Vous êtes déconnecté",
                "Vous êtes déconnecté du portail et de ce site.",
                error=False,
                **RETRY,
            )
        user = self.signed_in(request, "/")
        if isinstance(user, Response):
            return user
        try:
            invoices = self.api(user).list_invoices()
        except NeedsLogin:
            return self.start_login("/")
        except ApiError as exc:
            return self.api_error(exc, user)
        return self.render("invoices.html", title="Mes factures", invoices=invoices, user=user)

    def login(self, request: Request) -> Response:
        return self.start_login(request.args.get("next", "/"))

    def callback(self, request: Request) -> Response:
        title = "Connexion"
        data = self.logins.open(request.cookies.get(LOGIN_COOKIE))
        login = LoginRequest.from_dict(data) if data else None
        if login is None:
            return self.message(
                400, title, "Votre demande de connexion a expiré. Recommencez, s'il vous plaît.", **RETRY
            )
        if not csrf_matches(login.state, request.args.get("state")):
            return self.message(400, title, "Cette réponse de connexion n'est pas valide.", **RETRY)
        if request.args.get("error") or not request.args.get("code"):
            log.info("sign-in refused by the provider: %s", str(request.args.get("error"))[:40])
            return self.message(400, title, "La connexion n'a pas abouti.", **RETRY)
        form = oidc_client.token_request(
            request.args["code"], login, self.settings.client_id, self.settings.redirect_uri
        )
        try:
            tokens = self.provider.exchange(form)
            claims = oidc_client.check_id_token(
                tokens["id_token"],
                self.provider.key_set(token_kid(tokens["id_token"])),
                self.settings.issuer,
                self.settings.client_id,
                login.nonce,
            )
        except TokenRefused as exc:
            log.info("authorization code refused: %s", exc)
            return self.message(400, title, "La connexion n'a pas abouti.", **RETRY)
        except IdTokenInvalid as exc:
            log.warning("id token refused: %s", exc)
            return self.message(400, title, "La connexion n'a pas pu être vérifiée.", **RETRY)
        except ProviderUnavailable as exc:
            log.warning("provider unavailable at the callback: %s", exc)
            return self.message(503, title, UNAVAILABLE, **RETRY)
        user = SignedIn.start(tokens, claims)
        response = redirect(login.next_path, 303)
        self.set_cookie(
            response, SESSION_COOKIE, self.sessions.seal(user.as_dict()), self.settings.session_max_age
        )
        self.clear_cookie(response, LOGIN_COOKIE, "/auth")
        return response

    def logout(self, request: Request) -> Response:
        user = self.user(request)
        if user is not None and not csrf_matches(user.csrf, request.form.get("csrf_token")):
            return self.message(400, "Déconnexion", "Ce formulaire a expiré. Rechargez la page.", user=user)
        try:
            endpoint = self.provider.discovery()["end_session_endpoint"]
            response = redirect(
                oidc_client.logout_url(
                    endpoint,
                    user.id_token if user else None,
                    self.settings.post_logout_redirect_uri,
                    self.settings.client_id,
                ),
                303,
            )
        except ProviderUnavailable as exc:
            log.warning("provider unavailable at sign-out: %s", exc)
            response = self.message(
                200, "Déconnexion", "Vous êtes déconnecté de ce site.", error=False, **RETRY
            )
        self.clear_cookie(response, SESSION_COOKIE)
        return response

    def from_invoice_api(
        self, request: Request, invoice_id: str, call: Callable[[InvoiceApi], Any]
    ) -> tuple[SignedIn, Any] | Response:
        """(the parent, `call(api)`'s answer) for an invoice page, or the response that replaces the
        page: 404 for an id that cannot be one, the sign-in (back to the invoice afterwards), or the
        API's error as a French page."""
        if not valid_id(invoice_id):
            return self.message(404, "Facture", "Cette facture est introuvable.")
        page = f"/factures/{quote(invoice_id)}"
        user = self.signed_in(request, page)
        if isinstance(user, Response):
            return user
        try:
            return user, call(self.api(user))
        except NeedsLogin:
            return self.start_login(page)
        except ApiError as exc:
            return self.api_error(exc, user, "Facture")

    def invoice(self, request: Request, invoice_id: str) -> Response:
        found = self.from_invoice_api(request, invoice_id, lambda api: api.get_invoice(invoice_id))
        if isinstance(found, Response):
            return found
        return self.invoice_page(*found)

    def invoice_page(
        self, user: SignedIn, invoice: dict[str, Any], status: int = 200, **context: Any
    ) -> Response:
        return self.render(
            "invoice.html",
            status,
            title=f"Facture n° {invoice.get('number', '')}",
            invoice=invoice,
            remaining=remaining_cents(invoice),
            payment_key=secrets.token_urlsafe(18),
            user=user,
            **context,
        )

    def pdf(self, request: Request, invoice_id: str) -> Response:
        found = self.from_invoice_api(request, invoice_id, lambda api: api.open_pdf(invoice_id))
        if isinstance(found, Response):
            return found
        upstream = found[1]
        response = Response(
            upstream.iter_content(64 * 1024), mimetype="application/pdf", direct_passthrough=True
        )
        length = upstream.headers.get("Content-Length", "")
        if length.isdigit():
            response.headers["Content-Length"] = length
        response.headers["Content-Disposition"] = f'attachment; filename="facture-{invoice_id}.pdf"'
        response.headers["Cache-Control"] = "no-store"
        response.headers["X-Content-Type-Options"] = "nosniff"
        response.call_on_close(upstream.close)
        return response

    def with_return(self, checkout_url: str, page: str) -> str:
        """The gateway's own checkout page (the demo provider's) gets `return_to`, the invoice's page
        here, so it can link back; a provider elsewhere (Stripe) gets its URL untouched."""
        if url_origin(checkout_url) not in self.settings.gateway_origins:
            return checkout_url
        parts = urlsplit(checkout_url)
        back = urlencode({"return_to": self.settings.public_url + page})
        return urlunsplit(parts._replace(query=f"{parts.query}&{back}" if parts.query else back))

    def pay(self, request: Request, invoice_id: str) -> Response:
        if not valid_id(invoice_id):
            return self.message(404, "Facture", "Cette facture est introuvable.")
        page = f"/factures/{quote(invoice_id)}"
        user = self.signed_in(request, page)
        if isinstance(user, Response):
            return user
        if not csrf_matches(user.csrf, request.form.get("csrf_token")):
            return self.message(400, "Paiement", "Ce formulaire a expiré. Rechargez la page.", user=user)
        key = request.form.get("idempotency_key", "")
        key = key if KEY_PATTERN.match(key) else secrets.token_urlsafe(18)
        api = self.api(user)
        try:
            payment = api.create_payment(invoice_id, key)
        except NeedsLogin:
            return self.start_login(page)
        except ApiError as exc:
            try:
                invoice = api.get_invoice(invoice_id)
            except (ApiError, NeedsLogin):
                return self.api_error(exc, user, "Paiement")
            return self.invoice_page(user, invoice, exc.status, message=exc.message)
        checkout_url = payment.get("checkout_url")
        if payment.get("status") == "succeeded":
            return redirect(page, 303)  # covered at once (family credit): nothing to pay online
        if isinstance(checkout_url, str) and urlsplit(checkout_url).scheme in ("http", "https"):
            return redirect(self.with_return(checkout_url, page), 303)
        return self.message(
            409,
            "Paiement",
            "Le paiement en ligne n'est pas disponible pour cette facture. "
            "Les autres moyens de paiement sont indiqués sur la facture.",
            user=user,
            action_url=page,
            action_label="Retour à la facture",
        )

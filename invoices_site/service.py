"""The invoices site: a small web application of its own (port 8001 by default) where parents sign
in through the identity provider (single sign-on with the portal), see their family's invoices in
every linked commune, download them and pay them. It owns no data and calls the gateway's API with
the parent's access token; the pages are in views.py."""

from __future__ import annotations

from typing import Any

from nameko.extensions import DependencyProvider
from werkzeug.wrappers import Request, Response

from invoices_site.http import page
from invoices_site.settings import SiteSettings
from invoices_site.views import Site


class SiteProvider(DependencyProvider):
    """One `Site` per container: its caches (provider metadata, keys) outlive a request."""

    def setup(self) -> None:
        self.site = Site(SiteSettings.from_config(self.container.config))

    def get_dependency(self, worker_ctx: Any) -> Site:
        return self.site


class InvoicesSite:
    name = "invoices_site"
    site = SiteProvider()

    @page("GET", "/")
    def home(self, request: Request) -> Response:
        return self.site.home(request)

    @page("GET", "/auth/login")
    def login(self, request: Request) -> Response:
        return self.site.login(request)

    @page("GET", "/auth/callback")
    def callback(self, request: Request) -> Response:
        return self.site.callback(request)

    @page("POST", "/auth/logout")
    def logout(self, request: Request) -> Response:
        return self.site.logout(request)

    @page("GET", "/factures/<invoice_id>")
    def invoice(self, request: Request, invoice_id: str) -> Response:
        return self.site.invoice(request, invoice_id)

    @page("GET", "/factures/<invoice_id>/pdf")
    def invoice_pdf(self, request: Request, invoice_id: str) -> Response:
        return self.site.pdf(request, invoice_id)

    @page("POST", "/factures/<invoice_id>/payer")
    def pay(self, request: Request, invoice_id: str) -> Response:
        return self.site.pay(request, invoice_id)

    @page("GET", "/health")
    def health(self, request: Request) -> Response:
        return Response('{"status": "ok"}', mimetype="application/json")

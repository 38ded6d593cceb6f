"""The gateway: the public HTTP API (/api/v1), the OIDC endpoints, health. It owns no data; each
route group is a mixin so that the service class stays a list of parts."""

from __future__ import annotations

# The services' exception modules: importing them registers their types, so RPC errors come back
# as the same classes (with their code and HTTP status) instead of generic RemoteErrors.
import services.billing.exceptions  # noqa: F401, E402, I001
import services.booking.exceptions  # noqa: F401, E402, I001
import services.communes.exceptions  # noqa: F401, E402, I001
import services.identity.exceptions  # noqa: F401, E402, I001
from gateway.base import GatewayBase
from gateway.memberships import MembershipEvents
from gateway.revocations import RevocationEvents
from gateway.routes.accounts import AccountRoutes
from gateway.routes.billing import BillingRoutes
from gateway.routes.booking import BookingRoutes
from gateway.routes.booking_agent import BookingAgentRoutes, CalendarFeedRoutes
from gateway.routes.communes import CommuneRoutes
from gateway.routes.invoicing import InvoicingRoutes
from gateway.routes.oidc import OidcRoutes
from gateway.routes.pages import PageRoutes
from gateway.routes.payment_pages import PaymentPageRoutes
from gateway.routes.platform import PlatformRoutes


class GatewayService(
    GatewayBase,
    MembershipEvents,
    RevocationEvents,
    AccountRoutes,
    CommuneRoutes,
    BookingRoutes,
    BookingAgentRoutes,
    CalendarFeedRoutes,
    BillingRoutes,
    InvoicingRoutes,
    PaymentPageRoutes,
    OidcRoutes,
    PageRoutes,
    PlatformRoutes,
):
    name = "gateway"

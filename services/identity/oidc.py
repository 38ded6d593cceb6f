"""The OpenID Connect provider, served through the gateway (see oidc_http.py for the exchange).

Authlib does the protocol: an `AuthorizationServer` subclass adapts our forwarded requests, the
authorization code grant is restricted to PKCE with S256 (a code challenge is required of every
client), OpenID Connect's `OpenIDCode` extension signs the id_token and handles `nonce` and
`prompt`, and the RP-initiated logout endpoint checks `id_token_hint` and post-logout URIs. Plain
functions handle what Authlib leaves to the application: discovery, JWKS, the login page and the SSO
cookie, userinfo.

Authorization codes are random, stored only as a digest, live `OIDC_CODE_TTL` seconds (60) and are
spent by a conditional update, so a code is exchanged once even when two requests race. Presenting a
spent code again revokes the SSO session it came from (and so every token issued from it).
"""

from __future__ import annotations

import datetime as dt
import logging
import secrets
from dataclasses import dataclass
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from authlib.common.security import is_secure_transport
from authlib.oauth2 import AuthorizationServer, OAuth2Error
from authlib.oauth2.rfc6749 import (
    InvalidGrantError,
    InvalidRequestError,
    InvalidScopeError,
    OAuth2Request,
    grants,
)
from authlib.oauth2.rfc6749.requests import BasicOAuth2Payload
from authlib.oauth2.rfc7636 import CodeChallenge
from authlib.oauth2.rfc7636.challenge import compare_s256_code_challenge
from authlib.oidc.core import AuthorizationCodeMixin, OpenIDCode, UserInfo
from authlib.oidc.core.grants.util import is_openid_scope
from authlib.oidc.rpinitiated import EndSessionEndpoint, EndSessionRequest
from sqlalchemy import delete, exists, select, update
from sqlalchemy.orm import Session
from werkzeug.datastructures import Headers

from services.common import clock
from services.common.config import is_production
from services.identity import accounts, keys, oidc_pages, oidc_sso
from services.identity.exceptions import (
    EmailNotVerified,
    InvalidCredentials,
    SessionRevoked,
    TooManyAttempts,
)
from services.identity.models import Account, AuthorizationCode, LoginSession, SigningKey
from services.identity.oidc_clients import SCOPES, OidcClient, load_clients
from services.identity.oidc_http import (
    BadRequest,
    HttpRequest,
    HttpResponse,
    clear_cookie,
    json_response,
    parse_request,
    redirect,
    set_cookie,
)
from services.identity.oidc_sso import SSO_COOKIE, SsoUser
from services.identity.secrets_util import new_token, token_digest
from services.identity.settings import IdentitySettings

DISCOVERY_PATH = "/.well-known/openid-configuration"
JWKS_PATH = "/oidc/jwks"
AUTHORIZE_PATH = "/oidc/authorize"
LOGIN_PATH = "/oidc/login"
TOKEN_PATH = "/oidc/token"  # noqa: S105 (a path, not a secret)
USERINFO_PATH = "/oidc/userinfo"
LOGOUT_PATH = "/oidc/logout"

LOGIN_COOKIE = "pf_login"  # pre-login CSRF token (double submit), also used by the logout form
LOGIN_COOKIE_MAX_AGE = 3600
SPENT_CODES_KEPT = dt.timedelta(days=1)  # long enough to recognise a replayed code
ALGORITHM = keys.ALGORITHM

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class OidcSettings:
    issuer: str
    clients: dict[str, OidcClient]
    code_ttl: dt.timedelta = dt.timedelta(seconds=60)
    id_token_ttl: dt.timedelta = dt.timedelta(minutes=10)
    jwks_grace: dt.timedelta = dt.timedelta(days=30)
    secure_cookies: bool = False

    @classmethod
    def from_config(cls, config: dict[str, Any], settings: IdentitySettings) -> OidcSettings:
        issuer = settings.issuer
        if is_production(config) and not issuer.startswith("https://"):
            raise RuntimeError("OIDC_ISSUER / PUBLIC_URL must be an https URL in production")

        def seconds(key: str, default: dt.timedelta) -> dt.timedelta:
            value = config.get(key)
            return dt.timedelta(seconds=int(value)) if value not in (None, "") else default

        return cls(
            issuer=issuer,
            clients=load_clients(config),
            code_ttl=seconds("OIDC_CODE_TTL", cls.code_ttl),
            id_token_ttl=seconds("OIDC_ID_TOKEN_TTL", cls.id_token_ttl),
            jwks_grace=settings.refresh_ttl,
            secure_cookies=issuer.startswith("https://"),
        )

    def url(self, path: str) -> str:
        return self.issuer + path

    @property
    def origin(self) -> str:
        parts = urlsplit(self.issuer)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def client_origins(self) -> frozenset[str]:
        return frozenset().union(*(client.origins for client in self.clients.values()))


def discovery_document(conf: OidcSettings) -> dict[str, Any]:
    auth_methods = sorted({m for c in conf.clients.values() for m in c.token_endpoint_auth_methods}) or [
        "none"
    ]
    return {
        "issuer": conf.issuer,
        "authorization_endpoint": conf.url(AUTHORIZE_PATH),
        "token_endpoint": conf.url(TOKEN_PATH),
        "userinfo_endpoint": conf.url(USERINFO_PATH),
        "jwks_uri": conf.url(JWKS_PATH),
        "end_session_endpoint": conf.url(LOGOUT_PATH),
        "response_types_supported": ["code"],
        "response_modes_supported": ["query"],
        "grant_types_supported": ["authorization_code"],
        "code_challenge_methods_supported": ["S256"],
        "id_token_signing_alg_values_supported": [ALGORITHM],
        "subject_types_supported": ["public"],
        "scopes_supported": list(SCOPES),
        "claims_supported": [
            "sub",
            "iss",
            "aud",
            "exp",
            "iat",
            "auth_time",
            "nonce",
            "sid",
            "email",
            "email_verified",
            "locale",
        ],
        "token_endpoint_auth_methods_supported": auth_methods,
        "prompt_values_supported": ["none", "login"],
        "ui_locales_supported": list(oidc_pages.LOCALES),
        "claims_parameter_supported": False,
        "request_parameter_supported": False,
        "request_uri_parameter_supported": False,
        "authorization_response_iss_parameter_supported": False,
    }


# --- Authlib adaptation ------------------------------------------------------------------------


class GatewayRequest(OAuth2Request):
    """An Authlib request made of what the gateway forwarded. Parameters come from the query of a
    GET and from the form body of a POST, never both."""

    def __init__(self, http: HttpRequest, issuer: str) -> None:
        uri = issuer + http.path
        # Authlib refuses plain-http URIs other than loopback ones. TLS ends at the gateway, and a
        # plain-http issuer is refused in production (OidcSettings), so outside production the
        # transport check runs on a loopback stand-in.
        checked = uri if is_secure_transport(uri) else "http://127.0.0.1" + http.path
        super().__init__(http.method, checked, headers=Headers(list(http.headers.items())))
        self.uri = uri
        self.http = http
        self.payload = BasicOAuth2Payload(dict(http.params))

    @property
    def args(self) -> dict[str, str]:
        return self.http.query

    @property
    def form(self) -> dict[str, str]:
        return self.http.form if self.http.method == "POST" else {}


class IssuedCode(AuthorizationCodeMixin):
    def __init__(self, row: AuthorizationCode) -> None:
        self.row = row
        self.code_challenge = row.code_challenge
        self.code_challenge_method = row.code_challenge_method

    def get_redirect_uri(self) -> str:
        return self.row.redirect_uri

    def get_scope(self) -> str:
        return self.row.scope

    def get_nonce(self) -> str | None:
        return self.row.nonce

    def get_auth_time(self) -> int:
        return int(self.row.auth_time.timestamp())


class S256CodeChallenge(CodeChallenge):
    """PKCE, required at the authorization endpoint too, and S256 only: `plain` (or no method, which
    means `plain`) is refused."""

    SUPPORTED_CODE_CHALLENGE_METHOD = ["S256"]
    CODE_CHALLENGE_METHODS = {"S256": compare_s256_code_challenge}

    def validate_code_challenge(self, grant: grants.AuthorizationCodeGrant, redirect_uri: str) -> None:
        data = grant.request.payload.data
        if not data.get("code_challenge"):
            raise InvalidRequestError("Missing 'code_challenge': PKCE is required.")
        if data.get("code_challenge_method") != "S256":
            raise InvalidRequestError("Unsupported 'code_challenge_method': only S256 is accepted.")
        super().validate_code_challenge(grant, redirect_uri)


class CodeGrant(grants.AuthorizationCodeGrant):
    TOKEN_ENDPOINT_AUTH_METHODS = ["client_secret_basic", "client_secret_post", "none"]
    server: Provider

    def validate_authorization_request(self) -> str:
        redirect_uri = super().validate_authorization_request()
        if not is_openid_scope(self.request.scope):
            raise InvalidScopeError("The 'openid' scope is required.", redirect_uri=redirect_uri)
        return redirect_uri

    def save_authorization_code(self, code: str, request: OAuth2Request) -> None:
        user: SsoUser = request.user
        data = request.payload.data
        now = clock.now()
        session = self.server.session
        session.execute(
            delete(AuthorizationCode).where(AuthorizationCode.expires_at < now - SPENT_CODES_KEPT)
        )
        session.add(
            AuthorizationCode(
                code_hash=token_digest(code),
                client_id=request.client.client_id,
                account_id=user.account.id,
                session_id=user.login.id,
                redirect_uri=request.payload.redirect_uri,
                scope=request.scope,
                nonce=data.get("nonce") or None,
                code_challenge=data["code_challenge"],
                code_challenge_method=data["code_challenge_method"],
                auth_time=user.login.created_at,
                expires_at=now + self.server.conf.code_ttl,
            )
        )
        session.flush()

    def query_authorization_code(self, code: str, client: OidcClient) -> IssuedCode | None:
        if not isinstance(code, str) or not code or len(code) > 200:
            return None
        session = self.server.session
        row = session.scalars(
            select(AuthorizationCode).where(AuthorizationCode.code_hash == token_digest(code))
        ).first()
        if row is None or row.client_id != client.client_id:
            return None
        if row.used_at is not None:  # replayed: whatever was issued from it may have leaked
            accounts.revoke_session(session, self.server.settings, row.session_id, "code_replay")
            return None
        if row.expires_at <= clock.now():
            return None
        return IssuedCode(row)

    def delete_authorization_code(self, authorization_code: IssuedCode) -> None:
        """Spend the code: only one exchange wins the conditional update."""
        spent = self.server.session.execute(
            update(AuthorizationCode)
            .where(AuthorizationCode.id == authorization_code.row.id, AuthorizationCode.used_at.is_(None))
            .values(used_at=clock.now())
        ).rowcount
        if spent != 1:
            raise InvalidGrantError("Invalid 'code' in request.")

    def authenticate_user(self, authorization_code: IssuedCode) -> SsoUser | None:
        row = authorization_code.row
        try:
            login = accounts.active_session(self.server.session, row.session_id, row.account_id)
        except SessionRevoked:  # signed out between the authorization and the exchange
            return None
        account = self.server.session.get(Account, row.account_id)
        return SsoUser(account, login) if account is not None else None


class OpenIDConnectCode(OpenIDCode):
    """id_token: RS256 with the service's signing key (and its kid); iss, sub, aud, exp, iat,
    auth_time, nonce, sid, at_hash, email and email_verified (scope `email`), locale (`profile`)."""

    def __init__(self, provider: Provider) -> None:
        super().__init__(require_nonce=False)
        self.provider = provider

    def exists_nonce(self, nonce: str, request: OAuth2Request) -> bool:
        return bool(
            self.provider.session.scalar(
                select(
                    exists().where(
                        AuthorizationCode.client_id == request.payload.client_id,
                        AuthorizationCode.nonce == nonce,
                    )
                )
            )
        )

    def resolve_client_private_key(self, client: OidcClient) -> Any:
        return keys.private_key(self.provider.signing_key)

    def get_client_algorithm(self, client: OidcClient) -> str:
        return ALGORITHM

    def get_encode_header(self, client: OidcClient) -> dict[str, str]:
        return {"alg": ALGORITHM, "kid": self.provider.signing_key.kid, "typ": "JWT"}

    def get_client_claims(self, client: OidcClient) -> dict[str, Any]:
        now = clock.now()
        return {
            "iss": self.provider.conf.issuer,
            "aud": client.client_id,
            "iat": int(now.timestamp()),
            "exp": int((now + self.provider.conf.id_token_ttl).timestamp()),
        }

    def get_authorization_code_claims(self, authorization_code: IssuedCode) -> dict[str, Any]:
        claims = super().get_authorization_code_claims(authorization_code)
        claims["sid"] = authorization_code.row.session_id
        return claims

    def generate_user_info(self, user: SsoUser, scope: str) -> UserInfo:
        return user_claims(user.account).filter(scope)


class EndSession(EndSessionEndpoint):
    """RP-initiated logout. A valid `id_token_hint` (signed here, for this issuer) signs out at once
    and allows the redirect to an exactly registered post-logout URI; without one the user confirms
    on a page first (then the redirect is allowed for the client named by `client_id`)."""

    server: Provider

    def get_server_jwks(self) -> dict[str, Any]:
        return self.server.jwks()

    def get_algorithms(self) -> list[str]:
        return [ALGORITHM]

    def validate_request(self, request: OAuth2Request) -> EndSessionRequest:
        validated = super().validate_request(request)
        claims = validated.id_token_claims
        if claims is not None and claims.get("iss") != self.server.conf.issuer:
            raise InvalidRequestError("The 'id_token_hint' was not issued by this provider.")
        return validated

    def is_post_logout_redirect_uri_legitimate(
        self,
        request: OAuth2Request,
        post_logout_redirect_uri: str,
        client: OidcClient,
        logout_hint: str | None,
    ) -> bool:
        return self.server.logout_confirmed

    def end_session(self, end_session_request: EndSessionRequest) -> None:
        session = self.server.session
        if self.server.sso_user is not None:
            accounts.revoke_session(session, self.server.settings, self.server.sso_user.login.id, "logout")
        claims = end_session_request.id_token_claims or {}
        sid, sub = claims.get("sid"), claims.get("sub")
        if isinstance(sid, str) and isinstance(sub, str):
            login = session.get(LoginSession, sid)
            if login is not None and login.account_id == sub:
                accounts.revoke_session(session, self.server.settings, sid, "logout")


class Provider(AuthorizationServer):
    """One per forwarded request: Authlib's server bound to this request's database session."""

    def __init__(
        self,
        session: Session,
        settings: IdentitySettings,
        conf: OidcSettings,
        sso_user: SsoUser | None = None,
    ) -> None:
        super().__init__(scopes_supported=list(SCOPES))
        self.session = session
        self.settings = settings
        self.conf = conf
        self.sso_user = sso_user
        self.logout_confirmed = False
        self._signing_key: SigningKey | None = None
        self.register_token_generator("default", self._generate_token)
        self.register_grant(CodeGrant, [S256CodeChallenge(required=True), OpenIDConnectCode(self)])
        self.register_endpoint(EndSession)

    @property
    def signing_key(self) -> SigningKey:
        if self._signing_key is None:
            self._signing_key = keys.ensure_signing_key(self.session)
        return self._signing_key

    def jwks(self) -> dict[str, Any]:
        keys.ensure_signing_key(self.session)
        return keys.public_jwks(self.session, self.conf.jwks_grace)

    def query_client(self, client_id: object) -> OidcClient | None:
        return self.conf.clients.get(client_id) if isinstance(client_id, str) else None

    def save_token(self, token: dict[str, Any], request: OAuth2Request) -> None:
        """Nothing to store: access tokens are signed JWTs bound to the SSO session by `sid`."""

    def create_oauth2_request(self, request: HttpRequest | OAuth2Request) -> OAuth2Request:
        if isinstance(request, OAuth2Request):
            return request
        return GatewayRequest(request, self.conf.issuer)

    def create_json_request(self, request: Any) -> Any:
        raise NotImplementedError("no JSON endpoint is served")

    def handle_response(self, status: int, body: Any, headers: list[tuple[str, str]]) -> HttpResponse:
        if isinstance(body, dict):
            return json_response(status, body, list(headers))
        return HttpResponse(status, body or "", list(headers))

    def send_signal(self, name: str, *args: Any, **kwargs: Any) -> None:
        """No signal receivers here."""

    def _generate_token(
        self,
        grant_type: str,
        client: OidcClient,
        user: SsoUser | None = None,
        scope: str | None = None,
        expires_in: int | None = None,
        include_refresh_token: bool = True,
    ) -> dict[str, Any]:
        return {
            "token_type": "Bearer",
            "access_token": accounts.access_token(self.session, self.settings, user.account, user.login.id),
            "expires_in": int(self.settings.access_ttl.total_seconds()),
            "scope": scope,
        }


def user_claims(account: Account) -> UserInfo:
    return UserInfo(
        sub=account.id,
        email=account.email,
        email_verified=account.email_verified_at is not None,
        locale=account.locale,
    )


# --- endpoints ---------------------------------------------------------------------------------


@dataclass
class Exchange:
    """What every endpoint needs: the database session, settings, the request and who is signed in."""

    session: Session
    settings: IdentitySettings
    conf: OidcSettings
    http: HttpRequest
    sso_user: SsoUser | None

    @property
    def locale(self) -> str:
        params = self.http.params
        ui_locales = params.get("ui_locales")
        if ui_locales is None and "authorize" in params:
            ui_locales = dict(parse_qsl(params["authorize"])).get("ui_locales")
        return oidc_pages.choose_locale(ui_locales, self.http.header("accept-language"))

    def provider(self) -> Provider:
        return Provider(self.session, self.settings, self.conf, self.sso_user)

    def sso_cookie(self, value: str) -> str:
        return set_cookie(
            SSO_COOKIE, value, max_age=oidc_sso.cookie_max_age(self.settings), secure=self.conf.secure_cookies
        )

    def clear_sso_cookie(self) -> str:
        return clear_cookie(SSO_COOKIE, secure=self.conf.secure_cookies)

    def csrf_cookie(self, value: str) -> str:
        return set_cookie(
            LOGIN_COOKIE, value, max_age=LOGIN_COOKIE_MAX_AGE, secure=self.conf.secure_cookies, path="/oidc"
        )

    def csrf_token(self) -> tuple[str, str | None]:
        """The pre-login CSRF token and, if it is new, the Set-Cookie that carries it."""
        current = self.http.cookies.get(LOGIN_COOKIE, "")
        if 20 <= len(current) <= 100:
            return current, None
        token = new_token()
        return token, self.csrf_cookie(token)

    def csrf_ok(self) -> bool:
        cookie = self.http.cookies.get(LOGIN_COOKIE, "")
        submitted = self.http.form.get("csrf_token", "")
        return bool(cookie) and secrets.compare_digest(cookie.encode(), submitted.encode())

    def same_origin(self) -> bool:
        """A POST from another site is refused when the browser says so (Origin header)."""
        origin = self.http.header("origin")
        return origin is None or origin == self.conf.origin

    def error_page(
        self, status: int, code: str, description: str | None = None, logout: bool = False
    ) -> HttpResponse:
        """An error shown to the person, not sent to the client. The description (which may repeat
        what the request said) goes to the log, not to the page."""
        log.info("OIDC %s %s refused: %s %s", self.http.method, self.http.path, code, description or "")
        home = self.settings.public_url + "/"
        return oidc_pages.error_page(status, self.locale, code=code, home=home, logout=logout)


def discovery(ex: Exchange) -> HttpResponse:
    return json_response(
        200,
        discovery_document(ex.conf),
        [("Content-Type", "application/json"), ("Cache-Control", "public, max-age=300")],
    )


def jwks(ex: Exchange) -> HttpResponse:
    return json_response(
        200,
        ex.provider().jwks(),
        [("Content-Type", "application/jwk-set+json"), ("Cache-Control", "public, max-age=300")],
    )


def _max_age_exceeded(params: dict[str, str], user: SsoUser) -> bool:
    value = params.get("max_age")
    if value is None or not value.isdigit():
        return False
    return user.age_seconds() > int(value)


def authorize(ex: Exchange) -> HttpResponse:
    provider = ex.provider()
    params = ex.http.params
    user = ex.sso_user
    if user is not None and _max_age_exceeded(params, user):
        user = None
    try:
        grant = provider.get_consent_grant(request=ex.http, end_user=user)
    except OAuth2Error as error:
        if error.redirect_uri:  # the client and its redirect URI were checked: tell the client
            return provider.handle_error_response(None, error)
        return ex.error_page(error.status_code, error.error, error.description)
    if grant.prompt == "login":
        return redirect(ex.conf.url(LOGIN_PATH) + "?" + urlencode(params))
    return provider.create_authorization_response(request=grant.request, grant_user=user, grant=grant)


def _return_query(authorize_query: str) -> str:
    """The authorization request to resume after a successful login, minus what asked for it."""
    params = []
    for name, value in parse_qsl(authorize_query, keep_blank_values=True):
        if name == "max_age":
            continue
        if name == "prompt":
            value = " ".join(p for p in value.split() if p != "login")
            if not value:
                continue
        params.append((name, value))
    return urlencode(params)


def login(ex: Exchange) -> HttpResponse:
    http = ex.http
    locale = ex.locale
    csrf, csrf_set_cookie = ex.csrf_token()
    authorize_query = http.form.get("authorize", "") if http.method == "POST" else urlencode(http.query)
    email = http.form.get("email", "") if http.method == "POST" else http.query.get("login_hint", "")
    t = oidc_pages.text(locale)

    def page(status: int, error: str | None = None) -> HttpResponse:
        response = oidc_pages.login_page(
            status,
            locale,
            action=ex.conf.url(LOGIN_PATH),
            csrf_token=csrf,
            authorize=authorize_query,
            email=email[:254],
            error=error,
        )
        if csrf_set_cookie:
            response.add_header("Set-Cookie", csrf_set_cookie)
        return response

    if http.method == "GET":
        return page(200)
    if not ex.same_origin() or not ex.csrf_ok():
        if not csrf_set_cookie:  # a cross-site or stale form: start over with a fresh token
            csrf = new_token()
            csrf_set_cookie = ex.csrf_cookie(csrf)
        return page(400, t["form_expired"])
    password = http.form.get("password", "")
    if not email.strip():
        return page(400, t["missing_email"])
    if not password:
        return page(400, t["missing_password"])

    outcome = accounts.check_credentials(ex.session, email, password, http.client_ip)
    if isinstance(outcome, TooManyAttempts):
        seconds = int(outcome.details.get("retry_after") or 1)
        return page(429, t["TOO_MANY_ATTEMPTS"].format(seconds=seconds)).add_header(
            "Retry-After", str(seconds)
        )
    if isinstance(outcome, EmailNotVerified):
        return page(403, t["EMAIL_NOT_VERIFIED"])
    if isinstance(outcome, InvalidCredentials):
        return page(401, t["INVALID_CREDENTIALS"])
    if isinstance(outcome, Exception):
        raise outcome

    if ex.sso_user is not None:  # a new sign-in replaces this browser's previous session
        accounts.revoke_session(ex.session, ex.settings, ex.sso_user.login.id, "relogin")
    _user, cookie_value = oidc_sso.open_session(ex.session, ex.settings, outcome)
    query = _return_query(authorize_query)
    resume = "client_id" in dict(parse_qsl(query))  # else the login page was opened on its own
    target = ex.conf.url(AUTHORIZE_PATH) + "?" + query if resume else ex.settings.public_url + "/"
    response = redirect(target, 303)
    response.add_header("Set-Cookie", ex.sso_cookie(cookie_value))
    response.add_header("Set-Cookie", clear_cookie(LOGIN_COOKIE, secure=ex.conf.secure_cookies, path="/oidc"))
    return response


def token(ex: Exchange) -> HttpResponse:
    return ex.provider().create_token_response(ex.http)


def _bearer_error(status: int, error: str | None, description: str = "") -> HttpResponse:
    challenge = 'Bearer realm="portal"'
    body: dict[str, str] = {}
    if error:
        challenge += f', error="{error}"'
        body = {"error": error, "error_description": description}
    return json_response(status, body).add_header("WWW-Authenticate", challenge)


def userinfo(ex: Exchange) -> HttpResponse:
    scheme, _, access_token = (ex.http.header("authorization") or "").partition(" ")
    access_token = access_token.strip()
    if scheme.lower() != "bearer" or not access_token:
        return _bearer_error(401, None)
    provider = ex.provider()
    try:
        claims = keys.verify(access_token, provider.jwks(), ex.conf.issuer, ex.settings.audience)
        accounts.active_session(ex.session, claims.get("sid"), claims["sub"])
    except (keys.TokenInvalid, SessionRevoked):
        return _bearer_error(401, "invalid_token", "The access token is invalid, expired or revoked.")
    account = ex.session.get(Account, claims["sub"])
    if account is None:
        return _bearer_error(401, "invalid_token", "The access token is invalid, expired or revoked.")
    info = user_claims(account)
    return json_response(200, {k: info[k] for k in ("sub", "email", "email_verified")})


def logout(ex: Exchange) -> HttpResponse:
    http = ex.http
    provider = ex.provider()
    confirmed = (
        http.method == "POST" and http.form.get("confirm") == "1" and ex.same_origin() and ex.csrf_ok()
    )
    provider.logout_confirmed = confirmed
    try:
        validated = provider.validate_endpoint_request("end_session", http)
    except OAuth2Error as error:  # never redirect after an error
        return ex.error_page(400, error.error, error.description, logout=True)
    if validated.needs_confirmation and not confirmed and ex.sso_user is not None:
        csrf, csrf_set_cookie = ex.csrf_token()
        kept = ("client_id", "post_logout_redirect_uri", "state", "ui_locales")
        params = {name: http.params[name] for name in kept if name in http.params}
        response = oidc_pages.logout_page(
            ex.locale, action=ex.conf.url(LOGOUT_PATH), csrf_token=csrf, params=params
        )
        if csrf_set_cookie:
            response.add_header("Set-Cookie", csrf_set_cookie)
        return response
    response = provider.create_endpoint_response("end_session", validated)
    if response is None:
        response = oidc_pages.logged_out_page(ex.locale, home=ex.settings.public_url + "/")
    response.add_header("Set-Cookie", ex.clear_sso_cookie())
    return response


ROUTES = {
    DISCOVERY_PATH: (("GET",), discovery),
    JWKS_PATH: (("GET",), jwks),
    AUTHORIZE_PATH: (("GET", "POST"), authorize),
    LOGIN_PATH: (("GET", "POST"), login),
    TOKEN_PATH: (("POST",), token),
    USERINFO_PATH: (("GET", "POST"), userinfo),
    LOGOUT_PATH: (("GET", "POST"), logout),
}
SSO_PATHS = (AUTHORIZE_PATH, LOGIN_PATH, LOGOUT_PATH)  # where the browser's SSO cookie matters
CORS_PUBLIC = (DISCOVERY_PATH, JWKS_PATH)  # anyone may read them
CORS_CLIENTS = (TOKEN_PATH, USERINFO_PATH)  # browsers on a registered client's origin


def _cors_headers(conf: OidcSettings, http: HttpRequest) -> list[tuple[str, str]]:
    origin = http.header("origin")
    if not origin:
        return []
    if http.path in CORS_PUBLIC:
        return [("Access-Control-Allow-Origin", "*")]
    if http.path in CORS_CLIENTS and origin in conf.client_origins:
        return [("Access-Control-Allow-Origin", origin), ("Vary", "Origin")]
    return []


def _preflight(conf: OidcSettings, http: HttpRequest) -> HttpResponse:
    response = HttpResponse(204, "", _cors_headers(conf, http))
    if response.headers:
        response.add_header("Access-Control-Allow-Methods", ", ".join(ROUTES[http.path][0]))
        response.add_header("Access-Control-Allow-Headers", "Authorization, Content-Type")
        response.add_header("Access-Control-Max-Age", "600")
    return response


def handle_http(
    session: Session, settings: IdentitySettings, config: dict[str, Any], raw: object
) -> dict[str, Any]:
    """Answer one forwarded HTTP request (see oidc_http.py for both shapes)."""
    conf = OidcSettings.from_config(config, settings)
    try:
        http = parse_request(raw)
    except BadRequest as exc:
        return json_response(400, {"error": "invalid_request", "error_description": str(exc)}).as_dict()
    route = ROUTES.get(http.path)
    if route is None:
        return json_response(404, {"error": "not_found"}).as_dict()
    methods, endpoint = route
    if http.method == "OPTIONS":
        return _preflight(conf, http).as_dict()
    if http.method not in methods:
        return (
            json_response(405, {"error": "method_not_allowed"})
            .add_header("Allow", ", ".join(methods))
            .as_dict()
        )
    sso_user = oidc_sso.find_user(session, http.cookies.get(SSO_COOKIE)) if http.path in SSO_PATHS else None
    exchange = Exchange(session=session, settings=settings, conf=conf, http=http, sso_user=sso_user)
    response = endpoint(exchange)
    response.headers.extend(_cors_headers(conf, http))
    return response.as_dict()

"""End-to-end: the real processes (`nameko run` per service, as `make run` starts them) on
PostgreSQL and a fresh RabbitMQ vhost, spoken to over HTTP like a parent's browser or app would."""

import email
import email.policy
import itertools
import re
import socket
import time
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
import requests

from deploy.stack import Stack
from services.common.migrate import upgrade

_addresses = itertools.count(1)


def free_port():
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Mailbox:
    def __init__(self, folder: Path):
        self.folder = folder

    def messages_to(self, address):
        found = []
        for path in sorted(self.folder.glob("*.eml")):
            message = email.message_from_bytes(path.read_bytes(), policy=email.policy.default)
            if address.lower() in str(message["To"]).lower():
                found.append(message)
        return found

    def wait_for(self, address, count=1, timeout=20.0, subject=None):
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            messages = [
                m for m in self.messages_to(address) if subject is None or subject in str(m["Subject"])
            ]
            if len(messages) >= count:
                return messages
            time.sleep(0.1)
        raise AssertionError(f"expected {count} email(s) to {address}, got {len(self.messages_to(address))}")


def text_body(message):
    return message.get_body(preferencelist=("plain",)).get_content()


def link_token(message):
    """The `token` query parameter of the first link in the email."""
    match = re.search(r"https?://\S+token=[^\s\"<>]+", text_body(message))
    assert match, "no link with a token in the email"
    return parse_qs(urlparse(match.group(0)).query)["token"][0]


class Client:
    """A requests session posing as one device (its own client address via the trusted proxy)."""

    def __init__(self, base_url):
        self.base_url = base_url
        self.http = requests.Session()
        self.http.headers["X-Forwarded-For"] = f"198.51.100.{next(_addresses) % 250 + 1}"

    def request(self, method, path, token=None, **kwargs):
        headers = kwargs.pop("headers", {})
        if token:
            headers["Authorization"] = f"Bearer {token}"
        kwargs.setdefault("timeout", 15)
        kwargs.setdefault("allow_redirects", False)
        return self.http.request(method, self.base_url + path, headers=headers, **kwargs)

    def get(self, path, **kwargs):
        return self.request("GET", path, **kwargs)

    def post(self, path, **kwargs):
        return self.request("POST", path, **kwargs)


class Platform:
    def __init__(self, stack, mailbox, env):
        self.env = env
        self.stack = stack
        self.mailbox = mailbox
        self.url = stack.gateway_url

    def client(self):
        return Client(self.url)

    def new_email(self, label="parent"):
        return f"{label}-{next(_addresses)}-{time.monotonic_ns() % 10**8}@example.org"

    def registered_account(self, client=None, password="un mot de passe solide", locale=None):
        """A verified account, through the real flow; returns (email, password)."""
        client = client or self.client()
        address = self.new_email()
        body = {"email": address, "password": password}
        if locale:
            body["locale"] = locale
        assert client.post("/api/v1/accounts", json=body).status_code == 201
        token = link_token(self.mailbox.wait_for(address, subject=None)[0])
        assert client.post("/api/v1/accounts/verify", json={"token": token}).status_code == 200
        return address, password

    def admin_token(self, client):
        """A platform admin made the ops way (`make admin` runs the same function)."""
        from services.identity.cli import create_admin

        address, password = self.new_email("admin"), "une phrase d'administration"
        create_admin(address, password, self.env["IDENTITY_DB_URI"])
        return self.login(client, address, password)["access_token"]

    def login(self, client, address, password):
        response = client.post("/api/v1/auth/login", json={"email": address, "password": password})
        assert response.status_code == 200, response.text
        return response.json()


@pytest.fixture(scope="session")
def platform_env(pg_databases, rabbit_vhosts, tmp_path_factory):
    mail_dir = tmp_path_factory.mktemp("mail")
    identity_uri = pg_databases.create("e2e_identity")
    notify_uri = pg_databases.create("e2e_notify")
    communes_uri = pg_databases.create("e2e_communes")
    booking_uri = pg_databases.create("e2e_booking")
    billing_uri = pg_databases.create("e2e_billing")
    upgrade("identity", identity_uri)
    upgrade("notify", notify_uri)
    upgrade("communes", communes_uri)
    upgrade("booking", booking_uri)
    upgrade("billing", billing_uri)
    port = free_port()
    site_port = free_port()  # the invoices site (invoices_site/), a client of the OIDC provider
    return {
        "AMQP_URI": rabbit_vhosts.amqp_uri("e2e"),
        "IDENTITY_DB_URI": identity_uri,
        "NOTIFY_DB_URI": notify_uri,
        "COMMUNES_DB_URI": communes_uri,
        "BOOKING_DB_URI": booking_uri,
        "BILLING_DB_URI": billing_uri,
        "MAIL_DIR": str(mail_dir),
        "GATEWAY_PORT": str(port),
        "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
        "PUBLIC_URL": f"http://localhost:{port}",
        "TRUSTED_PROXIES": "127.0.0.1",
        "RPC_TIMEOUT_SECONDS": "5",
        "OUTBOX_POLL_SECONDS": "0.5",
        "NOTIFY_POLL_SECONDS": "0.5",
        "OIDC_INVOICES_REDIRECT_URIS": f"http://localhost:8001/auth/callback,http://localhost:{site_port}/auth/callback",
        "OIDC_INVOICES_POST_LOGOUT_URIS": f"http://localhost:8001/,http://localhost:{site_port}/",
        "INVOICES_WEB_ADDRESS": f"127.0.0.1:{site_port}",
        "INVOICES_PUBLIC_URL": f"http://localhost:{site_port}",
        # the gateway's demo payment page may link back to the invoices site (?return_to=)
        "PAYMENT_RETURN_ORIGINS": f"http://localhost:{site_port}",
        "GATEWAY_URL": f"http://127.0.0.1:{port}",
        "LOG_LEVEL": "INFO",
    }


@pytest.fixture(scope="session")
def platform(platform_env, tmp_path_factory):
    log_dir = tmp_path_factory.mktemp("logs")
    stack = Stack(platform_env, log_dir=log_dir)
    try:
        stack.start(timeout=90)
    except Exception:
        stack.stop()
        for log in log_dir.glob("*.log"):
            print(f"--- {log.name}\n{log.read_text()[-4000:]}")
        raise
    yield Platform(stack, Mailbox(Path(platform_env["MAIL_DIR"])), platform_env)
    stack.stop()


@pytest.fixture(scope="session")
def admin(platform):
    """A platform admin's client and access token."""
    client = platform.client()
    return client, platform.admin_token(client)


@pytest.fixture(scope="session")
def site_url(platform):
    """The invoices site's public URL (as the browser reaches it), once it answers."""
    url = platform.env["INVOICES_PUBLIC_URL"]
    health = url.replace("localhost", "127.0.0.1") + "/health"
    deadline = time.monotonic() + 30
    while True:
        try:
            if requests.get(health, timeout=2).status_code == 200:
                return url
        except requests.RequestException:
            pass
        if time.monotonic() > deadline:
            raise AssertionError("the invoices site did not start (see its log in the e2e logs folder)")
        time.sleep(0.2)

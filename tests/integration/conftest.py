import pytest

from services.common.migrate import upgrade


@pytest.fixture(scope="session")
def identity_db_uri(pg_databases):
    uri = pg_databases.create("identity")
    upgrade("identity", uri)
    return uri


@pytest.fixture
def identity_config(amqp_uri, identity_db_uri):
    return {
        "AMQP_URI": amqp_uri,
        "DB_URIS": {"identity": identity_db_uri},
        "PUBLIC_URL": "http://portal.test",
        "OUTBOX_POLL_SECONDS": 0.2,
    }


# ---------------------------------------------------------------- notify


@pytest.fixture(scope="session")
def notify_db_uri(pg_databases):
    uri = pg_databases.create("notify")
    upgrade("notify", uri)
    return uri


@pytest.fixture(scope="session")
def notify_amqp_uri(rabbit_vhosts):
    """A vhost of notify's own, so no other notify consumer competes for its durable queues."""
    return rabbit_vhosts.amqp_uri("notify")


@pytest.fixture
def notify_config(notify_amqp_uri, notify_db_uri, tmp_path):
    """Emails as files in a fresh folder; fast polling and a short retry schedule."""
    return {
        "AMQP_URI": notify_amqp_uri,
        "DB_URIS": {"notify": notify_db_uri},
        "MAIL_DIR": str(tmp_path / "mail"),
        "SMTP_URL": "",
        "MAIL_FROM": "Portail Famille <no-reply@portail.test>",
        "NOTIFY_POLL_SECONDS": 0.1,
        "OUTBOX_POLL_SECONDS": 0.1,
        "NOTIFY_MAX_ATTEMPTS": 10,
        "NOTIFY_RETRY_BASE_SECONDS": 0.2,
        "NOTIFY_RETRY_MAX_SECONDS": 0.4,
        "NOTIFY_CLAIM_SECONDS": 30,
        "NOTIFY_REQUEUE_DELAY_SECONDS": 0.1,
    }


class SmtpRecorder:
    """A real SMTP server (aiosmtpd) on 127.0.0.1 that keeps every message it accepts."""

    def __init__(self):
        import socket

        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.received = []
        self._controller = None

    @property
    def url(self):
        return f"smtp://127.0.0.1:{self.port}?timeout=5"

    async def handle_DATA(self, server, session, envelope):
        self.received.append(envelope)
        return "250 Message accepted"

    def start(self):
        from aiosmtpd.controller import Controller

        self._controller = Controller(self, hostname="127.0.0.1", port=self.port)
        self._controller.start()

    def stop(self):
        if self._controller is not None:
            self._controller.stop()
            self._controller = None

    def messages(self):
        import email
        from email import policy

        return [email.message_from_bytes(e.original_content, policy=policy.default) for e in self.received]


@pytest.fixture
def smtp_recorder():
    """Not started: call `.start()` (a test may want the server down at first)."""
    recorder = SmtpRecorder()
    yield recorder
    recorder.stop()


# ---------------------------------------------------------------- communes


@pytest.fixture(scope="session")
def communes_db_uri(pg_databases):
    uri = pg_databases.create("communes")
    upgrade("communes", uri)
    return uri


@pytest.fixture(scope="session")
def communes_amqp_uri(rabbit_vhosts):
    """communes' own vhost: its tests run identity there too, so that the two talk to each other."""
    return rabbit_vhosts.amqp_uri("communes")


@pytest.fixture
def communes_config(communes_amqp_uri, communes_db_uri):
    return {
        "AMQP_URI": communes_amqp_uri,
        "DB_URIS": {"communes": communes_db_uri},
        "PUBLIC_URL": "http://portal.test",
        "ADHESION_CODE_KEY": "integration-test-adhesion-key",
        "OUTBOX_POLL_SECONDS": 0.2,
        "RPC_TIMEOUT_SECONDS": 10,
        "max_workers": 10,
    }


@pytest.fixture
def identity_for_communes_config(identity_config, communes_amqp_uri):
    """identity on communes' vhost (its database is the session's identity database)."""
    return {**identity_config, "AMQP_URI": communes_amqp_uri}


# ---------------------------------------------------------------- booking


@pytest.fixture(scope="session")
def booking_db_uri(pg_databases):
    uri = pg_databases.create("booking")
    upgrade("booking", uri)
    return uri


@pytest.fixture(scope="session")
def booking_amqp_uri(rabbit_vhosts):
    """booking's own vhost: its tests run communes there too (access checks, memberships, time zones)."""
    return rabbit_vhosts.amqp_uri("booking")


@pytest.fixture
def booking_config(booking_amqp_uri, booking_db_uri):
    return {
        "AMQP_URI": booking_amqp_uri,
        "DB_URIS": {"booking": booking_db_uri},
        "OUTBOX_POLL_SECONDS": 0.2,
        "RPC_TIMEOUT_SECONDS": 10,
        "HOLD_SWEEP_SECONDS": 0.2,
        "max_workers": 10,
    }


@pytest.fixture
def communes_for_booking_config(communes_config, booking_amqp_uri):
    """communes on booking's vhost (its database is the session's communes database)."""
    return {**communes_config, "AMQP_URI": booking_amqp_uri}


@pytest.fixture
def identity_for_booking_config(identity_config, booking_amqp_uri):
    """identity on booking's vhost (communes grants agents through it)."""
    return {**identity_config, "AMQP_URI": booking_amqp_uri}


# ---------------------------------------------------------------- billing


@pytest.fixture(scope="session")
def billing_db_uri(pg_databases):
    uri = pg_databases.create("billing")
    upgrade("billing", uri)
    return uri


@pytest.fixture(scope="session")
def billing_amqp_uri(rabbit_vhosts):
    """billing's own vhost: its tests run communes and booking there too (children, quotients,
    activities) and dispatch booking's events to it."""
    return rabbit_vhosts.amqp_uri("billing")


@pytest.fixture
def billing_config(billing_amqp_uri, billing_db_uri):
    return {
        "AMQP_URI": billing_amqp_uri,
        "DB_URIS": {"billing": billing_db_uri},
        "PUBLIC_URL": "http://portal.test",
        "PAYMENT_PROVIDER": "demo",
        "PAYMENT_SECRETS_KEY": "integration-test-payment-secrets-key",
        "OUTBOX_POLL_SECONDS": 0.2,
        "RPC_TIMEOUT_SECONDS": 10,
        "REFUND_RETRY_SECONDS": 0.5,
        "max_workers": 10,
    }


@pytest.fixture
def communes_for_billing_config(communes_config, billing_amqp_uri):
    return {**communes_config, "AMQP_URI": billing_amqp_uri}


@pytest.fixture
def identity_for_billing_config(identity_config, billing_amqp_uri):
    return {**identity_config, "AMQP_URI": billing_amqp_uri}


@pytest.fixture
def booking_for_billing_config(booking_config, billing_amqp_uri):
    return {**booking_config, "AMQP_URI": billing_amqp_uri}

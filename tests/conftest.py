"""Test harness. Integration and e2e tests use the machine's real PostgreSQL and RabbitMQ: each test
session gets its own RabbitMQ vhost and its own PostgreSQL databases, dropped at the end."""

import warnings

warnings.filterwarnings("ignore", category=DeprecationWarning, module="eventlet")
import eventlet  # noqa: E402

eventlet.monkey_patch()  # before anything imports socket/threading (nameko's plugin no longer does)

import os  # noqa: E402
import shutil  # noqa: E402
import subprocess  # noqa: E402
import uuid  # noqa: E402

import psycopg2  # noqa: E402
import pytest  # noqa: E402

from services.common import clock  # noqa: E402

PG_ADMIN_DSN = os.environ.get("TEST_PG_DSN", "host=127.0.0.1 port=5432 user=postgres dbname=postgres")
PG_URI_TEMPLATE = os.environ.get("TEST_PG_URI", "postgresql+psycopg2://postgres@127.0.0.1:5432/{name}")
AMQP_BASE = os.environ.get("TEST_AMQP_BASE", "amqp://guest:guest@127.0.0.1:5672")


def _rabbitmqctl(*args):
    exe = shutil.which("rabbitmqctl")
    if exe is None:
        pytest.fail("rabbitmqctl not found: RabbitMQ must be installed and running for these tests")
    subprocess.run([exe, "-q", *args], check=True, capture_output=True, timeout=60)


class RabbitVhosts:
    """Fresh RabbitMQ vhosts, deleted at the end: exchanges and queues never leak between runs, and
    long-lived consumers (the e2e platform's processes) never compete with another test's."""

    def __init__(self):
        self.created = []

    def amqp_uri(self, label):
        vhost = f"test-{label}-{uuid.uuid4().hex[:8]}"
        _rabbitmqctl("add_vhost", vhost)
        _rabbitmqctl("set_permissions", "-p", vhost, "guest", ".*", ".*", ".*")
        self.created.append(vhost)
        return f"{AMQP_BASE}/{vhost}"

    def delete_all(self):
        for vhost in self.created:
            _rabbitmqctl("delete_vhost", vhost)


@pytest.fixture(scope="session")
def rabbit_vhosts():
    vhosts = RabbitVhosts()
    yield vhosts
    vhosts.delete_all()


@pytest.fixture(scope="session")
def amqp_uri(rabbit_vhosts):
    return rabbit_vhosts.amqp_uri("shared")


class PgDatabases:
    """Creates throw-away PostgreSQL databases, dropped when the session ends."""

    def __init__(self):
        self.created = []

    def _admin(self):
        conn = psycopg2.connect(PG_ADMIN_DSN)
        conn.autocommit = True
        return conn

    def create(self, label):
        name = f"t_{label}_{uuid.uuid4().hex[:10]}"
        conn = self._admin()  # not `with conn`: that opens a transaction block
        with conn.cursor() as cur:
            cur.execute(f'CREATE DATABASE "{name}"')
        conn.close()
        self.created.append(name)
        return PG_URI_TEMPLATE.format(name=name)

    def drop_all(self):
        from services.common.db import dispose_engines

        dispose_engines()
        conn = self._admin()
        with conn.cursor() as cur:
            for name in self.created:
                cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
        conn.close()


@pytest.fixture(scope="session")
def pg_databases():
    databases = PgDatabases()
    yield databases
    databases.drop_all()


@pytest.fixture(autouse=True)
def _close_idle_connections():
    """Engines are cached per process; their idle pools would add up across tests against
    PostgreSQL's connection limit."""
    yield
    from services.common.db import dispose_engines

    dispose_engines()


@pytest.fixture(autouse=True)
def _reset_clock():
    clock.reset()
    yield
    clock.reset()

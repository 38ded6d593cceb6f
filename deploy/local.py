"""`make run` and `make migrate`: the platform on local defaults (SQLite files under var/, the local
RabbitMQ, emails written as .eml files under var/mail)."""

from __future__ import annotations

import os
import signal
import sys
import time
from urllib.parse import urlsplit

from kombu import Connection

from deploy.stack import Stack
from services.common import migrate
from services.common.config import REPO_ROOT

VAR = REPO_ROOT / "var"


def local_env() -> dict[str, str]:
    """Defaults for whatever the environment does not set."""
    port = os.environ.get("GATEWAY_PORT", "8000")
    invoices = urlsplit(os.environ.get("INVOICES_PUBLIC_URL") or "http://localhost:8001")
    defaults = {
        "AMQP_URI": "amqp://guest:guest@localhost:5672/",
        "IDENTITY_DB_URI": f"sqlite:///{VAR / 'identity.db'}",
        "NOTIFY_DB_URI": f"sqlite:///{VAR / 'notify.db'}",
        "COMMUNES_DB_URI": f"sqlite:///{VAR / 'communes.db'}",
        "BOOKING_DB_URI": f"sqlite:///{VAR / 'booking.db'}",
        "BILLING_DB_URI": f"sqlite:///{VAR / 'billing.db'}",
        "MAIL_DIR": str(VAR / "mail"),
        "GATEWAY_PORT": port,
        "WEB_SERVER_ADDRESS": f"{os.environ.get('GATEWAY_HOST', '127.0.0.1')}:{port}",
        "PUBLIC_URL": f"http://localhost:{port}",
        # the invoices site (its own port; identity registers http://localhost:8001/auth/callback)
        "INVOICES_WEB_ADDRESS": f"{os.environ.get('GATEWAY_HOST', '127.0.0.1')}:8001",
        "GATEWAY_URL": f"http://127.0.0.1:{port}",
        # the demo payment page links back to the invoices site (its ?return_to= on this origin only)
        "PAYMENT_RETURN_ORIGINS": f"{invoices.scheme}://{invoices.netloc}",
    }
    return {key: os.environ.get(key) or value for key, value in defaults.items()}


def check_broker(uri: str) -> bool:
    try:
        with Connection(uri, connect_timeout=3) as conn:
            conn.ensure_connection(max_retries=1)
        return True
    except Exception:  # noqa: BLE001 - any failure means "not reachable"
        return False


def run_migrations(env: dict[str, str]) -> None:
    migrate.upgrade("identity", env["IDENTITY_DB_URI"])
    migrate.upgrade("notify", env["NOTIFY_DB_URI"])
    migrate.upgrade("communes", env["COMMUNES_DB_URI"])
    migrate.upgrade("booking", env["BOOKING_DB_URI"])
    migrate.upgrade("billing", env["BILLING_DB_URI"])


def main(argv: list[str]) -> int:
    command = argv[0] if argv else "run"
    env = local_env()
    os.environ.update(env)
    VAR.mkdir(exist_ok=True)
    if command == "migrate":
        run_migrations(env)
        return 0
    if not check_broker(env["AMQP_URI"]):
        print(
            f"RabbitMQ is not reachable at {env['AMQP_URI']}.\n"
            "Start it (Debian: `sudo rabbitmq-server -detached` or `sudo systemctl start rabbitmq-server`;\n"
            "Docker: `docker run -d -p 5672:5672 rabbitmq:3`), or set AMQP_URI.",
            file=sys.stderr,
        )
        return 1
    run_migrations(env)
    stack = Stack(env, echo=True)
    signal.signal(signal.SIGTERM, lambda *_: (_ for _ in ()).throw(KeyboardInterrupt()))
    try:
        stack.start(timeout=90)
        print(
            f"\nPortail Famille is running: {stack.gateway_url}  (API docs: /api/v1/openapi.json)\n"
            "The invoices site: http://localhost:8001/\n"
            f"Emails are written to {env['MAIL_DIR']}. Ctrl-C stops everything.\n",
            flush=True,
        )
        while all(p.poll() is None for p in stack.processes.values()):
            time.sleep(0.5)
        print("a service stopped; stopping the platform", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 0
    finally:
        stack.stop()


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))

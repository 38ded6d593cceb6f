"""Before the test suite: PostgreSQL and RabbitMQ must answer. Start them if this machine has them
installed but stopped (as CI machines of this project do); otherwise fail loudly, saying how."""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import sys
import time

CHECKS = {
    "PostgreSQL": (os.environ.get("TEST_PG_HOST", "127.0.0.1"), int(os.environ.get("TEST_PG_PORT", "5432"))),
    "RabbitMQ": (
        os.environ.get("TEST_AMQP_HOST", "127.0.0.1"),
        int(os.environ.get("TEST_AMQP_PORT", "5672")),
    ),
}


def reachable(host: str, port: int) -> bool:
    try:
        with socket.create_connection((host, port), timeout=2):
            return True
    except OSError:
        return False


def start_commands(name: str) -> list[list[str]]:
    if name == "PostgreSQL" and shutil.which("pg_ctlcluster"):
        return [
            ["pg_ctlcluster", "--skip-systemctl-redirect", os.path.basename(version), "main", "start"]
            for version in glob.glob("/etc/postgresql/*")
        ]
    if name == "RabbitMQ" and shutil.which("rabbitmq-server"):
        return [["rabbitmq-server", "-detached"]]
    return []


def ensure(name: str, host: str, port: int) -> bool:
    if reachable(host, port):
        return True
    for command in start_commands(name):
        print(f"{name} is not answering on {host}:{port}; starting it: {' '.join(command)}", flush=True)
        subprocess.run(command, check=False, timeout=120)  # noqa: S603 - fixed commands
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        if reachable(host, port):
            return True
        time.sleep(1)
    return False


def main() -> int:
    missing = [name for name, (host, port) in CHECKS.items() if not ensure(name, host, port)]
    if missing:
        for name in missing:
            host, port = CHECKS[name]
            print(
                f"ERROR: {name} is required by the tests and is not reachable on {host}:{port}.",
                file=sys.stderr,
            )
        print(
            "Install and start them (Debian: apt-get install postgresql rabbitmq-server), "
            "or point TEST_PG_DSN / TEST_AMQP_BASE at running servers.",
            file=sys.stderr,
        )
        return 1
    if not shutil.which("rabbitmqctl"):
        print("ERROR: rabbitmqctl is needed to create the tests' RabbitMQ vhost.", file=sys.stderr)
        return 1
    print("PostgreSQL and RabbitMQ are reachable.")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""What every benchmark shares: throw-away databases (PostgreSQL when reachable, else SQLite),
migrated, and a RabbitMQ vhost of their own, all removed afterwards."""

from __future__ import annotations

import shutil
import statistics
import subprocess
import tempfile
import uuid
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from services.common.db import get_engine
from services.common.migrate import SERVICES_WITH_DB, upgrade

PG_ADMIN = "host=127.0.0.1 user=postgres dbname=postgres"


def database_uris(workdir: Path, services: Sequence[str] = SERVICES_WITH_DB) -> dict[str, str]:
    try:
        import psycopg2

        conn = psycopg2.connect(PG_ADMIN, connect_timeout=2)
        conn.autocommit = True
        uris = {}
        with conn.cursor() as cur:
            for service in services:
                name = f"bench_{service}_{uuid.uuid4().hex[:8]}"
                cur.execute(f'CREATE DATABASE "{name}"')
                uris[service] = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
        conn.close()
        return uris
    except Exception:  # noqa: BLE001 - fall back to SQLite
        return {s: f"sqlite:///{workdir / (s + '.db')}" for s in services}


def drop_databases(uris: dict[str, str]) -> None:
    for uri in uris.values():
        get_engine(uri).dispose()
    names = [u.rsplit("/", 1)[1] for u in uris.values() if u.startswith("postgresql")]
    if not names:
        return
    import psycopg2

    conn = psycopg2.connect(PG_ADMIN)
    conn.autocommit = True
    with conn.cursor() as cur:
        for name in names:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


@dataclass
class BenchEnvironment:
    workdir: Path
    amqp_uri: str
    uris: dict[str, str]

    @property
    def backend(self) -> str:
        return "PostgreSQL" if next(iter(self.uris.values())).startswith("postgresql") else "SQLite"


@contextmanager
def bench_environment(prefix: str, services: Sequence[str] = SERVICES_WITH_DB) -> Iterator[BenchEnvironment]:
    workdir = Path(tempfile.mkdtemp(prefix=f"pf-{prefix}-"))
    vhost = f"{prefix}-{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"], check=True
    )
    uris = database_uris(workdir, services)
    try:
        for service, uri in uris.items():
            upgrade(service, uri)
        yield BenchEnvironment(workdir, f"amqp://guest:guest@127.0.0.1:5672/{vhost}", uris)
    finally:
        drop_databases(uris)
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False)
        shutil.rmtree(workdir, ignore_errors=True)


def gateway_env(bench: BenchEnvironment, port: int) -> dict[str, str]:
    """The environment of the whole stack (deploy/stack.py), quiet, with the echo route on."""
    return {
        "AMQP_URI": bench.amqp_uri,
        **{f"{service.upper()}_DB_URI": uri for service, uri in bench.uris.items()},
        "MAIL_DIR": str(bench.workdir / "mail"),
        "GATEWAY_PORT": str(port),
        "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
        "PUBLIC_URL": f"http://localhost:{port}",
        "BENCH_ECHO_ENABLED": "true",
        "ACCESS_LOG_LEVEL": "WARNING",
        "LOG_LEVEL": "WARNING",
    }


def free_port() -> int:
    import socket

    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def percentile(sorted_values: list[float], fraction: float) -> float:
    return sorted_values[min(len(sorted_values) - 1, int(len(sorted_values) * fraction))]


def throughput(latencies: list[float], elapsed: float, errors: int) -> dict[str, float]:
    """requests, errors, rps, p50_ms, p99_ms of one load run (latencies in seconds)."""
    latencies = sorted(latencies)
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": percentile(latencies, 0.99) * 1000,
    }

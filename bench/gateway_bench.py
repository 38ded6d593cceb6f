"""Gateway benchmark: starts the stack (PostgreSQL if reachable, else SQLite; local RabbitMQ in a
throw-away vhost) and prints, side by side from one run, requests/s and p50/p99 latency of
  - GET /api/v1/_bench/echo   a bare HTTP -> RPC -> reply through the same gateway (the floor)
  - GET /api/v1/me            with a valid token (JWT check, identity.whoami RPC, cached communes)
  - POST /api/v1/auth/login   (Argon2id dominates)
and the ratio /me ÷ echo (target ≥ 0.5). Usage: python bench/gateway_bench.py [--seconds 10]
[--concurrency 16]."""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from deploy.stack import Stack  # noqa: E402
from services.common.migrate import upgrade  # noqa: E402

PASSWORD = "une phrase de passe pour le banc"


def load(url: str, seconds: float, concurrency: int, method: str = "GET", **kwargs) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    stop_at = time.monotonic() + seconds

    def worker() -> None:
        nonlocal errors
        session = requests.Session()
        mine: list[float] = []
        bad = 0
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            response = session.request(method, url, timeout=30, **kwargs)
            mine.append(time.perf_counter() - started)
            if response.status_code >= 400:
                bad += 1
        with lock:
            latencies.extend(mine)
            errors += bad

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    begun = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - begun
    latencies.sort()
    return {
        "requests": len(latencies),
        "errors": errors,
        "rps": len(latencies) / elapsed,
        "p50_ms": statistics.median(latencies) * 1000,
        "p99_ms": latencies[min(len(latencies) - 1, int(len(latencies) * 0.99))] * 1000,
    }


def database_uris(workdir: Path) -> dict[str, str]:
    try:
        import psycopg2

        conn = psycopg2.connect("host=127.0.0.1 user=postgres dbname=postgres", connect_timeout=2)
        conn.autocommit = True
        uris = {}
        with conn.cursor() as cur:
            for service in ("identity", "notify", "communes", "booking"):
                name = f"bench_{service}_{uuid.uuid4().hex[:8]}"
                cur.execute(f'CREATE DATABASE "{name}"')
                uris[service] = f"postgresql+psycopg2://postgres@127.0.0.1:5432/{name}"
        conn.close()
        return uris
    except Exception:  # noqa: BLE001 - fall back to SQLite
        return {
            s: f"sqlite:///{workdir / (s + '.db')}" for s in ("identity", "notify", "communes", "booking")
        }


def drop_databases(uris: dict[str, str]) -> None:
    pg = [u.rsplit("/", 1)[1] for u in uris.values() if u.startswith("postgresql")]
    if not pg:
        return
    import psycopg2

    conn = psycopg2.connect("host=127.0.0.1 user=postgres dbname=postgres")
    conn.autocommit = True
    with conn.cursor() as cur:
        for name in pg:
            cur.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    conn.close()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    workdir = Path(tempfile.mkdtemp(prefix="pf-bench-"))
    vhost = f"bench-{uuid.uuid4().hex[:8]}"
    subprocess.run(["rabbitmqctl", "-q", "add_vhost", vhost], check=True)
    subprocess.run(
        ["rabbitmqctl", "-q", "set_permissions", "-p", vhost, "guest", ".*", ".*", ".*"], check=True
    )
    uris = database_uris(workdir)
    for service, uri in uris.items():
        upgrade(service, uri)
    port = 18000 + uuid.uuid4().int % 1000
    env = {
        "AMQP_URI": f"amqp://guest:guest@127.0.0.1:5672/{vhost}",
        "IDENTITY_DB_URI": uris["identity"],
        "NOTIFY_DB_URI": uris["notify"],
        "COMMUNES_DB_URI": uris["communes"],
        "BOOKING_DB_URI": uris["booking"],
        "MAIL_DIR": str(workdir / "mail"),
        "GATEWAY_PORT": str(port),
        "WEB_SERVER_ADDRESS": f"127.0.0.1:{port}",
        "PUBLIC_URL": f"http://localhost:{port}",
        "BENCH_ECHO_ENABLED": "true",
        "ACCESS_LOG_LEVEL": "WARNING",
        "LOG_LEVEL": "WARNING",
    }
    stack = Stack(env, log_dir=workdir / "logs")
    try:
        stack.start(timeout=90)
        base = stack.gateway_url
        from services.identity.cli import create_admin

        email = f"bench-{uuid.uuid4().hex[:6]}@example.org"
        create_admin(email, PASSWORD, uris["identity"])
        token = requests.post(
            base + "/api/v1/auth/login", json={"email": email, "password": PASSWORD}, timeout=30
        ).json()["access_token"]
        auth = {"Authorization": f"Bearer {token}"}
        load(base + "/api/v1/_bench/echo", 2, args.concurrency)  # warm-up
        load(base + "/api/v1/me", 2, args.concurrency, headers=auth)
        results = {
            "echo (HTTP->RPC floor)": load(base + "/api/v1/_bench/echo", args.seconds, args.concurrency),
            "GET /api/v1/me": load(base + "/api/v1/me", args.seconds, args.concurrency, headers=auth),
            "POST /api/v1/auth/login": load(
                base + "/api/v1/auth/login",
                args.seconds,
                max(2, args.concurrency // 4),
                method="POST",
                json={"email": email, "password": PASSWORD},
            ),
        }
    finally:
        stack.stop()
        drop_databases(uris)
        subprocess.run(["rabbitmqctl", "-q", "delete_vhost", vhost], check=False)
        shutil.rmtree(workdir, ignore_errors=True)

    backend = "PostgreSQL" if uris["identity"].startswith("postgresql") else "SQLite"
    print(f"\ngateway benchmark: {args.seconds:.0f}s per endpoint, {args.concurrency} clients, {backend}")
    print(f"{'endpoint':<26}{'req/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for name, r in results.items():
        print(f"{name:<26}{r['rps']:>9.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}{r['errors']:>8.0f}")
    ratio = results["GET /api/v1/me"]["rps"] / results["echo (HTTP->RPC floor)"]["rps"]
    print(f"\n/me throughput ÷ echo throughput = {ratio:.2f} (target ≥ 0.50)")
    print(
        "/me = token check + identity.whoami RPC + the account's communes, which the gateway caches\n"
        "(MEMBERSHIP_CACHE_SECONDS); the first /me after login or a new link adds a communes RPC."
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())

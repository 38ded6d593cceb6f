"""Gateway benchmark: starts the stack (PostgreSQL if reachable, else SQLite; local RabbitMQ in a
throw-away vhost) and prints, side by side from one run, requests/s and p50/p99 latency of
  - GET /api/v1/_bench/echo   a bare HTTP -> RPC -> reply through the same gateway (the floor)
  - GET /api/v1/me            with a valid token (JWT check, identity.whoami RPC, cached communes)
  - POST /api/v1/auth/login   (Argon2id dominates)
and the ratio /me ÷ echo (target ≥ 0.5). Usage: python bench/gateway_bench.py [--seconds 10]
[--concurrency 16]."""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
from pathlib import Path

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import BenchEnvironment, bench_environment, free_port, gateway_env, throughput  # noqa: E402
from deploy.stack import Stack  # noqa: E402

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
    return throughput(latencies, elapsed, errors)


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    args = parser.parse_args()

    with bench_environment("bench-gateway") as bench:
        results = measure(bench, args)
    print(
        f"\ngateway benchmark: {args.seconds:.0f}s per endpoint, {args.concurrency} clients, {bench.backend}"
    )
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


def measure(bench: BenchEnvironment, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    stack = Stack(gateway_env(bench, free_port()), log_dir=bench.workdir / "logs")
    try:
        stack.start(timeout=90)
        base = stack.gateway_url
        from services.identity.cli import create_admin

        email = f"bench-{uuid.uuid4().hex[:6]}@example.org"
        create_admin(email, PASSWORD, bench.uris["identity"])
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
    return results


if __name__ == "__main__":
    sys.exit(main())

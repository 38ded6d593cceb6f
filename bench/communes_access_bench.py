"""Access-check benchmark: starts identity and communes (`nameko run`, as deployed) on PostgreSQL if
reachable (else SQLite) and a throw-away RabbitMQ vhost, seeds one commune, family, child and linked
account, then measures, in one run and with the same clients, calls/s and p50/p99 latency of
  - identity.echo               an RPC that does nothing (the floor of an RPC round trip)
  - communes.check_child_access the check other services make on every request (one indexed query)
through nameko's ClusterRpcProxy (one proxy per client thread), and prints the ratio
check_child_access ÷ echo. Every check's answer is verified (allowed for the linked account).
Usage: python bench/communes_access_bench.py [--seconds 10] [--concurrency 8]."""

from __future__ import annotations

import argparse
import sys
import threading
import time
import uuid
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
warnings.simplefilter("ignore")

from nameko.standalone.rpc import ClusterRpcProxy  # noqa: E402
from sqlalchemy.orm import Session  # noqa: E402

from bench.harness import BenchEnvironment, bench_environment, throughput  # noqa: E402
from deploy.stack import Stack  # noqa: E402
from services.common.context import Caller  # noqa: E402
from services.common.db import get_engine  # noqa: E402
from services.communes import adhesion, communes, families  # noqa: E402
from services.communes.settings import CommunesSettings  # noqa: E402

SERVICES = ("identity", "communes")
KEY = "bench-adhesion-key"


def seed(uri: str) -> tuple[str, str]:
    """A commune, a family with a child, and an account linked to it: (account_id, child_id)."""
    admin = Caller(account_id=str(uuid.uuid4()), roles=("admin",))
    settings = CommunesSettings(adhesion_code_key=KEY.encode())
    account_id = str(uuid.uuid4())
    with Session(get_engine(uri)) as session, session.begin():
        commune = communes.create_commune(session, admin.account_id, "Bench-sur-Mer", "99999")
        family = families.create_family(session, admin, commune.id, "B-1", "Famille Banc", "banc@example.org")
        child = families.add_child(session, admin, commune.id, family["id"], "Léa", "Banc", "2019-05-04")
        code = adhesion.issue_code(session, settings, admin, commune.id, family["id"])["code"]
        outcome = adhesion.redeem(session, settings, account_id, None, code)
        assert not isinstance(outcome, Exception), outcome
    return account_id, child["id"]


def wait_ready(config: dict, timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while True:
        try:
            with ClusterRpcProxy(config, timeout=5) as rpc:
                rpc.identity.health()
                rpc.communes.health()
                return
        except Exception:
            if time.monotonic() > deadline:
                raise
            time.sleep(0.5)


def load(config: dict, seconds: float, concurrency: int, make_call) -> dict[str, float]:
    latencies: list[float] = []
    errors = 0
    lock = threading.Lock()
    start = threading.Barrier(concurrency + 1)
    stop_at = [0.0]

    def worker() -> None:
        nonlocal errors
        mine: list[float] = []
        bad = 0
        with ClusterRpcProxy(config, timeout=30) as rpc:
            start.wait()
            while time.monotonic() < stop_at[0]:
                began = time.perf_counter()
                try:
                    ok = make_call(rpc)
                except Exception:  # noqa: BLE001 - counted
                    ok = False
                mine.append(time.perf_counter() - began)
                bad += 0 if ok else 1
        with lock:
            latencies.extend(mine)
            errors += bad

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    for thread in threads:
        thread.start()
    stop_at[0] = time.monotonic() + 3600
    start.wait()
    begun = time.monotonic()
    stop_at[0] = begun + seconds
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - begun
    return throughput(latencies, elapsed, errors)


def measure(bench: BenchEnvironment, args: argparse.Namespace) -> dict[str, dict[str, float]]:
    account_id, child_id = seed(bench.uris["communes"])
    env = {
        "AMQP_URI": bench.amqp_uri,
        "IDENTITY_DB_URI": bench.uris["identity"],
        "COMMUNES_DB_URI": bench.uris["communes"],
        "ADHESION_CODE_KEY": KEY,
        "LOG_LEVEL": "WARNING",
    }
    config = {"AMQP_URI": bench.amqp_uri}
    stack = Stack(env, log_dir=bench.workdir / "logs")

    def echo(rpc) -> bool:
        return rpc.identity.echo("x") == "x"

    def check(rpc) -> bool:
        return rpc.communes.check_child_access(account_id, child_id)["allowed"] is True

    try:
        for service in SERVICES:
            stack.start_service(service)
        wait_ready(config)
        load(config, 2, args.concurrency, echo)  # warm-up (connections, pools)
        load(config, 2, args.concurrency, check)
        return {
            "identity.echo (floor)": load(config, args.seconds, args.concurrency, echo),
            "communes.check_child_access": load(config, args.seconds, args.concurrency, check),
        }
    finally:
        stack.stop()


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=8)
    args = parser.parse_args()

    with bench_environment("bench-communes", SERVICES) as bench:
        results = measure(bench, args)
    backend = bench.backend
    print(f"\naccess-check benchmark: {args.seconds:.0f}s per RPC, {args.concurrency} clients, {backend}")
    print(f"{'rpc':<30}{'calls/s':>9}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}")
    for name, r in results.items():
        print(f"{name:<30}{r['rps']:>9.0f}{r['p50_ms']:>9.2f}{r['p99_ms']:>9.2f}{r['errors']:>8.0f}")
    ratio = results["communes.check_child_access"]["rps"] / results["identity.echo (floor)"]["rps"]
    print(f"\ncheck_child_access throughput ÷ echo throughput = {ratio:.2f}")
    return 0 if all(r["errors"] == 0 for r in results.values()) else 1


if __name__ == "__main__":
    sys.exit(main())

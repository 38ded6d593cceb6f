"""Booking benchmark: starts the whole stack (every service, PostgreSQL if reachable, else SQLite; local
RabbitMQ in a throw-away vhost) like bench/gateway_bench.py and prints, from one run:

  (a) GET /api/v1/children/{id}/calendar for one month, beside the bare nameko echo (target: at
      least half the echo's throughput);
  (b) a 5-day cart per parent (POST /api/v1/cart/items + POST /api/v1/cart/validate with an
      Idempotency-Key), beside the same echo;
  (c) the opening rush: PARENTS parents (2,500), each with a linked child and a cart item for the same
      day prepared beforehand, all POST /api/v1/cart/validate at once (released by a barrier) for a
      day with PLACES places (500): confirmed / waitlisted / failed counts, 5xx, p50/p99 latency,
      wall time, and whether exactly PLACES were confirmed, no 5xx and every parent answered
      (target: p99 under 10 s on a 2-core machine with every service running).

It prints figures and never asserts on timings.

Seeding bypasses the API ON PURPOSE: the commune, the activities, the families, children and
account-family links are inserted directly into communes' and booking's databases with the services'
own models and functions, the accounts and their login sessions into identity's database, and the
access tokens are minted with identity's own signing key and its own `accounts.access_token` (same
claims, a real `sid`). 2,500 registrations, email verifications, logins (Argon2id) and adhesion-code
redemptions through HTTP would take minutes and measure something else. The tokens live for an hour
(ACCESS_TOKEN_TTL of the minting side only) so that a long run does not outlive them.

Usage: python bench/booking_bench.py [--seconds 10] [--concurrency 16] [--parents 2500]
[--places 500] [--rush-connections 500] [--gateway-workers N] [--booking-workers N]
[--communes-workers N] [--rpc-timeout S] [--skip-ab]"""

from __future__ import annotations

import argparse
import datetime as dt
import itertools
import os
import shutil
import statistics
import sys
import threading
import time
import uuid
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any

import requests

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.gateway_bench import load  # noqa: E402
from bench.harness import bench_environment, free_port, gateway_env, percentile, throughput  # noqa: E402
from deploy.stack import Stack  # noqa: E402

MONDAY = 0


# --- seeding (directly in the databases, see the module's docstring) ---------------------------------


def seed(uris: dict[str, str], public_url: str, parents: int, places: int) -> dict[str, Any]:
    """The commune, three activities, `parents` accounts each linked to a family with one child, their
    login sessions and access tokens. Returns ids, tokens and the days used."""
    from sqlalchemy import create_engine, insert
    from sqlalchemy.orm import Session

    from services.booking import activities
    from services.common.context import Caller
    from services.communes.models import Child, Commune, Family, FamilyLink
    from services.identity import accounts
    from services.identity.models import Account, LoginSession
    from services.identity.settings import IdentitySettings

    now = dt.datetime.now(dt.UTC)
    today = now.date()
    # the rush day and the 5-day weeks start on a Monday at least 8 days ahead (any deadline is open)
    first_monday = today + dt.timedelta(days=8 + (MONDAY - (today + dt.timedelta(days=8)).weekday()) % 7)
    commune_id = str(uuid.uuid4())

    started = time.perf_counter()
    communes_engine = create_engine(uris["communes"])
    families = [str(uuid.uuid4()) for _ in range(parents)]
    children = [str(uuid.uuid4()) for _ in range(parents)]
    account_ids = [str(uuid.uuid4()) for _ in range(parents)]
    with Session(communes_engine) as session, session.begin():
        session.add(
            Commune(
                id=commune_id,
                name="Bancville",
                insee_code=f"{uuid.uuid4().int % 100000:05d}",
                timezone="Europe/Paris",
                created_at=now,
            )
        )
        session.flush()
        session.execute(
            insert(Family),
            [
                {
                    "id": fid,
                    "commune_id": commune_id,
                    "reference": f"F{i:05d}",
                    "name": f"Famille {i}",
                    "email": f"famille{i}@example.org",
                    "created_at": now,
                    "updated_at": now,
                }
                for i, fid in enumerate(families)
            ],
        )
        session.execute(
            insert(Child),
            [
                {
                    "id": cid,
                    "family_id": fid,
                    "commune_id": commune_id,
                    "first_name": "Enfant",
                    "last_name": f"N{i}",
                    "birth_date": dt.date(2018, 1, 1) + dt.timedelta(days=i % 700),
                    "class_name": "CP",
                    "created_at": now,
                }
                for i, (cid, fid) in enumerate(zip(children, families, strict=True))
            ],
        )
        session.execute(
            insert(FamilyLink),
            [
                {"id": str(uuid.uuid4()), "account_id": aid, "family_id": fid, "commune_id": commune_id}
                | {"linked_at": now}
                for aid, fid in zip(account_ids, families, strict=True)
            ],
        )
    communes_engine.dispose()

    booking_engine = create_engine(uris["booking"])
    agent = Caller(account_id=str(uuid.uuid4()), roles=(f"agent:{commune_id}",))
    common = {
        "kind": "canteen",
        "billing_mode": "postpaid",
        "weekdays": ["monday", "tuesday", "wednesday", "thursday", "friday"],
        "start_date": today.isoformat(),
        "end_date": (today + dt.timedelta(days=180)).isoformat(),
        "booking_deadline": {"days_before": 2, "at": "10:00"},
        "cancellation_deadline": {"days_before": 1, "at": "18:00"},
        "cancellation_approval": "auto",
    }
    with Session(booking_engine) as session, session.begin():
        canteen = activities.create_activity(
            session,
            agent,
            commune_id,
            "Europe/Paris",
            {**common, "name": "Cantine", "capacity": parents * 2, "waiting_list": False},
        )
        care = activities.create_activity(
            session,
            agent,
            commune_id,
            "Europe/Paris",
            {**common, "name": "Garderie", "kind": "morning_care", "capacity": 30, "waiting_list": True},
        )
        rush = activities.create_activity(
            session,
            agent,
            commune_id,
            "Europe/Paris",
            {
                **common,
                "name": "Stage d'été",
                "kind": "holiday_camp",
                "capacity": places,
                "waiting_list": True,
            },
        )
    booking_engine.dispose()

    identity_engine = create_engine(uris["identity"])
    settings = IdentitySettings.from_config({"PUBLIC_URL": public_url, "ACCESS_TOKEN_TTL": 3600})
    tokens = []
    with Session(identity_engine) as session, session.begin():
        session.execute(
            insert(Account),
            [
                {
                    "id": aid,
                    "email": f"parent{i}@example.org",
                    "email_normalized": f"parent{i}@example.org",
                    "password_hash": "!seeded-by-the-benchmark-no-login",
                    "locale": "fr",
                    "email_verified_at": now,
                    "created_at": now,
                    "password_changed_at": now,
                }
                for i, aid in enumerate(account_ids)
            ],
        )
        sids = [str(uuid.uuid4()) for _ in account_ids]
        session.execute(
            insert(LoginSession),
            [
                {
                    "id": sid,
                    "account_id": aid,
                    "kind": "api",
                    "created_at": now,
                    "expires_at": now + dt.timedelta(days=30),
                }
                for sid, aid in zip(sids, account_ids, strict=True)
            ],
        )
        for aid, sid in zip(account_ids, sids, strict=True):
            account = session.get(Account, aid)
            tokens.append(accounts.access_token(session, settings, account, sid))
    identity_engine.dispose()
    return {
        "commune_id": commune_id,
        "children": children,
        "tokens": tokens,
        "canteen": canteen["id"],
        "care": care["id"],
        "rush": rush["id"],
        "first_monday": first_monday,
        "rush_day": first_monday + dt.timedelta(days=2),  # a Wednesday
        "seconds": time.perf_counter() - started,
    }


# --- measuring ----------------------------------------------------------------------------------------


def load_per_parent(seconds: float, concurrency: int, step: Any) -> dict[str, float]:
    """Like gateway_bench.load, but each iteration is `step(http_session, n)` (n: a global counter, so
    iterations spread over the parents), which returns (ok, http_requests_made)."""
    latencies: list[float] = []
    counts = Counter()
    lock = threading.Lock()
    counter = itertools.count()
    stop_at = time.monotonic() + seconds

    def worker() -> None:
        session = requests.Session()
        mine: list[float] = []
        bad = calls = 0
        while time.monotonic() < stop_at:
            started = time.perf_counter()
            ok, made = step(session, next(counter))
            mine.append(time.perf_counter() - started)
            calls += made
            bad += not ok
        with lock:
            latencies.extend(mine)
            counts.update(errors=bad, calls=calls)

    threads = [threading.Thread(target=worker) for _ in range(concurrency)]
    begun = time.monotonic()
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - begun
    return {**throughput(latencies, elapsed, counts["errors"]), "http_rps": counts["calls"] / elapsed}


def auth(token: str, **extra: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {token}", **extra}


def calendar_step(base: str, data: dict[str, Any]) -> Any:
    first = data["first_monday"].replace(day=1)
    last = (first + dt.timedelta(days=32)).replace(day=1) - dt.timedelta(days=1)
    params = {"from": first.isoformat(), "to": last.isoformat()}
    n_parents = len(data["tokens"])

    def step(session: requests.Session, n: int) -> tuple[bool, int]:
        i = n % n_parents
        response = session.get(
            f"{base}/api/v1/children/{data['children'][i]}/calendar",
            params=params,
            headers=auth(data["tokens"][i]),
            timeout=60,
        )
        return response.status_code == 200 and len(response.json()["days"]) >= 20, 1

    return step


def cart_step(base: str, data: dict[str, Any]) -> Any:
    """Parent n % P books the 5 weekdays of week n // P (so no day is booked twice by one child)."""
    n_parents = len(data["tokens"])

    def step(session: requests.Session, n: int) -> tuple[bool, int]:
        i, week = n % n_parents, n // n_parents
        monday = data["first_monday"] + dt.timedelta(weeks=week)
        dates = [(monday + dt.timedelta(days=d)).isoformat() for d in range(5)]
        headers = auth(data["tokens"][i])
        added = session.post(
            f"{base}/api/v1/cart/items",
            json={"child_id": data["children"][i], "activity_id": data["canteen"], "dates": dates},
            headers=headers,
            timeout=60,
        )
        if added.status_code != 201:
            return False, 1
        validated = session.post(
            f"{base}/api/v1/cart/validate",
            headers={**headers, "Idempotency-Key": f"bench-b-{n}"},
            timeout=60,
        )
        ok = validated.status_code == 200 and all(
            r["outcome"] == "confirmed" for r in validated.json()["results"]
        )
        return ok and len(validated.json()["results"]) == 5, 2

    return step


def prepare_rush(base: str, data: dict[str, Any], concurrency: int) -> int:
    """Each parent puts the rush day in its cart (through the API: it is the parents' own step, done
    before the opening). Returns how many carts failed to be prepared."""
    day = data["rush_day"].isoformat()

    def one(i: int) -> bool:
        response = requests.post(
            f"{base}/api/v1/cart/items",
            json={"child_id": data["children"][i], "activity_id": data["rush"], "dates": [day]},
            headers=auth(data["tokens"][i]),
            timeout=60,
        )
        return response.status_code == 201

    with ThreadPoolExecutor(concurrency) as pool:
        return sum(not ok for ok in pool.map(one, range(len(data["tokens"]))))


def validate_request(base: str, data: dict[str, Any]) -> Any:
    """Parent i validates its cart: (HTTP status, the day's outcome)."""

    def send(session: requests.Session, i: int) -> tuple[int, Any]:
        response = session.post(
            f"{base}/api/v1/cart/validate",
            headers=auth(data["tokens"][i], **{"Idempotency-Key": f"rush-{i}"}),
            timeout=120,
        )
        status = response.status_code
        return status, response.json()["results"][0]["outcome"] if status == 200 else None

    return send


def echo_request(base: str) -> Any:
    """The bare HTTP→RPC echo in place of a validation: the floor of a rush on this machine."""

    def send(session: requests.Session, i: int) -> tuple[int, Any]:
        response = session.get(f"{base}/api/v1/_bench/echo", timeout=120)
        return response.status_code, None

    return send


def rush(send: Any, n: int, connections: int) -> dict[str, Any]:
    """`connections` threads, each with its own HTTP connection and its share of the n parents, wait on
    a barrier; released together, each sends its parents' requests (`send(session, i)`) one after
    another. A parent's latency is from the barrier's release to its answer (what the parent sees
    when the page opens)."""
    shares = [list(range(k, n, connections)) for k in range(connections)]
    released = [0.0]
    results: list[tuple[int, Any, float, float]] = []  # (status or -1, outcome, since release, own)
    lock = threading.Lock()

    def worker(share: list[int]) -> None:
        session = requests.Session()
        mine = []
        barrier.wait()
        for i in share:
            sent = time.perf_counter()
            try:
                status, outcome = send(session, i)
            except (requests.RequestException, ValueError, KeyError, IndexError):
                status, outcome = -1, None
            done = time.perf_counter()
            mine.append((status, outcome, done - released[0], done - sent))
        with lock:
            results.extend(mine)

    threads = [threading.Thread(target=worker, args=(share,)) for share in shares if share]
    barrier = threading.Barrier(len(threads) + 1)
    for thread in threads:
        thread.start()
    time.sleep(0.5)
    released[0] = time.perf_counter()
    barrier.wait()
    for thread in threads:
        thread.join()
    wall = time.perf_counter() - released[0]
    statuses = Counter(status for status, *_ in results)
    outcomes = Counter(outcome for status, outcome, *_ in results if status == 200)
    since_release = sorted(r[2] for r in results)
    own = sorted(r[3] for r in results)
    return {
        "threads": len(threads),
        "answered": sum(1 for s, *_ in results if s != -1),
        "statuses": dict(sorted(statuses.items())),
        "outcomes": dict(outcomes),
        "5xx": sum(count for status, count in statuses.items() if status >= 500),
        "p50": statistics.median(since_release),
        "p99": percentile(since_release, 0.99),
        "max": since_release[-1],
        "own_p50": statistics.median(own),
        "own_p99": percentile(own, 0.99),
        "wall": wall,
    }


def cpu_seconds(pids: dict[str, int]) -> dict[str, float]:
    """User + system CPU seconds used so far by each process (Linux /proc), and by the machine's
    PostgreSQL and RabbitMQ (every process of theirs), to show where a run's time goes."""
    ticks = os.sysconf("SC_CLK_TCK")

    def used(pid: int | str) -> tuple[str, float]:
        try:
            head, tail = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)
        except OSError:
            return "", 0.0
        fields = tail.split()
        return head.split("(", 1)[1], (int(fields[11]) + int(fields[12])) / ticks

    found = {name: used(pid)[1] for name, pid in pids.items()}
    servers = {"postgres": "postgresql", "beam.smp": "rabbitmq"}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            command, seconds = used(entry)
            if command in servers:
                found[servers[command]] = found.get(servers[command], 0.0) + seconds
    return found


def rush_day_in_database(uri: str, activity_id: str, day: dt.date) -> dict[str, Any]:
    from sqlalchemy import create_engine, func, select
    from sqlalchemy.orm import Session

    from services.booking.models import Booking, Occurrence

    engine = create_engine(uri)
    with Session(engine) as session:
        by_status = dict(
            session.execute(
                select(Booking.status, func.count())
                .where(Booking.activity_id == activity_id, Booking.date == day)
                .group_by(Booking.status)
            ).all()
        )
        taken = session.scalar(
            select(Occurrence.taken).where(Occurrence.activity_id == activity_id, Occurrence.date == day)
        )
    engine.dispose()
    return {"bookings": by_status, "taken": taken}


# --- the run ------------------------------------------------------------------------------------------


def print_table(title: str, rows: dict[str, dict[str, float]], echo_rps: float) -> None:
    print(f"\n{title}")
    print(f"{'endpoint':<44}{'ops/s':>8}{'HTTP/s':>8}{'p50 ms':>9}{'p99 ms':>9}{'errors':>8}{'÷ echo':>8}")
    for name, r in rows.items():
        http = r.get("http_rps", r["rps"])
        ratio = r["rps"] / echo_rps
        print(
            f"{name:<44}{r['rps']:>8.0f}{http:>8.0f}{r['p50_ms']:>9.1f}{r['p99_ms']:>9.1f}"
            f"{r['errors']:>8.0f}{ratio:>8.2f}"
        )
    for name, r in rows.items():
        cpu = r.get("cpu_ms_per_op", {})
        print(
            f"  CPU per op of {name.split(' (')[0]}: {sum(cpu.values()):.1f} ms = "
            + ", ".join(f"{k} {v:.1f}" for k, v in sorted(cpu.items(), key=lambda kv: -kv[1]) if v >= 0.05)
        )


def print_rush(args: argparse.Namespace, results: dict[str, Any], logs: dict[str, str]) -> None:
    r = results["rush"]
    confirmed = r["outcomes"].get("confirmed", 0)
    waitlisted = r["outcomes"].get("waitlisted", 0)
    failed = args.parents - confirmed - waitlisted
    print(
        f"\n(c) opening rush: {args.parents} parents, {args.places} places, "
        f"{r['threads']} concurrent connections released by a barrier"
    )
    print(
        f"  confirmed {confirmed}, waitlisted {waitlisted}, failed {failed} (HTTP statuses {r['statuses']})"
    )
    print(f"  5xx {r['5xx']}, answered {r['answered']}/{args.parents}")
    print(
        f"  latency from the release: p50 {r['p50']:.2f}s, p99 {r['p99']:.2f}s, max {r['max']:.2f}s; "
        f"per request once sent: p50 {r['own_p50']:.2f}s, p99 {r['own_p99']:.2f}s"
    )
    print(f"  wall time {r['wall']:.2f}s ({args.parents / r['wall']:.0f} validations/s)")
    e = results["rush_echo"]
    print(
        f"  baseline, the same release on the bare echo (HTTP->RPC, no work): p50 {e['p50']:.2f}s, "
        f"p99 {e['p99']:.2f}s, wall {e['wall']:.2f}s ({args.parents / e['wall']:.0f}/s), "
        f"statuses {e['statuses']}"
    )
    print(f"  database: {results['db']}")
    cpu = results["rush_cpu"]
    print(
        f"  CPU during the rush: {sum(cpu.values()):.1f}s in all, "
        f"{1000 * sum(cpu.values()) / args.parents:.1f} ms per validation; by process: "
        + ", ".join(f"{name} {seconds:.1f}s" for name, seconds in sorted(cpu.items(), key=lambda kv: -kv[1]))
    )
    exact = confirmed == args.places and results["db"]["bookings"].get("confirmed") == args.places
    print(
        f"  exactly {args.places} confirmed: {'yes' if exact else 'NO'}; "
        f"no 5xx: {'yes' if not r['5xx'] else 'NO'}; "
        f"every parent answered: {'yes' if r['answered'] == args.parents else 'NO'}; "
        f"p99 < 10 s: {'yes' if r['p99'] < 10 else 'NO'}"
    )
    if r["5xx"] or r["answered"] != args.parents:
        for name, tail in sorted(logs.items()):
            if "Error" in tail or "Traceback" in tail:
                print(f"\n--- tail of {name} ---\n{tail[-1500:]}")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--seconds", type=float, default=10)
    parser.add_argument("--concurrency", type=int, default=16)
    parser.add_argument("--parents", type=int, default=2500)
    parser.add_argument("--places", type=int, default=500)
    parser.add_argument("--rush-connections", type=int, default=500)
    parser.add_argument("--gateway-workers", type=int, help="MAX_WORKERS of the gateway (default 50)")
    parser.add_argument("--booking-workers", type=int, help="MAX_WORKERS of booking (default 10)")
    parser.add_argument("--communes-workers", type=int, help="MAX_WORKERS of communes (default 10)")
    parser.add_argument("--rpc-timeout", type=float, help="RPC_TIMEOUT_SECONDS of every service (default 5)")
    parser.add_argument("--skip-ab", action="store_true", help="only the rush (c)")
    parser.add_argument("--skip-rush", action="store_true", help="only (a) and (b)")
    args = parser.parse_args()

    with bench_environment("bench-booking") as bench:
        uris, workdir = bench.uris, bench.workdir
        env = gateway_env(bench, free_port())
        public_url = env["PUBLIC_URL"]
        if args.rpc_timeout:
            env["RPC_TIMEOUT_SECONDS"] = str(args.rpc_timeout)
        # one MAX_WORKERS per service: Stack gives every process the same environment, so each service is
        # started with its own copy (its database pool is max_workers + as many overflow connections)
        workers = {
            "gateway": args.gateway_workers,
            "booking": args.booking_workers,
            "communes": args.communes_workers,
        }
        settings_used = {k: v for k, v in workers.items() if v} | (
            {"RPC_TIMEOUT_SECONDS": args.rpc_timeout} if args.rpc_timeout else {}
        )
        stack = Stack(env, log_dir=workdir / "logs")
        results: dict[str, Any] = {}
        try:
            base_env = dict(stack.env)
            for service in ("identity", "notify", "communes", "booking", "billing", "gateway"):
                stack.env = {
                    **base_env,
                    **({"MAX_WORKERS": str(workers[service])} if workers.get(service) else {}),
                }
                stack.start_service(service)
            stack.env = base_env
            stack.wait_ready(timeout=90)
            base = stack.gateway_url
            data = seed(uris, public_url, args.parents, args.places)
            print(f"seeded {args.parents} parents/children/links/sessions/tokens in {data['seconds']:.1f}s")

            pids = {name: p.pid for name, p in stack.processes.items()} | {"client": os.getpid()}

            def measured(run: Any) -> dict[str, Any]:
                """`run()`'s figures, with the CPU each process spent per operation meanwhile."""
                before = cpu_seconds(pids)
                figures = run()
                after = cpu_seconds(pids)
                spent = {k: after[k] - before[k] for k in after if k in before}
                return {
                    **figures,
                    "cpu_ms_per_op": {k: 1000 * v / figures["requests"] for k, v in spent.items()},
                }

            if not args.skip_ab:
                echo = base + "/api/v1/_bench/echo"
                load(echo, 2, args.concurrency)  # warm-up
                load_per_parent(2, args.concurrency, calendar_step(base, data))
                results["echo"] = measured(lambda: load(echo, args.seconds, args.concurrency))
                results["calendar"] = measured(
                    lambda: load_per_parent(args.seconds, args.concurrency, calendar_step(base, data))
                )
                results["echo2"] = measured(lambda: load(echo, args.seconds, args.concurrency))
                results["cart"] = measured(
                    lambda: load_per_parent(args.seconds, args.concurrency, cart_step(base, data))
                )

            if not args.skip_rush:
                started = time.perf_counter()
                failed_prep = prepare_rush(base, data, args.concurrency)
                print(
                    f"rush carts prepared through the API in {time.perf_counter() - started:.1f}s "
                    f"({failed_prep} failed)"
                )
                # the same release of as many parents on the bare echo: what this machine can answer at
                # best, whatever a validation costs
                results["rush_echo"] = rush(echo_request(base), args.parents, args.rush_connections)
                cpu_before = cpu_seconds(pids)
                results["rush"] = rush(validate_request(base, data), args.parents, args.rush_connections)
                cpu_after = cpu_seconds(pids)
                results["rush_cpu"] = {k: cpu_after[k] - cpu_before[k] for k in cpu_after if k in cpu_before}
                time.sleep(1)
                results["db"] = rush_day_in_database(uris["booking"], data["rush"], data["rush_day"])
            logs = {p.name: p.read_text(errors="replace")[-3000:] for p in (workdir / "logs").glob("*.log")}
        finally:
            stack.stop()
            if os.environ.get("BENCH_KEEP_LOGS"):
                shutil.copytree(workdir / "logs", "/tmp/pf-bench-booking-logs", dirs_exist_ok=True)
                print("logs kept in /tmp/pf-bench-booking-logs")
    backend = bench.backend
    print(
        f"\nbooking benchmark, {backend}, {os.cpu_count()} cores, every service running; "
        f"settings: {settings_used or 'defaults'}"
    )
    if "echo" in results:
        print_table(
            f"(a) {args.seconds:.0f}s, {args.concurrency} clients",
            {
                "echo (HTTP->RPC floor)": results["echo"],
                "GET /children/{id}/calendar (one month)": results["calendar"],
            },
            results["echo"]["rps"],
        )
        ratio = results["calendar"]["rps"] / results["echo"]["rps"]
        print(f"calendar ÷ echo = {ratio:.2f} (target ≥ 0.50: {'met' if ratio >= 0.5 else 'NOT met'})")
        print_table(
            f"(b) {args.seconds:.0f}s, {args.concurrency} clients; one op = add 5 days + validate",
            {"echo (HTTP->RPC floor)": results["echo2"], "5-day cart (2 HTTP calls)": results["cart"]},
            results["echo2"]["rps"],
        )
    if "rush" in results:
        print_rush(args, results, logs)
    return 0


if __name__ == "__main__":
    sys.exit(main())

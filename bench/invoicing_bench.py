"""Month-end invoicing benchmark (issue 6): billing's run for a commune of 10,000 families with 20
postpaid days each (200,000 days), then 20,000 families, on PostgreSQL (a throw-away database per size,
migrated with the project's migrate helper, dropped afterwards; SQLite only if PostgreSQL is not
reachable, and then said so). It prints, per size: the run's time, invoice lines and days per second,
the peak of Python allocations (tracemalloc) and the growth of the process's max RSS; then the ratio
time(20k) / time(10k) (target ≤ 2.2) and whether the 200,000-day month took under 60 s. It prints
figures and never asserts on timings.

What is timed is `services.billing.invoicing.run_month(...)` alone, called in a child process that does
nothing else (so its max RSS is the run's, not the seeding's), without tracemalloc (which slows every
allocation); a second child runs the same month of a twin commune under tracemalloc for the peak of
Python allocations (its time is printed too, marked as traced). `--no-trace` skips the twin.

Seeding bypasses booking's events ON PURPOSE: billing's own rows are written directly with its models
and bulk inserts (COPY on PostgreSQL) — the tariff (bands by quotient, rule "booked"), and per family
one child with 20 booked days of the month in `billable_days` (one day in twenty marked
absent_justified, which the rule does not bill). The quotients (what communes' billing_profiles gives
the run) are derived from the family ids, so the child process rebuilds the same profiles.

Usage: python bench/invoicing_bench.py [--families 10000] [--chunk-size 500] [--no-trace]
(--families N: that one size only, no ratio)."""

from __future__ import annotations

import argparse
import csv
import datetime as dt
import io
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
import zlib
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench.harness import database_uris, drop_databases  # noqa: E402
from services.common.migrate import upgrade  # noqa: E402

MONTH = "2026-03"
RUN_AT = dt.datetime(2026, 4, 1, 5, 0, tzinfo=dt.UTC)  # the scheduled run's morning, after the month
DAYS_PER_FAMILY = 20
BANDS = [
    {"qf_max": 500, "unit_price_cents": 150},
    {"qf_max": 1000, "unit_price_cents": 320},
    {"qf_max": 1500, "unit_price_cents": 415},
    {"qf_max": None, "unit_price_cents": 560},
]
TARGET_RATIO = 2.2
TARGET_SECONDS = 60.0
SIZES = (10_000, 20_000)


def month_days(month: str, count: int) -> list[dt.date]:
    """The first `count` weekdays of the month (March 2026 has 22)."""
    year, number = map(int, month.split("-"))
    day, days = dt.date(year, number, 1), []
    while len(days) < count and day.month == number:
        if day.weekday() < 5:
            days.append(day)
        day += dt.timedelta(days=1)
    assert len(days) == count, f"{month} has fewer than {count} weekdays"
    return days


def profile(family_id: str, index: int) -> dict[str, Any]:
    """What communes' billing_profiles would say of the family: a quotient spread over the bands (one
    family in fifty without one), a name, an address."""
    spread = zlib.crc32(family_id.encode()) % 2200
    return {
        "quotient_familial": None if index % 50 == 0 else spread,
        "name": f"Famille {index:05d}",
        "email": f"famille{index}@example.org",
    }


# --- seeding (billing's own tables, directly) --------------------------------------------------------


def copy_rows(engine: Any, table: str, columns: list[str], rows: list[tuple[Any, ...]]) -> None:
    """COPY on PostgreSQL (the fastest bulk load); executemany INSERTs on SQLite."""
    if engine.dialect.name == "postgresql":
        buffer = io.StringIO()
        writer = csv.writer(buffer)
        for row in rows:
            writer.writerow(["\\N" if value is None else value for value in row])
        buffer.seek(0)
        raw = engine.raw_connection()
        try:
            with raw.cursor() as cursor:
                cursor.copy_expert(
                    f"COPY {table} ({', '.join(columns)}) FROM STDIN WITH (FORMAT csv, NULL '\\N')", buffer
                )
            raw.commit()
        finally:
            raw.close()
        return
    from sqlalchemy import text

    placeholders = ", ".join(f":{c}" for c in columns)
    with engine.begin() as conn:
        conn.execute(
            text(f"INSERT INTO {table} ({', '.join(columns)}) VALUES ({placeholders})"),
            [dict(zip(columns, row, strict=True)) for row in rows],
        )


def seed_commune(engine: Any, families: int) -> dict[str, Any]:
    """A commune with one banded postpaid activity and `families` families of one child each, 20
    booked days in the month. Returns its id and what was written."""
    from sqlalchemy import insert
    from sqlalchemy.orm import Session

    from services.billing.models import Tariff

    commune_id, activity_id = str(uuid.uuid4()), str(uuid.uuid4())
    now = RUN_AT - dt.timedelta(days=40)
    with Session(engine) as session, session.begin():
        session.execute(
            insert(Tariff),
            [
                {
                    "activity_id": activity_id,
                    "commune_id": commune_id,
                    "unit_price_cents": None,
                    "bands": BANDS,
                    "cancellation_refund": "none",
                    "invoice_basis": "booked",
                    "updated_at": now,
                }
            ],
        )
    days = month_days(MONTH, DAYS_PER_FAMILY)
    columns = [
        "booking_id", "commune_id", "family_id", "child_id", "child_first_name", "activity_id",
        "activity_name", "date", "billing_mode", "state", "attendance", "updated_at",
    ]  # fmt: skip
    stamp = now.isoformat()
    rows: list[tuple[Any, ...]] = []
    written = 0
    for index in range(families):
        family_id, child_id = str(uuid.uuid4()), str(uuid.uuid4())
        for n, day in enumerate(days):
            attendance = "absent_justified" if (index + n) % 20 == 0 else None
            rows.append(
                (str(uuid.uuid4()), commune_id, family_id, child_id, "Enfant", activity_id, "Cantine",
                 day.isoformat(), "postpaid", "booked", attendance, stamp)
            )  # fmt: skip
        if len(rows) >= 50_000:
            copy_rows(engine, "billable_days", columns, rows)
            written += len(rows)
            rows = []
    copy_rows(engine, "billable_days", columns, rows)
    written += len(rows)
    return {"commune_id": commune_id, "days": written}


def analyze(engine: Any) -> None:
    """Fresh planner statistics, as autovacuum would have them after a month of events; then a
    checkpoint, so that writing out the seeding's pages does not land inside the timed run (it did,
    more for the larger size, and skewed the ratio between the two)."""
    if engine.dialect.name != "postgresql":
        return
    raw = engine.raw_connection()
    try:
        raw.set_isolation_level(0)  # VACUUM cannot run in a transaction
        with raw.cursor() as cursor:
            cursor.execute("VACUUM ANALYZE")
            cursor.execute("CHECKPOINT")
    finally:
        raw.close()


# --- the measured run (in a child process) -----------------------------------------------------------


def max_rss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def run_child(uri: str, commune_id: str, chunk_size: int, trace: bool) -> dict[str, Any]:
    """Called with --child: runs the month once and answers figures as one JSON line."""
    from sqlalchemy import func, select
    from sqlalchemy.orm import sessionmaker

    from services.billing import invoicing
    from services.billing.models import BillableDay, Invoice, InvoiceLine
    from services.common.db import WorkerDb, get_engine

    engine = get_engine(uri)
    db = WorkerDb(sessionmaker(bind=engine, expire_on_commit=False))
    with db.transaction() as session:
        family_ids = sorted(
            session.scalars(
                select(BillableDay.family_id).where(BillableDay.commune_id == commune_id).distinct()
            ).all()
        )
    profiles = {family_id: profile(family_id, i) for i, family_id in enumerate(family_ids)}
    del family_ids
    rss_before = max_rss_kib()
    if trace:
        tracemalloc.start()
    started = time.perf_counter()
    result = invoicing.run_month(db.transaction, commune_id, MONTH, profiles, RUN_AT, chunk_size=chunk_size)
    seconds = time.perf_counter() - started
    peak = tracemalloc.get_traced_memory()[1] if trace else None
    if trace:
        tracemalloc.stop()
    rss_growth = max_rss_kib() - rss_before
    with db.transaction() as session:
        invoices = session.scalar(select(func.count()).where(Invoice.commune_id == commune_id))
        lines, quantity = session.execute(
            select(func.count(), func.coalesce(func.sum(InvoiceLine.quantity), 0))
            .join(Invoice, Invoice.id == InvoiceLine.invoice_id)
            .where(Invoice.commune_id == commune_id)
        ).one()
    engine.dispose()
    return {
        "seconds": seconds,
        "invoices": invoices,
        "lines": lines,
        "days_billed": int(quantity),
        "families": len(profiles),
        "tracemalloc_peak": peak,
        "rss_growth_kib": rss_growth,
        "rss_max_kib": max_rss_kib(),
        "result": {k: v for k, v in (result or {}).items() if k != "skipped_activities"}
        if isinstance(result, dict)
        else str(result),
    }


def measure(uri: str, commune_id: str, chunk_size: int, trace: bool) -> dict[str, Any]:
    command = [sys.executable, __file__, "--child", uri, commune_id, "--chunk-size", str(chunk_size)]
    if trace:
        command.append("--trace")
    done = subprocess.run(command, capture_output=True, text=True, check=False)
    if done.returncode != 0:
        raise RuntimeError(f"the run failed:\n{done.stderr[-3000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


# --- one size, the whole benchmark -------------------------------------------------------------------


def seeded_database(workdir: Path, families: int) -> tuple[dict[str, str], dict[str, Any], float]:
    """A fresh billing database with one commune of `families` families: (uris, commune, seconds)."""
    from services.common.db import get_engine

    uris = database_uris(workdir, ("billing",))
    upgrade("billing", uris["billing"])
    engine = get_engine(uris["billing"])
    started = time.perf_counter()
    commune = seed_commune(engine, families)
    analyze(engine)
    engine.dispose()
    return uris, commune, time.perf_counter() - started


def one_size(families: int, chunk_size: int, trace: bool) -> dict[str, Any]:
    """A fresh database for this size: seeded, analyzed, run, dropped; the tracemalloc run (slower,
    for the peak only) on a twin in a database of its own, so that both timed runs see tables of
    the size they measure."""
    workdir = Path(tempfile.mkdtemp(prefix="pf-bench-invoicing-"))
    uris, timed, seeded = seeded_database(workdir, families)
    try:
        print(
            f"  seeded {families} families × {DAYS_PER_FAMILY} days ({timed['days']} billable days) "
            f"in {seeded:.1f}s"
        )
        figures = measure(uris["billing"], timed["commune_id"], chunk_size, trace=False)
        figures["days"] = timed["days"]
        figures["backend"] = "PostgreSQL" if uris["billing"].startswith("postgresql") else "SQLite"
    finally:
        drop_databases(uris)
    if trace:
        uris, twin, _ = seeded_database(workdir, families)
        try:
            traced = measure(uris["billing"], twin["commune_id"], chunk_size, trace=True)
            figures["tracemalloc_peak"] = traced["tracemalloc_peak"]
            figures["traced_seconds"] = traced["seconds"]
        finally:
            drop_databases(uris)
    return figures


def mib(value: float | None) -> str:
    return "n/a" if value is None else f"{value / 2**20:.1f} MiB"


def report(families: int, f: dict[str, Any]) -> None:
    seconds = f["seconds"]
    print(
        f"  {families} families: {seconds:.2f}s; {f['invoices']} invoices, {f['lines']} lines "
        f"({f['lines'] / seconds:.0f} lines/s), {f['days']} days ({f['days'] / seconds:.0f} days/s; "
        f"{f['days_billed']} billed)"
    )
    traced = f" (traced run: {f['traced_seconds']:.2f}s)" if "traced_seconds" in f else ""
    print(
        f"    peak memory: tracemalloc {mib(f.get('tracemalloc_peak'))}{traced}; "
        f"max RSS growth {mib(f['rss_growth_kib'] * 1024)} (process max RSS {mib(f['rss_max_kib'] * 1024)})"
    )
    expected = families  # one invoice per family
    if f["invoices"] != expected:
        print(f"    NOTE: {f['invoices']} invoices for {expected} families (run answered {f['result']})")


def main() -> int:
    parser = argparse.ArgumentParser()
    parser.add_argument("--families", type=int, help="one size only (default: 10000 then 20000)")
    parser.add_argument("--chunk-size", type=int, default=500)
    parser.add_argument("--no-trace", action="store_true", help="skip the tracemalloc twin run")
    parser.add_argument("--child", nargs=2, metavar=("URI", "COMMUNE"), help=argparse.SUPPRESS)
    parser.add_argument("--trace", action="store_true", help=argparse.SUPPRESS)
    args = parser.parse_args()

    if args.child:
        print(json.dumps(run_child(args.child[0], args.child[1], args.chunk_size, args.trace)))
        return 0

    sizes = (args.families,) if args.families else SIZES
    results: dict[int, dict[str, Any]] = {}
    print(f"month-end invoicing benchmark, {MONTH}, chunk size {args.chunk_size}, {os.cpu_count()} cores")
    for families in sizes:
        print(f"\n{families} families:", flush=True)
        results[families] = one_size(families, args.chunk_size, trace=not args.no_trace)
        report(families, results[families])
    backend = next(iter(results.values()))["backend"]
    print(f"\nbackend: {backend}")
    if len(results) == 2:
        small, large = (results[n]["seconds"] for n in sizes)
        ratio = large / small
        verdict = "met" if ratio <= TARGET_RATIO else "NOT met"
        print(f"time({sizes[1]}) / time({sizes[0]}) = {ratio:.2f} (target ≤ {TARGET_RATIO}: {verdict})")
    for figures in results.values():
        if figures["days"] == 200_000:
            under = "yes" if figures["seconds"] < TARGET_SECONDS else "NO"
            print(f"200,000-day month under {TARGET_SECONDS:.0f} s: {under} ({figures['seconds']:.2f}s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Capacity under contention: 50 children (one account each) validate one item each for the same day
of an activity with 10 places, all at once, each with its own database session. Exactly 10 are
confirmed, the day's counter says 10, the others wait (or are refused FULL without a waiting list).

- PostgreSQL: 50 eventlet greenthreads in this process (psycopg2 is cooperative under eventlet, as
  in the services), the rule functions called directly: the broker adds nothing to this race.
- SQLite: a file database under tmp_path, migrated with Alembic, driven by 50 real OS threads in a
  child process (this process is monkey-patched by eventlet and sqlite3 does not yield, so threads
  here would take turns), with the project's engine (get_engine: WAL, busy timeout).

Also: the same idempotency key validated 10 times at once books once and answers the same."""

from __future__ import annotations

import datetime as dt
import json
import subprocess
import sys
import threading
import uuid
from pathlib import Path

if __name__ != "__main__":
    import pytest

    pytestmark = pytest.mark.integration

from sqlalchemy import func, select
from sqlalchemy.orm import Session

REPO = Path(__file__).resolve().parents[2]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

from services.booking import activities, cart, validation  # noqa: E402
from services.booking.access import ChildInfo  # noqa: E402
from services.booking.models import Booking, Occurrence  # noqa: E402
from services.common import clock  # noqa: E402
from services.common.context import Caller  # noqa: E402
from services.common.db import get_engine  # noqa: E402

T0 = dt.datetime(2026, 3, 2, 8, 0, tzinfo=dt.UTC)
DAY = "2026-03-12"
PLACES = 10
CONTENDERS = 50


def seed(uri: str, waiting_list: bool, contenders: int = CONTENDERS) -> tuple[str, list[dict]]:
    """An activity with PLACES places and `contenders` accounts, each with one child and one item."""
    commune_id = str(uuid.uuid4())
    agent = Caller(account_id=str(uuid.uuid4()), roles=(f"agent:{commune_id}",))
    data = {
        "name": "Cantine",
        "kind": "canteen",
        "billing_mode": "postpaid",
        "capacity": PLACES,
        "weekdays": ["thursday"],
        "start_date": "2026-03-02",
        "end_date": "2026-07-03",
        "booking_deadline": {"days_before": 1, "at": "10:00"},
        "cancellation_deadline": {"days_before": 1, "at": "10:00"},
        "cancellation_approval": "auto",
        "waiting_list": waiting_list,
    }
    contenders_ = []
    with Session(get_engine(uri)) as session, session.begin():
        activity = activities.create_activity(session, agent, commune_id, "Europe/Paris", data)
        for _ in range(contenders):
            child = {"id": str(uuid.uuid4()), "family_id": str(uuid.uuid4()), "commune_id": commune_id}
            account_id = str(uuid.uuid4())
            info = ChildInfo(**child, birth_date=dt.date(2019, 1, 1), class_name="CP")
            cart.add_items(session, account_id, info, activity["id"], dates=[DAY], now=T0)
            contenders_.append({"account_id": account_id, "child": child})
    return activity["id"], contenders_


def validate_one(uri: str, contender: dict, key: str | None = None, pool_size: int = 10) -> dict:
    child = contender["child"]
    info = ChildInfo(**child, birth_date=dt.date(2019, 1, 1), class_name="CP")
    with Session(get_engine(uri, pool_size=pool_size)) as session, session.begin():
        response = validation.validate(
            session, contender["account_id"], key or uuid.uuid4().hex, {info.id: info}, T0
        )
    return response


def check_day(uri: str, activity_id: str) -> tuple[int, dict[str, int]]:
    with Session(get_engine(uri)) as session:
        taken = session.scalar(select(Occurrence.taken).where(Occurrence.activity_id == activity_id))
        rows = session.execute(
            select(Booking.status, func.count())
            .where(Booking.activity_id == activity_id)
            .group_by(Booking.status)
        ).all()
    return taken, dict(rows)


def summary(outcomes: list[str]) -> dict[str, int]:
    return {outcome: outcomes.count(outcome) for outcome in sorted(set(outcomes))}


# --- PostgreSQL, greenthreads -------------------------------------------------------------------------


def test_fifty_concurrent_validations_for_ten_places_on_postgresql(pg_databases):
    import eventlet

    from services.common.migrate import upgrade

    uri = pg_databases.create("booking_race")
    upgrade("booking", uri)
    clock.set_now(T0)
    activity_id, contenders = seed(uri, waiting_list=True)
    started = eventlet.event.Event()

    def contend(contender):
        started.wait()  # 50 sessions at once: a pool of 25 + 25 overflow, as large as the crowd
        return validate_one(uri, contender, pool_size=25)["results"][0]["outcome"]

    pool = eventlet.GreenPool(CONTENDERS)
    running = [pool.spawn(contend, c) for c in contenders]
    started.send(True)
    outcomes = [gt.wait() for gt in running]
    assert summary(outcomes) == {"confirmed": PLACES, "waitlisted": CONTENDERS - PLACES}
    taken, statuses = check_day(uri, activity_id)
    assert taken == PLACES
    assert statuses == {"confirmed": PLACES, "waitlisted": CONTENDERS - PLACES}
    with Session(get_engine(uri)) as session:  # the waiting list is numbered 1..40 without gaps
        positions = session.scalars(
            select(Booking.waitlist_position).where(
                Booking.activity_id == activity_id, Booking.status == "waitlisted"
            )
        ).all()
    assert sorted(positions) == list(range(1, CONTENDERS - PLACES + 1))


def test_the_same_key_validated_ten_times_at_once_books_once(pg_databases):
    import eventlet

    from services.common.migrate import upgrade

    uri = pg_databases.create("booking_replay")
    upgrade("booking", uri)
    activity_id, [contender] = seed(uri, waiting_list=False, contenders=1)
    started = eventlet.event.Event()

    def contend():
        started.wait()
        return validate_one(uri, contender, key="same-key")

    pool = eventlet.GreenPool(10)
    running = [pool.spawn(contend) for _ in range(10)]
    started.send(True)
    responses = [gt.wait() for gt in running]
    assert all(response == responses[0] for response in responses)
    assert responses[0]["results"][0]["outcome"] == "confirmed"
    assert check_day(uri, activity_id) == (1, {"confirmed": 1})


# --- SQLite, real threads in a child process ------------------------------------------------------------


def test_fifty_concurrent_validations_for_ten_places_on_sqlite(tmp_path):
    from services.common.migrate import upgrade

    uri = f"sqlite:///{tmp_path / 'booking.db'}"
    upgrade("booking", uri)
    activity_id, contenders = seed(uri, waiting_list=False)
    get_engine(uri).dispose()
    (tmp_path / "contenders.json").write_text(json.dumps(contenders))
    child = subprocess.run(
        [sys.executable, __file__, uri, str(tmp_path / "contenders.json")],
        capture_output=True,
        text=True,
        timeout=120,
        cwd=REPO,
    )
    assert child.returncode == 0, child.stderr[-3000:]
    report = json.loads(child.stdout.strip().splitlines()[-1])
    assert report["threads"] == CONTENDERS and report["overlapping"] > 1  # they did run at once
    assert summary(report["outcomes"]) == {"confirmed": PLACES, "rejected:FULL": CONTENDERS - PLACES}
    assert check_day(uri, activity_id) == (PLACES, {"confirmed": PLACES})


def _race_in_threads(uri: str, contenders: list[dict]) -> dict:
    """Run in the child process: one real thread per contender, released together."""
    barrier = threading.Barrier(len(contenders))
    lock = threading.Lock()
    outcomes: list[str] = []
    inside = [0, 0]  # now, most at once

    def contend(contender: dict) -> None:
        barrier.wait()
        with lock:
            inside[0] += 1
            inside[1] = max(inside[1], inside[0])
        try:
            result = validate_one(uri, contender)["results"][0]
            outcome = result["outcome"] + (f":{result['reason']}" if "reason" in result else "")
        except Exception as exc:  # noqa: BLE001 - reported to the test
            outcome = f"error:{type(exc).__name__}:{exc}"
        with lock:
            inside[0] -= 1
            outcomes.append(outcome)

    threads = [threading.Thread(target=contend, args=(c,)) for c in contenders]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return {"threads": len(threads), "overlapping": inside[1], "outcomes": outcomes}


if __name__ == "__main__":
    clock.set_now(T0)
    print(json.dumps(_race_in_threads(sys.argv[1], json.loads(Path(sys.argv[2]).read_text()))))

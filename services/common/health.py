"""Readiness of one service: its database answers. (The broker answered, or the RPC would not have
arrived.)"""

from __future__ import annotations

from typing import Any

from services.common.db import WorkerDb, ping


def readiness(service_name: str, db: WorkerDb) -> dict[str, Any]:
    ping(db.engine)
    return {"service": service_name, "database": "ok"}

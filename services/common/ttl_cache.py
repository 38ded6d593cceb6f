"""A small process-local cache whose entries live a configured number of seconds, as a nameko
dependency (one per service instance; every worker of the instance shares it). Used where an answer
from another service is asked on every request and may be a few seconds stale (the gateway's
memberships, booking's child-access answers); bounded so that memory stays small under any load."""

from __future__ import annotations

import time
from typing import Any

from nameko.extensions import DependencyProvider

MAX_ENTRIES = 50_000


class TtlCache(DependencyProvider):
    """`ttl_key`: the config setting giving the lifetime in seconds (0 turns the cache off)."""

    def __init__(self, ttl_key: str, default_seconds: float = 30) -> None:
        self.ttl_key = ttl_key
        self.default_seconds = default_seconds

    def setup(self) -> None:
        self.ttl = float(self.container.config.get(self.ttl_key, self.default_seconds) or 0)
        self.entries: dict[Any, tuple[float, Any]] = {}

    def get_dependency(self, worker_ctx: Any) -> TtlCache:
        return self

    def get(self, key: Any) -> Any | None:
        entry = self.entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return None
        return entry[1]

    def put(self, key: Any, value: Any) -> None:
        if self.ttl <= 0:
            return
        if len(self.entries) >= MAX_ENTRIES:
            self.entries.clear()  # crude but bounded
        self.entries[key] = (time.monotonic() + self.ttl, value)

    def drop(self, key: Any) -> None:
        self.entries.pop(key, None)

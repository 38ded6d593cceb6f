"""One clock for the whole service, which tests can set. Always timezone-aware UTC."""

from __future__ import annotations

import datetime as dt

_frozen: dt.datetime | None = None
_offset = dt.timedelta(0)


def now() -> dt.datetime:
    if _frozen is not None:
        return _frozen
    return dt.datetime.now(dt.UTC) + _offset


def set_now(moment: dt.datetime | None) -> None:
    """Freeze the clock at `moment` (None unfreezes). For tests."""
    global _frozen
    _frozen = moment


def advance(delta: dt.timedelta) -> None:
    """Move the clock forward (frozen or not). For tests."""
    global _frozen, _offset
    if _frozen is not None:
        _frozen += delta
    else:
        _offset += delta


def reset() -> None:
    global _frozen, _offset
    _frozen, _offset = None, dt.timedelta(0)


def as_utc(moment: dt.datetime) -> dt.datetime:
    """SQLite returns naive datetimes: read them back as UTC."""
    return moment if moment.tzinfo else moment.replace(tzinfo=dt.UTC)

"""A nameko timer whose interval comes from the service's config (nameko's `@timer(interval=...)`
fixes it when the class is defined)."""

from __future__ import annotations

from typing import Any

from nameko.timer import Timer

from services.booking.settings import BookingSettings


class HoldSweepTimer(Timer):
    """`@hold_sweep_timer()`: fires every HOLD_SWEEP_SECONDS (config; default 30 s)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("interval", BookingSettings.hold_sweep_seconds)
        super().__init__(**kwargs)

    def setup(self) -> None:
        super().setup()
        self.interval = BookingSettings.from_config(self.container.config).hold_sweep_seconds


hold_sweep_timer = HoldSweepTimer.decorator

"""booking's settings, read once from the service config (`${VAR:default}` in config.yml)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nameko.extensions import DependencyProvider

DEFAULT_HOLD_SWEEP_SECONDS = 30.0


@dataclass(frozen=True)
class BookingSettings:
    hold_sweep_seconds: float = DEFAULT_HOLD_SWEEP_SECONDS  # how often expired prepaid holds are released
    hold_sweep_batch: int = 100

    @classmethod
    def from_config(cls, config: dict[str, Any]) -> BookingSettings:
        seconds = float(config.get("HOLD_SWEEP_SECONDS") or DEFAULT_HOLD_SWEEP_SECONDS)
        if seconds <= 0:
            raise RuntimeError("HOLD_SWEEP_SECONDS must be positive")
        return cls(hold_sweep_seconds=seconds)


class Settings(DependencyProvider):
    """Injects the settings, read once when the service starts (a bad value stops the start)."""

    def setup(self) -> None:
        self.settings = BookingSettings.from_config(self.container.config)

    def get_dependency(self, worker_ctx: Any) -> BookingSettings:
        return self.settings

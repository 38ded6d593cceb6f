"""A nameko timer whose interval comes from the service's config (nameko's `@timer(interval=...)`
fixes it when the class is defined)."""

from __future__ import annotations

from typing import Any

from nameko.timer import Timer

DEFAULT_REFUND_RETRY_SECONDS = 60.0


class RefundRetryTimer(Timer):
    """`@refund_retry_timer()`: fires every REFUND_RETRY_SECONDS (config; default 60 s)."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("interval", DEFAULT_REFUND_RETRY_SECONDS)
        super().__init__(**kwargs)

    def setup(self) -> None:
        super().setup()
        self.interval = float(
            self.container.config.get("REFUND_RETRY_SECONDS") or DEFAULT_REFUND_RETRY_SECONDS
        )


refund_retry_timer = RefundRetryTimer.decorator

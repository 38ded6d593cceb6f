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


DEFAULT_INVOICING_CHECK_SECONDS = 600.0


class InvoicingTimer(Timer):
    """`@invoicing_timer()`: checks every INVOICING_CHECK_SECONDS (default 600 s) whether the
    month-end run is due."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("interval", DEFAULT_INVOICING_CHECK_SECONDS)
        super().__init__(**kwargs)

    def setup(self) -> None:
        super().setup()
        self.interval = float(
            self.container.config.get("INVOICING_CHECK_SECONDS") or DEFAULT_INVOICING_CHECK_SECONDS
        )


invoicing_timer = InvoicingTimer.decorator

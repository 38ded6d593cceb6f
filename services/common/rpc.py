"""RPC with a deadline, for the gateway and for services calling each other. nameko's RpcProxy
waits forever; here every call has a timeout (a dead service gives 503/504, never a hung request)
and its message an expiration, so a request that timed out is not executed later by a service that
comes back."""

from __future__ import annotations

from typing import Any

import eventlet
from nameko.exceptions import UnknownService
from nameko.rpc import RpcProxy

from services.common.errors import ServiceTimeout, ServiceUnavailable

DEFAULT_TIMEOUT = 5.0


class DeadlineProxy:
    def __init__(self, proxy: Any, service_name: str, timeout: float) -> None:
        self._proxy = proxy
        self._service_name = service_name
        self._timeout = timeout

    def __getattr__(self, method: str) -> Any:
        target = getattr(self._proxy, method)

        def call(*args: Any, **kwargs: Any) -> Any:
            deadline = eventlet.Timeout(self._timeout)
            try:
                return target(*args, **kwargs)
            except eventlet.Timeout as exc:
                if exc is not deadline:
                    raise
                raise ServiceTimeout(details={"service": self._service_name}) from None
            except UnknownService:
                raise ServiceUnavailable(details={"service": self._service_name}) from None
            except (ConnectionError, OSError):
                raise ServiceUnavailable(details={"service": "broker"}) from None
            finally:
                deadline.cancel()

        return call


class ServiceRpc(RpcProxy):
    """`self.identity.login(...)`: an RPC to `service_name` that gives up after RPC_TIMEOUT_SECONDS
    (config, default 5 s)."""

    def __init__(self, service_name: str, timeout: float | None = None, **options: Any) -> None:
        self._fixed_timeout = timeout
        super().__init__(service_name, **options)

    def setup(self) -> None:
        super().setup()
        configured = self.container.config.get("RPC_TIMEOUT_SECONDS", DEFAULT_TIMEOUT)
        self.timeout = float(self._fixed_timeout or configured)
        # the broker drops a request nobody picked up before the caller gave up
        self.options["expiration"] = self.timeout

    def get_dependency(self, worker_ctx: Any) -> DeadlineProxy:
        return DeadlineProxy(super().get_dependency(worker_ctx), self.target_service, self.timeout)

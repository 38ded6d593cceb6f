"""RPC with a deadline, for the gateway and for services calling each other. nameko's RpcProxy
waits forever; here every call has a timeout (a dead service gives 503/504, never a hung request)
and its message an expiration, so a request that timed out is not executed later by a service that
comes back."""

from __future__ import annotations

from typing import Any

import eventlet
import nameko.rpc
from nameko.amqp.publish import Publisher
from nameko.constants import (
    AMQP_SSL_CONFIG_KEY,
    AMQP_URI_CONFIG_KEY,
    DEFAULT_SERIALIZER,
    LOGIN_METHOD_CONFIG_KEY,
    SERIALIZER_CONFIG_KEY,
)
from nameko.exceptions import UnknownService
from nameko.rpc import RpcProxy, get_rpc_exchange

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


# --- the serving side: `@rpc` for every service --------------------------------------------------


class _ReplyPublisher(Publisher):
    # A reply the broker loses is a timeout for the caller, confirmed or not: waiting for the broker's
    # confirmation of every reply only cost each call a round trip (requests keep theirs: they are
    # how a call to a service that is not running fails at once, UnknownService).
    use_confirms = False


class _Responder(nameko.rpc.Responder):
    publisher_cls = _ReplyPublisher


class _RpcConsumer(nameko.rpc.RpcConsumer):
    def handle_result(self, message: Any, result: Any, exc_info: Any) -> tuple[Any, Any]:
        """nameko's, with replies published without confirms (_ReplyPublisher)."""
        config = self.container.config
        responder = _Responder(
            config[AMQP_URI_CONFIG_KEY],
            get_rpc_exchange(config),
            config.get(SERIALIZER_CONFIG_KEY, DEFAULT_SERIALIZER),
            message,
            ssl=config.get(AMQP_SSL_CONFIG_KEY),
            login_method=config.get(LOGIN_METHOD_CONFIG_KEY),
        )
        result, exc_info = responder.send_response(result, exc_info)
        self.queue_consumer.ack_message(message)
        return result, exc_info


class Rpc(nameko.rpc.Rpc):
    rpc_consumer = _RpcConsumer()


rpc = Rpc.decorator

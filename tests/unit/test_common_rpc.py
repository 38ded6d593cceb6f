"""Every service serves its RPCs with services.common.rpc.rpc (replies without publisher confirms):
one nameko `@rpc` left in a service would add a second consumer on its queue, and requests would
reach the consumer that does not know their method."""

import importlib

import nameko.rpc
import pytest
from nameko.extensions import ENTRYPOINT_EXTENSIONS_ATTR

from services.common import rpc
from services.common.migrate import SERVICES_WITH_DB

SERVICES = {name: f"services.{name}.service" for name in SERVICES_WITH_DB}


def service_class(module_name):
    module = importlib.import_module(module_name)
    return next(
        value
        for value in vars(module).values()
        if isinstance(value, type) and value.__module__ == module_name and getattr(value, "name", None)
    )


@pytest.mark.parametrize("service", sorted(SERVICES))
def test_every_rpc_entrypoint_is_the_common_one(service):
    cls = service_class(SERVICES[service])
    entrypoints = [
        entrypoint
        for member in vars(cls).values()
        for entrypoint in getattr(member, ENTRYPOINT_EXTENSIONS_ATTR, ())
        if isinstance(entrypoint, nameko.rpc.Rpc)
    ]
    assert entrypoints, f"{service} serves no RPC?"
    assert all(type(entrypoint) is rpc.Rpc for entrypoint in entrypoints), service


def test_replies_are_published_without_confirms_and_requests_with():
    assert rpc._Responder.publisher_cls.use_confirms is False
    assert nameko.rpc.MethodProxy.publisher_cls.use_confirms is True  # UnknownService needs them

"""What the integration tests of several services share: callers as the gateway would put them in
nameko context data, a direct entrypoint call, and an entrypoint_waiter predicate."""

import itertools
import uuid

from nameko.testing.services import entrypoint_hook

from services.common.context import Caller

_addresses = itertools.count(1)


def agent_of(commune_id):
    return Caller(account_id=str(uuid.uuid4()), roles=(f"agent:{commune_id}",)).as_context()


def new_parent():
    """A parent's context, each with its own client address (throttling is per address too)."""
    return Caller(
        account_id=str(uuid.uuid4()), client_ip=f"198.51.100.{next(_addresses) % 250 + 1}"
    ).as_context()


def call(container, method, *args, caller=None, **kwargs):
    with entrypoint_hook(container, method, context_data=caller) as hook:
        return hook(*args, **kwargs)


def about(key, value):
    """entrypoint_waiter callback: the handler's payload has key == value."""

    def match(worker_ctx, result, exc_info):
        return bool(worker_ctx.args) and worker_ctx.args[0].get(key) == value

    return match

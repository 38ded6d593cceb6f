"""Health probe for the nameko services, for Kubernetes exec probes and compose healthchecks.

    python -m deploy.probe <service> [--live] [--timeout SECONDS]

Sends `<service>.health()` over RPC (nameko.standalone.rpc.ClusterRpcProxy) with a reply timeout and a
message expiration, and exits 0 when the service answered "ready" (its database answered too), 1
otherwise. With `--live`, an answer that is an error (the service is up but its database is not) still
counts as alive: restarting the process would not bring the database back. No answer at all (process
stuck, broker unreachable) is a failure in both modes.

`gateway` has HTTP: this module then GETs `/ready` (or `/health` with `--live`) on 127.0.0.1, port
GATEWAY_PORT or that of WEB_SERVER_ADDRESS (8000); `invoices_site`: `/health` on the port of
INVOICES_WEB_ADDRESS (8001).
The broker URI is read from the service's config.yml, so the probe sees the same environment as the
service. Nothing personal is printed: only the service name and the kind of failure.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
import urllib.error
import urllib.request
import warnings
from pathlib import Path
from types import FrameType
from typing import Any

REPO_ROOT = Path(__file__).resolve().parents[1]
DEFAULT_TIMEOUT = 5.0
DEFAULT_AMQP_URI = "amqp://guest:guest@localhost:5672/"


class ProbeTimeout(BaseException):  # not caught by the probes' `except Exception`
    pass


def _alarm(_signum: int, _frame: FrameType | None) -> None:
    raise ProbeTimeout()


def amqp_config(service: str) -> dict[str, Any]:
    """The broker settings of `service`: its config.yml when present, else the AMQP_URI environment."""
    config_path = REPO_ROOT / "services" / service / "config.yml"
    if config_path.exists():
        from services.common.config import load_config

        config = load_config(config_path)
    else:
        config = {}
    uri = config.get("AMQP_URI") or os.environ.get("AMQP_URI") or DEFAULT_AMQP_URI
    return {"AMQP_URI": uri}


def _delete_reply_queue(client: Any) -> None:
    """Each proxy declares its own reply queue, which would otherwise linger for nameko's reply-queue
    TTL (5 minutes) after every probe."""
    try:
        client._reply_listener.queue_consumer.queue.delete()
    except Exception:  # noqa: S110 (best effort: the queue expires anyway)
        pass


def probe_rpc(service: str, timeout: float, live: bool) -> tuple[bool, str]:
    """Call `<service>.health()`; returns (healthy, short reason)."""
    from nameko.exceptions import RemoteError, RpcTimeout, UnknownService
    from nameko.standalone.rpc import ClusterRpcProxy

    client = ClusterRpcProxy(amqp_config(service), timeout=timeout)
    try:
        cluster = client.start()
        try:
            proxy = cluster[service]
            # ClusterRpcProxy passes no publish options: an unanswered request must not wait in the
            # service's queue after we gave up, so it expires (kombu takes seconds).
            proxy.options = {"expiration": timeout}
            answer = proxy.health()
        finally:
            _delete_reply_queue(client)
            client.stop()
    except UnknownService:
        return False, "no consumer on the service's RPC queue"
    except RpcTimeout:
        return False, f"no answer within {timeout:g}s"
    except RemoteError as exc:
        if live:
            return True, f"alive (not ready: {exc.exc_type})"
        return False, f"not ready: {exc.exc_type}"
    except Exception as exc:  # broker unreachable, refused login, unknown vhost...
        return False, f"broker unreachable: {type(exc).__name__}"
    return True, "ready" if answer else "ready (empty answer)"


def probe_http(timeout: float, live: bool, service: str = "gateway") -> tuple[bool, str]:
    """GET the gateway's /health (alive) or /ready (dependencies reachable) on localhost; the
    invoices site's /health (it has no dependency of its own to check)."""
    if service == "invoices_site":
        address = os.environ.get("INVOICES_WEB_ADDRESS", "")
        port = address.rpartition(":")[2] if ":" in address else "8001"
        path = "/health"
    else:
        address = os.environ.get("WEB_SERVER_ADDRESS", "")
        port = os.environ.get("GATEWAY_PORT") or (address.rpartition(":")[2] if ":" in address else "8000")
        path = "/health" if live else "/ready"
    url = f"http://127.0.0.1:{port}{path}"
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:  # noqa: S310 (fixed http URL)
            return 200 <= response.status < 300, f"{path} {response.status}"
    except urllib.error.HTTPError as exc:
        return False, f"{path} {exc.code}"
    except OSError as exc:
        return False, f"{path} unreachable: {type(exc).__name__}"


def probe(service: str, timeout: float = DEFAULT_TIMEOUT, live: bool = False) -> tuple[bool, str]:
    """Probe one service, with a hard wall-clock limit (connecting to a dead broker can retry)."""
    previous = signal.signal(signal.SIGALRM, _alarm)
    signal.setitimer(signal.ITIMER_REAL, timeout + 2.0)
    try:
        if service in ("gateway", "invoices_site"):
            return probe_http(timeout, live, service)
        return probe_rpc(service, timeout, live)
    except ProbeTimeout:
        return False, f"gave up after {timeout + 2.0:g}s"
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0)
        signal.signal(signal.SIGALRM, previous)


def main(argv: list[str] | None = None) -> int:
    warnings.simplefilter("ignore")  # deprecation noise from nameko's imports would fill probe events
    parser = argparse.ArgumentParser(prog="python -m deploy.probe", description=__doc__.splitlines()[0])
    parser.add_argument("service", help="identity, notify, ... or gateway")
    parser.add_argument("--live", action="store_true", help="liveness: an answer, even an error, is enough")
    default_timeout = float(os.environ.get("PROBE_TIMEOUT", DEFAULT_TIMEOUT))
    parser.add_argument("--timeout", type=float, default=default_timeout, help="seconds to wait")
    args = parser.parse_args(argv)
    healthy, reason = probe(args.service, args.timeout, args.live)
    print(f"{args.service}: {reason}", file=sys.stdout if healthy else sys.stderr)
    return 0 if healthy else 1


if __name__ == "__main__":
    sys.exit(main())

"""Start the platform's processes (one `nameko run` per service, then the gateway), watch them and
stop them. Used by `make run`, by the end-to-end tests and by the benchmark."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterable
from pathlib import Path

import requests

from services.common.config import REPO_ROOT

SERVICES = {
    "identity": ("services/identity/config.yml", "services.identity.service:IdentityService"),
    "notify": ("services/notify/config.yml", "services.notify.service:NotifyService"),
    "communes": ("services/communes/config.yml", "services.communes.service:CommunesService"),
    "booking": ("services/booking/config.yml", "services.booking.service:BookingService"),
    "billing": ("services/billing/config.yml", "services.billing.service:BillingService"),
    "gateway": ("gateway/config.yml", "gateway.service:GatewayService"),
    "invoices_site": ("invoices_site/config.yml", "invoices_site.service:InvoicesSite"),
}
BACKEND_ORDER = ("identity", "notify", "communes", "booking", "billing")


def _die_with_parent() -> None:
    """In the child, before exec: SIGTERM when the process that started it dies (Linux), so that a
    test run or a launcher killed without cleaning up leaves no service holding database
    connections and broker queues."""
    if sys.platform.startswith("linux"):
        import ctypes

        pr_set_pdeathsig = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(pr_set_pdeathsig, signal.SIGTERM)


def nameko_command(service: str) -> list[str]:
    config, module = SERVICES[service]
    nameko = Path(sys.executable).with_name("nameko")
    return [str(nameko), "run", "--config", str(REPO_ROOT / config), module]


class Stack:
    def __init__(self, env: dict[str, str], log_dir: Path | None = None, echo: bool = False) -> None:
        self.env = {**os.environ, **env}
        self.log_dir = log_dir
        self.echo = echo
        self.processes: dict[str, subprocess.Popen[bytes]] = {}
        self.gateway_url = "http://127.0.0.1:" + self.env.get("GATEWAY_PORT", "8000")

    def start(
        self, services: Iterable[str] = (*BACKEND_ORDER, "gateway", "invoices_site"), timeout: float = 60
    ) -> None:
        for service in services:
            self.start_service(service)
        self.wait_ready(timeout)

    def start_service(self, service: str) -> None:
        if self.log_dir is not None:
            self.log_dir.mkdir(parents=True, exist_ok=True)
            out = open(self.log_dir / f"{service}.log", "ab")  # noqa: SIM115 - closed with the process
        else:
            out = None
        process = subprocess.Popen(  # noqa: S603 - our own fixed command line
            nameko_command(service),
            cwd=REPO_ROOT,
            env=self.env,
            stdout=subprocess.PIPE if self.echo else out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
            preexec_fn=_die_with_parent,  # noqa: PLW1509 - only sets a signal in the child
        )
        if self.echo:
            threading.Thread(target=_prefix_output, args=(service, process), daemon=True).start()
        self.processes[service] = process

    def wait_ready(self, timeout: float = 60) -> None:
        deadline = time.monotonic() + timeout
        last = "no answer"
        while time.monotonic() < deadline:
            for service, process in self.processes.items():
                if process.poll() is not None:
                    raise RuntimeError(f"{service} exited with code {process.returncode}")
            try:
                response = requests.get(self.gateway_url + "/ready", timeout=5)
                if response.status_code == 200:
                    return
                last = response.text
            except requests.RequestException as exc:
                last = str(exc)
            time.sleep(0.3)
        raise RuntimeError(f"platform not ready after {timeout}s: {last}")

    def kill(self, service: str, sig: int = signal.SIGKILL) -> None:
        process = self.processes.pop(service)
        os.killpg(process.pid, sig)
        process.wait(timeout=30)

    def stop(self) -> None:
        for service in reversed(list(self.processes)):
            process = self.processes[service]
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGTERM)
        for service, process in list(self.processes.items()):
            try:
                process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(process.pid, signal.SIGKILL)
                process.wait()
            del self.processes[service]


def _prefix_output(service: str, process: subprocess.Popen[bytes]) -> None:
    assert process.stdout is not None
    for line in iter(process.stdout.readline, b""):
        sys.stdout.write(f"{service:>9} | {line.decode(errors='replace')}")
        sys.stdout.flush()

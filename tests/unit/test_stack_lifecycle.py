"""A service started by deploy/stack.py dies with the process that started it (a test run or
`make run` killed without cleaning up must not leave services holding database connections)."""

import os
import subprocess
import sys
import time

from services.common.config import REPO_ROOT

LAUNCHER = f"""
import subprocess, sys, time
sys.path.insert(0, {str(REPO_ROOT)!r})
from deploy.stack import _die_with_parent
child = subprocess.Popen(["sleep", "60"], preexec_fn=_die_with_parent, start_new_session=True)
print(child.pid, flush=True)
time.sleep(60)
"""


def state(pid):
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0]
    except FileNotFoundError:
        return "gone"


def test_a_started_service_dies_with_its_launcher():
    launcher = subprocess.Popen([sys.executable, "-c", LAUNCHER], stdout=subprocess.PIPE, text=True)
    child = int(launcher.stdout.readline())
    assert state(child) in ("S", "R")
    launcher.kill()  # no cleanup runs: SIGKILL
    launcher.wait()
    deadline = time.monotonic() + 5
    while state(child) not in ("Z", "gone") and time.monotonic() < deadline:
        time.sleep(0.05)
    assert state(child) in ("Z", "gone")  # dead (a zombie until something reaps it)
    if state(child) != "gone":
        try:
            os.kill(child, 9)
        except ProcessLookupError:
            pass

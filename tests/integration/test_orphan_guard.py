"""A parent killed outright (SIGKILL) takes every process it started with it, grandchildren included, even those in
another process group, even those that ignore SIGTERM (issue 10, finding 6: tritonserver, its python stub and
redis-server outlived a SIGKILLed `samsvc up`)."""

from __future__ import annotations

import signal
import subprocess
import sys
import time
from pathlib import Path

from tests.support.polling import wait_until
from tests.support.processes import command_of, descendants, is_alive

ROOT = Path(__file__).resolve().parents[2]

# A parent as `samsvc up` is: the guard installed, then children in sessions of their own. The child's shell starts
# a grandchild that ignores SIGTERM and, with job control on, one in a process group of its own.
PARENT = """
import time
from service.local.child_process import ChildProcess, install_orphan_guard
install_orphan_guard()
ChildProcess("stubborn", ["sh", "-c", "trap '' TERM; sleep 301 & sleep 302 & wait"]).start()
ChildProcess("jobs", ["sh", "-c", "set -m; sleep 303 & wait"]).start()
print("started", flush=True)
time.sleep(600)
"""


def test_a_sigkilled_parent_leaves_nothing_behind() -> None:
    parent = subprocess.Popen([sys.executable, "-c", PARENT], cwd=ROOT, stdout=subprocess.PIPE, text=True)
    try:
        assert parent.stdout is not None and parent.stdout.readline().strip() == "started"
        wait_until(
            lambda: {"sleep 301", "sleep 302", "sleep 303"} <= {command_of(pid) for pid in descendants(parent.pid)},
            10,
            "the grandchildren running",
        )
        running = descendants(parent.pid)
        assert any("orphan_guard" in command_of(pid) for pid in running)

        parent.send_signal(signal.SIGKILL)
        parent.wait()
        killed_at = time.monotonic()
        wait_until(lambda: not any(is_alive(pid) for pid in running), 10, "every process of the parent gone")
        # The stubborn ones got SIGKILL after the guard's grace period, well within the 10 s.
        assert time.monotonic() - killed_at < 10
    finally:
        if parent.poll() is None:
            parent.kill()
            parent.wait()


def test_a_clean_stop_ends_the_guard_too() -> None:
    code = (
        "from service.local.child_process import ChildProcess, install_orphan_guard, remove_orphan_guard\n"
        "import os\n"
        "guard = install_orphan_guard()\n"
        "child = ChildProcess('sleeper', ['sleep', '300']).start()\n"
        "child.stop()\n"
        "remove_orphan_guard()\n"
        "print(guard._process.returncode)\n"
    )
    result = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == "0"

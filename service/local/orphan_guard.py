"""Ends a parent's child sessions when the parent dies, however it dies (SIGKILL included).

`samsvc up` starts this as `python -m service.local.orphan_guard` with a pipe on its stdin and writes `+<pid>` for
each child it starts (each child leads its own session, service.local.child_process) and `-<pid>` for each it has
stopped itself. When the pipe reaches end of file, the parent is gone (the kernel closes a dead process's pipes): the
guard sends SIGTERM to every process of the sessions still listed (grandchildren too, such as tritonserver's python
backend stubs, which a parent-death signal on the children alone would not reach), SIGKILL to those left after a
grace period, and exits. A clean stop ends the same way, with every session already gone.
"""

from __future__ import annotations

import os
import signal
import sys
import time
from collections.abc import Iterable
from pathlib import Path

GRACE_SECONDS = 4.0


def session_members(sessions: set[int], proc: Path = Path("/proc")) -> list[int]:
    """The processes (not zombies) whose session id is in `sessions`, from /proc."""
    members = []
    for entry in proc.iterdir():
        if not entry.name.isdigit():
            continue
        try:
            fields = (entry / "stat").read_text().rsplit(")", 1)[1].split()
        except (OSError, IndexError):
            continue
        # After the command: state, ppid, pgrp, session, ...
        if fields[0] != "Z" and int(fields[3]) in sessions:
            members.append(int(entry.name))
    return members


def _signal_all(pids: Iterable[int], signal_number: int) -> None:
    for pid in pids:
        try:
            os.kill(pid, signal_number)
        except (ProcessLookupError, PermissionError):
            pass


def end_sessions(sessions: set[int], grace_seconds: float = GRACE_SECONDS) -> None:
    """SIGTERM every process of `sessions`, then SIGKILL what is left after `grace_seconds`."""
    if not sessions:
        return
    _signal_all(session_members(sessions), signal.SIGTERM)
    deadline = time.monotonic() + grace_seconds
    while (left := session_members(sessions)) and time.monotonic() < deadline:
        time.sleep(0.1)
    _signal_all(left, signal.SIGKILL)


def main() -> int:
    # Ctrl-C in the terminal goes to `samsvc up`, which stops its children itself; the guard waits for the pipe.
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    sessions: set[int] = set()
    for line in sys.stdin:
        text = line.strip()
        if text[:1] in ("+", "-") and text[1:].isdigit():
            (sessions.add if text[0] == "+" else sessions.discard)(int(text[1:]))
    end_sessions(sessions)
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Service child processes of `samsvc up`: started with their logs in files, stopped with SIGTERM."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _die_with_parent() -> None:
    """In the child before exec: get SIGTERM if `samsvc up` dies without stopping us (Linux)."""
    os.setsid()  # Ctrl-C reaches `up` only; it stops the children in order.
    try:
        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
    except (OSError, AttributeError):
        pass


@dataclass
class ServiceProcess:
    """One `samsvc <subcommand>` child."""

    name: str
    arguments: list[str]
    log_path: Path
    process: subprocess.Popen[bytes] | None = None

    def start(self) -> ServiceProcess:
        command = [sys.executable, "-m", "service.cli", *self.arguments]
        with self.log_path.open("ab") as log_file:
            self.process = subprocess.Popen(
                command, stdout=log_file, stderr=subprocess.STDOUT, preexec_fn=_die_with_parent
            )
        return self

    def exited(self) -> bool:
        return self.process is None or self.process.poll() is not None

    def log_tail(self, lines: int = 30) -> str:
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout_seconds: float = 15.0) -> None:
        """SIGTERM (the servers drain in-flight RPCs), SIGKILL after the timeout."""
        process, self.process = self.process, None
        if process is None or process.poll() is not None:
            return
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

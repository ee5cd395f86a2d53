"""One way to run a local server as a child process: its own session, output to a log file, a log tail for
error messages, and a stop that sends SIGTERM and then kills the whole process group."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

_PR_SET_PDEATHSIG = 1


def _new_session(die_with_parent: bool) -> None:
    """In the child before exec: its own session (Ctrl-C reaches the parent only, and stop() can end the whole
    group), and optionally SIGTERM when the parent dies without stopping it (Linux)."""
    os.setsid()
    if die_with_parent:
        try:
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        except (OSError, AttributeError):
            pass


@dataclass
class ChildProcess:
    """`command` run as a child; `log_path` None discards its output."""

    name: str
    command: list[str]
    log_path: Path | None = None
    environment: dict[str, str] | None = None
    die_with_parent: bool = False
    process: subprocess.Popen[bytes] | None = field(default=None, init=False)

    def start(self) -> ChildProcess:
        if self.log_path is not None:
            self.log_path.parent.mkdir(parents=True, exist_ok=True)
        with self.log_path.open("ab") if self.log_path is not None else open(os.devnull, "wb") as output:
            self.process = subprocess.Popen(
                self.command,
                env=self.environment,
                stdout=output,
                stderr=subprocess.STDOUT,
                preexec_fn=lambda: _new_session(self.die_with_parent),
            )
        return self

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def exited(self) -> bool:
        return self.process is None or self.process.poll() is not None

    def log_tail(self, lines: int = 40) -> str:
        if self.log_path is None:
            return "(no log)"
        try:
            return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no log)"

    def stop(self, timeout_seconds: float = 15.0) -> None:
        """SIGTERM (servers drain in-flight work), then SIGKILL to the whole process group after the timeout;
        whatever the child started in its group (Triton's backend stubs) goes with it."""
        process, self.process = self.process, None
        if process is None:
            return
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=timeout_seconds)
            except subprocess.TimeoutExpired:
                pass
        try:
            os.killpg(process.pid, signal.SIGKILL)
        except (ProcessLookupError, PermissionError):
            pass
        process.wait()

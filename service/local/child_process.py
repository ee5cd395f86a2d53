"""One way to run a local server as a child process: its own session, output to a log file, a log tail for
error messages, and a stop that sends SIGTERM and then kills the whole process group. With an orphan guard installed
(`samsvc up` does), every child's session also ends when this process dies without stopping it, SIGKILL included."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO

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


class OrphanGuard:
    """A `service.local.orphan_guard` process that ends the sessions of this process's children once this process is
    gone: it learns each child over a pipe whose end of file tells it that this process died."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._process = subprocess.Popen(
            [sys.executable, "-m", "service.local.orphan_guard"],
            stdin=subprocess.PIPE,
            stdout=subprocess.DEVNULL,
            # Its own session: a terminal's Ctrl-C or a kill of our process group does not take it first.
            start_new_session=True,
            text=True,
        )
        self._pipe: IO[str] | None = self._process.stdin

    def _send(self, line: str) -> None:
        with self._lock:
            if self._pipe is None:
                return
            try:
                self._pipe.write(line + "\n")
                self._pipe.flush()
            except (BrokenPipeError, ValueError):
                self._pipe = None

    def watch(self, session: int) -> None:
        self._send(f"+{session}")

    def forget(self, session: int) -> None:
        self._send(f"-{session}")

    def close(self, timeout_seconds: float = 10.0) -> None:
        """End the guard (it ends whatever sessions it still lists) and wait for it."""
        with self._lock:
            pipe, self._pipe = self._pipe, None
        if pipe is not None:
            pipe.close()
        try:
            self._process.wait(timeout=timeout_seconds)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait()


_GUARD: OrphanGuard | None = None


def install_orphan_guard() -> OrphanGuard:
    """From now on, every ChildProcess this process starts ends with it, however it dies (for `samsvc up`)."""
    global _GUARD
    if _GUARD is None:
        _GUARD = OrphanGuard()
    return _GUARD


def remove_orphan_guard() -> None:
    """Close the guard (after every child was stopped)."""
    global _GUARD
    guard, _GUARD = _GUARD, None
    if guard is not None:
        guard.close()


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
        if _GUARD is not None:
            _GUARD.watch(self.process.pid)  # its session id: it leads its own session
        return self

    @property
    def pid(self) -> int | None:
        return None if self.process is None else self.process.pid

    def exited(self) -> bool:
        return self.process is None or self.process.poll() is not None

    @property
    def returncode(self) -> int | None:
        return None if self.process is None else self.process.poll()

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
        if _GUARD is not None:
            _GUARD.forget(process.pid)

"""A watchdog for test phases that hang: past a limit shorter than pytest-timeout's, it writes every thread's stack
and every asyncio task's stack to stderr, so that a hang in an event loop (which pytest-timeout's dump shows only as
the loop's `select`) names the await it is stuck in."""

from __future__ import annotations

import asyncio
import faulthandler
import sys
import threading
import time
from collections.abc import Generator


class HangReport:
    def __init__(self, limit_seconds: float, poll_seconds: float = 5.0) -> None:
        self.limit_seconds = limit_seconds
        self.poll_seconds = poll_seconds
        self._phase: tuple[str, float] | None = None
        self._reported: str | None = None
        self._lock = threading.Lock()
        self.written = threading.Event()  # set after each report
        threading.Thread(target=self._watch, name="hang-report", daemon=True).start()

    def start(self, phase: str) -> None:
        with self._lock:
            self._phase = (phase, time.monotonic())

    def end(self) -> None:
        with self._lock:
            self._phase = None

    def watching(self, phase: str) -> Generator[None, object, None]:
        """A pytest hookwrapper's body (`yield from`): `phase` watched while the hook runs."""
        self.start(phase)
        yield
        self.end()

    def _watch(self) -> None:
        while True:
            time.sleep(self.poll_seconds)
            with self._lock:
                phase = self._phase
            if phase is None or phase[0] == self._reported or time.monotonic() - phase[1] < self.limit_seconds:
                continue
            self._reported = phase[0]
            try:
                write_report(phase[0], time.monotonic() - phase[1])
            except Exception as error:  # noqa: BLE001 - the watchdog outlives a report that fails
                print(f"the hang report failed: {error!r}", file=sys.__stderr__, flush=True)
            self.written.set()


def write_report(phase: str, seconds: float) -> None:
    out = sys.__stderr__
    assert out is not None
    print(f"\n+++ {phase} has run {seconds:.0f} s: threads and asyncio tasks +++", file=out, flush=True)
    faulthandler.dump_traceback(file=out, all_threads=True)
    for task in list(asyncio.tasks._all_tasks):  # every loop's tasks; read from this thread for a report only
        if not task.done() and task.get_loop().is_running():  # not the leftovers of loops that have closed
            print(f"--- {task!r}", file=out, flush=True)
            task.print_stack(file=out)
    print("+++ end of the report +++", file=out, flush=True)
